"""Which networks a run trains, under which names and seeds, for each experimental design.

Two designs (parameter ``design``, DESIGN.md section 1):

- ``reference`` (what the paper's text describes): the attacker ``f1`` is trained alone; every
  seed s gives a pair, ``f2_baseline`` (α = 0, f1 monitored) and ``f2_diverge`` (penalised
  against the frozen, finished f1). f1 is both the reference and the attacker.
- ``paper_code`` (what the paper's code ran): the attacker ``f1`` is trained alone and is no
  reference; every seed s gives a chain of ``n_nets`` networks trained interleaved epoch by
  epoch, net k penalised against the current nets j < k. ``f2_baseline`` is net 0 (no penalty),
  ``f2_diverge`` the last net, the nets between are ``chain_s<s>_net<k>``.

Seeds: f1 uses ``seed``; pair s uses ``seed + 1 + s`` for both its baseline and its diverged
network, so the two start from the same weights and see the same batches, and only the penalty
differs. The middle nets of a chain use ``seed + 1 + s + 10000 k``. Pair 0's networks are
``f2_baseline.keras`` and ``f2_diverge.keras`` (the names the series has always used); pair
s > 0 adds ``_s<s>``.

Feature cache (parameter ``feature_cache``, see :func:`feature_cache_problem`): under the
``reference`` design f1 is finished and frozen, and without augmentation every training image
is the same image every epoch, so f1's features of it never change. They are then computed
once, before the first epoch, and every batch carries them (``data.load_split``'s ``extra``):
the step skips f1's forward pass and costs about a plain step. ``auto`` (the default) does this
wherever it is valid and within :data:`FEATURE_CACHE_BUDGET`; ``on`` insists and refuses a run
where it is not valid; ``off`` runs f1 in every step. The cache changes no number beyond float
rounding, so it is no part of a network's recorded parameters: a network trained with it is
reused by a run without it, and the other way round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pdc_utils import config, data, distribute, models, training

ATTACKER = "f1"
_MIDDLE_SEED_STRIDE = 10_000
#: The most host memory ``feature_cache="auto"`` gives cached reference features (bytes);
#: above it ``auto`` runs the references instead, ``on`` caches anyway. CIFAR-10 with a
#: width-64 ResNet-18 f1 needs 50,000 x 512 x 4 B = 102 MB; ImageNet 2012 needs 2.6 GB
#: (ResNet-34, 512 features, float32; half with mixed precision) to 10.5 GB (ResNet-50/152).
FEATURE_CACHE_BUDGET = 2 * 2**30


def pair_seed(seed: int, s: int) -> int:
    """The seed shared by the baseline and the diverged network of pair ``s``."""
    return seed + 1 + s


def baseline_name(s: int) -> str:
    return "f2_baseline" if s == 0 else f"f2_baseline_s{s}"


def diverge_name(s: int) -> str:
    return "f2_diverge" if s == 0 else f"f2_diverge_s{s}"


def chain_names(s: int, n_nets: int) -> list[str]:
    """Names of chain ``s``'s nets: the baseline, the middle nets, the diverged network."""
    middle = [f"chain_s{s}_net{k}" for k in range(1, n_nets - 1)]
    return [baseline_name(s), *middle, diverge_name(s)]


def feature_cache_problem(design: str, dataset: str, augment: bool) -> str | None:
    """Why the networks of a run cannot use cached reference features, or ``None`` if they can.

    The cache is valid when every reference of a trained network is a frozen, finished network
    and the training images are not augmented: then a reference's features of an image are the
    same in every epoch. That excludes the ``paper_code`` design (its references are earlier
    nets of the same chain, trained at the same time) and augmentation that is applied (digits
    has none; on the other datasets ``augment=True`` draws new crops and flips every epoch).

    α plays no part: a baseline of the ``reference`` design (α = 0) only monitors its dCor² to
    f1, but that still needs f1's features in every step, so it uses the cache too and saves
    the same forward pass. A network without references (the attacker) has nothing to cache.
    """
    if design == "paper_code":
        return ("design paper_code penalises each net of a chain against the earlier nets of "
                "the same chain, which are trained at the same time: their features change "
                "during training, so features computed once would be stale (the cache needs "
                "design reference, whose f1 is finished and frozen)")
    info = data.dataset_info(dataset)
    if augment and info.augmentation != "none":
        return (f"augment=True on {dataset} draws a new random version of every training image "
                f"each epoch ({info.augmentation}), so features computed once from the stored "
                f"images are not the features of the images trained on (the cache needs "
                f"augment=False)")
    return None


class Experiment:
    """The networks of one run: trains what is missing, reuses what is finished, loads them.

    ``params`` are the run's parameters (a profile, possibly overridden); the training keys
    are read from it. Every network is trained with :func:`pdc_utils.training.train_group`, so
    an interrupted training resumes and a finished one is reused. ``feature_cache="on"`` in a
    run where the cache is not valid raises a ``ValueError`` here, before anything is loaded or
    trained.
    """

    _KEYS = ("run_name", "seed", "dataset", "network", "width", "epochs", "batch_size",
             "learning_rate", "momentum", "weight_decay", "schedule", "augment", "train_limit",
             "test_limit", "alpha", "penalty", "feature_norm", "design", "n_seeds", "n_nets",
             "strategy", "feature_cache")

    def __init__(self, params: Mapping[str, Any], progress: bool = True) -> None:
        missing = [k for k in self._KEYS if k not in params]
        if missing:
            raise ValueError(f"the experiment needs the parameters {missing}")
        self.p = config.validate({k: params[k] for k in self._KEYS})
        problem = feature_cache_problem(self.p["design"], self.p["dataset"], self.p["augment"])
        if self.p["feature_cache"] == "on" and problem:
            raise ValueError(f"feature_cache='on' is not valid for this run: {problem}. Use "
                             "feature_cache='auto' (the cache wherever it is valid) or 'off'.")
        #: whether networks whose references are all frozen networks use cached features
        self.feature_cache = self.p["feature_cache"] != "off" and problem is None
        self._cache: dict[tuple[str, ...], tuple[tf.Tensor, ...]] = {}  # the latest only
        self.progress = progress
        self.strategy = distribute.make_strategy(self.p["strategy"])
        self.info = data.dataset_info(self.p["dataset"])
        self.test_data = data.load_split(self.p["dataset"], "test", batch_size=256,
                                         limit=self.p["test_limit"])

    # ------------------------------------------------------------------ names

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(baseline name, diverged name)`` for every seed, pair 0 first."""
        return [(baseline_name(s), diverge_name(s)) for s in range(self.p["n_seeds"])]

    @property
    def chain_members(self) -> list[str]:
        """The nets of every chain that are neither baseline nor diverged (paper_code)."""
        if self.p["design"] != "paper_code":
            return []
        return [n for s in range(self.p["n_seeds"])
                for n in chain_names(s, self.p["n_nets"])[1:-1]]

    def references_of(self, name: str) -> list[str]:
        """The networks ``name``'s penalty acts on (monitored ones for a reference baseline)."""
        if self.p["design"] == "reference":
            return [] if name == ATTACKER else [ATTACKER]
        for s in range(self.p["n_seeds"]):
            names = chain_names(s, self.p["n_nets"])
            if name in names:
                return names[:names.index(name)]
        return []

    # ------------------------------------------------------------------ training

    def _train_data(self, seed: int, cached: Sequence[keras.Model] = ()
                    ) -> Callable[[int], tf.data.Dataset]:
        """``epoch -> dataset`` of the training split for ``seed``; with ``cached`` every batch
        also carries those frozen networks' features of its images (computed at the first
        call, so a finished network that is only reused costs nothing)."""
        p = self.p

        def epoch_data(epoch: int) -> tf.data.Dataset:
            extra = self.reference_features(cached) if cached else None
            return data.load_split(
                p["dataset"], "train", batch_size=p["batch_size"], shuffle=True,
                augment=p["augment"], seed=seed, limit=p["train_limit"], epoch=epoch,
                extra=extra)
        return epoch_data

    def _cache_bytes(self, references: Sequence[keras.Model]) -> int:
        """Host memory of the cached features of ``references``, from their (functional)
        output shapes; 0 where a network does not declare them."""
        n = data.num_examples(self.p["dataset"], "train", self.p["train_limit"])
        total = 0
        for ref in references:
            outputs = getattr(ref, "outputs", None) or []
            if len(outputs) < 2:
                continue
            itemsize = np.dtype(keras.backend.standardize_dtype(outputs[1].dtype)).itemsize
            total += n * int(np.prod(outputs[1].shape[1:])) * itemsize
        return total

    def _cached_references(self, name: str, references: Sequence[keras.Model | str]
                           ) -> list[keras.Model]:
        """The references whose features ``name`` reads from the cache: all of them, when the
        run allows the cache, they are all frozen networks and (``auto``) they fit the budget;
        else none."""
        if not (self.feature_cache and references
                and all(isinstance(r, keras.Model) for r in references)):
            return []
        size = self._cache_bytes(references)
        if self.p["feature_cache"] == "auto" and size > FEATURE_CACHE_BUDGET:
            print(f"note: {name} runs its references in every step: their cached features "
                  f"would take {size / 2**30:.1f} GiB, more than feature_cache='auto' uses "
                  f"({FEATURE_CACHE_BUDGET / 2**30:.0f} GiB; feature_cache='on' caches anyway)")
            return []
        return list(references)

    def reference_features(self, references: Sequence[keras.Model]) -> tuple[tf.Tensor, ...]:
        """The penultimate features of every training image (the unshuffled, unaugmented split
        after ``train_limit``), one ``[n, d_r]`` tensor per reference, in the dtype the
        reference computes (float16 under mixed precision: the values the live step would
        use). Computed once by batched inference and kept, for the next network with the same
        references, as host (CPU) tensors: every epoch's dataset slices them without a copy."""
        key = tuple(training.weights_digest(ref) for ref in references)
        if key in self._cache:
            return self._cache[key]
        self._cache.clear()  # one set of references at a time: bounded memory
        p = self.p
        start = time.perf_counter()
        images = data.load_split(p["dataset"], "train", batch_size=p["batch_size"],
                                 limit=p["train_limit"])
        forward = tf.function(lambda x: [ref(x, training=False)[1] for ref in references])
        n = data.num_examples(p["dataset"], "train", p["train_limit"])
        arrays: list[np.ndarray] = []
        row = 0
        for x, _ in images:
            batch = [np.asarray(f) for f in forward(x)]
            if not arrays:  # filled in place: no second copy while concatenating
                arrays = [np.empty((n, *f.shape[1:]), f.dtype) for f in batch]
            for array, f in zip(arrays, batch, strict=True):
                array[row:row + len(f)] = f
            row += len(batch[0])
        if row != n:
            raise RuntimeError(f"the training split gave {row} images, expected {n}")
        size = sum(a.nbytes for a in arrays)
        with tf.device("/CPU:0"):
            cached = tuple(tf.constant(array) for array in arrays)
        del arrays
        self._cache[key] = cached
        print(f"feature cache: features of the {n:,} training images by {len(references)} "
              f"frozen reference network(s) computed once ({size / 2**20:.2f} MiB, "
              f"{time.perf_counter() - start:.1f} s)")
        return cached

    def build_network(self, seed: int, distributed: bool = True) -> keras.Model:
        """A fresh network of the run's architecture, its initial weights drawn from ``seed``,
        made in the run's ``tf.distribute`` strategy (``distributed=False``: outside it, for
        one-device demonstrations)."""
        keras.utils.set_random_seed(seed)
        strategy = self.strategy if distributed else tf.distribute.get_strategy()
        with strategy.scope():
            return models.build_network(self.p["network"], self.info, width=self.p["width"])

    def _member(self, name: str, seed: int, alpha: float = 0.0,
                references: list[keras.Model | str] | None = None) -> training.Member:
        network = self.build_network(seed)
        keys = ["dataset", "network", "width", "batch_size", "augment", "train_limit"]
        if name != ATTACKER:  # the attacker is trained alone, the same in both designs
            keys.append("design")
        # feature_cache is left out on purpose: it changes nothing beyond float rounding
        fingerprint = {k: self.p[k] for k in keys}
        references = references or []
        cached = self._cached_references(name, references)
        return training.Member(name, network, self._train_data(seed, cached), alpha=alpha,
                               references=references,
                               fingerprint={**fingerprint, "seed": seed})

    def _fit(self, members: list[training.Member], group: str) -> dict[str, keras.Model]:
        p = self.p
        results = training.train_group(
            members, self.test_data, group=group, run_name=p["run_name"], epochs=p["epochs"],
            learning_rate=p["learning_rate"], momentum=p["momentum"],
            weight_decay=p["weight_decay"], schedule=p["schedule"], penalty=p["penalty"],
            feature_norm=p["feature_norm"], progress=self.progress, strategy=self.strategy)
        return {name: network for name, (network, _) in results.items()}

    def attacker(self) -> keras.Model:
        """Train (or reuse) the attacker f1 with ``seed``."""
        return self._fit([self._member(ATTACKER, self.p["seed"])], ATTACKER)[ATTACKER]

    def _chain(self, s: int) -> dict[str, keras.Model]:
        names = chain_names(s, self.p["n_nets"])
        base = pair_seed(self.p["seed"], s)
        members = []
        for k, name in enumerate(names):
            seed = base if k in (0, len(names) - 1) else base + _MIDDLE_SEED_STRIDE * k
            members.append(self._member(name, seed, alpha=self.p["alpha"] if k else 0.0,
                                        references=names[:k]))
        return self._fit(members, f"chain_s{s}")

    def baselines(self, f1: keras.Model) -> dict[str, keras.Model]:
        """Train (or reuse) every pair's baseline. Under ``paper_code`` a baseline is net 0 of
        a chain trained interleaved with the others, so this trains the whole chains."""
        trained = {}
        for s, (base, _) in enumerate(self.pairs):
            if self.p["design"] == "paper_code":
                trained[base] = self._chain(s)[base]
            else:
                member = self._member(base, pair_seed(self.p["seed"], s), references=[f1])
                trained.update(self._fit([member], base))
        return trained

    def diverged(self, f1: keras.Model) -> dict[str, keras.Model]:
        """Train (or reuse) every pair's diverged network (under ``paper_code``: its chain)."""
        trained = {}
        for s, (_, div) in enumerate(self.pairs):
            if self.p["design"] == "paper_code":
                trained[div] = self._chain(s)[div]
            else:
                member = self._member(div, pair_seed(self.p["seed"], s), alpha=self.p["alpha"],
                                      references=[f1])
                trained.update(self._fit([member], div))
        return trained

    # ------------------------------------------------------------------ loading

    def load(self, names: list[str], notebook: str) -> dict[str, keras.Model]:
        """Load finished networks, checking they were trained with this run's parameters and
        against the networks now in the run (no silent mixing of two runs' models)."""
        folder = config.models_dir(self.p["run_name"])
        with self.strategy.scope():  # references used in training must live in its scope
            nets = {n: training.load_network(folder / f"{n}.keras", notebook) for n in names}
            f1 = nets.get(ATTACKER) or training.load_network(folder / f"{ATTACKER}.keras",
                                                             "02_baseline_training")
        digest = training.weights_digest(f1)
        for name in names:
            recorded = training.read_params(folder / f"{name}.json", notebook)
            expected = {k: self.p[k] for k in ("dataset", "network", "width", "epochs",
                                               "design") if k in recorded}
            stale = {k: recorded[k] for k in expected if recorded[k] != expected[k]}
            against_f1 = ATTACKER in self.references_of(name)
            if stale or (against_f1 and recorded.get("references") != [digest]):
                reason = (f"parameters {stale} differ from this run's" if stale else
                          "it was trained against another f1 than the one now in the run")
                raise ValueError(
                    f"{folder / name}.keras does not belong with this run: {reason}. "
                    f"Rerun notebooks/{notebook}.ipynb with this run's parameters "
                    f"(python -m pdc_utils run --run-name {self.p['run_name']} "
                    f"--notebooks {notebook[:2]} ...).")
        return nets

    def all_networks(self) -> dict[str, keras.Model]:
        """f1 and every pair's baseline and diverged network, checked (for notebooks 04, 05)."""
        f1 = self.load([ATTACKER], "02_baseline_training")
        baselines = self.load([b for b, _ in self.pairs], "02_baseline_training")
        diverged = self.load([d for _, d in self.pairs], "03_diverge_training")
        return {**f1, **baselines, **diverged}

