"""Which networks a run trains, under which names and seeds, for each experimental design.

Two designs (parameter ``design``, ``docs/design.md`` section 3):

- ``reference`` (what the paper's text describes): the attacker ``f1`` is trained alone; every
  seed s gives a pair, ``f2_baseline`` (α = 0, f1 monitored) and ``f2_diverge`` (penalised
  against the frozen, finished f1). f1 is both the reference and the attacker.
- ``paper_code`` (what the paper's code ran): the attacker ``f1`` is trained alone and is no
  reference; every seed s gives a chain of ``n_nets`` networks trained interleaved epoch by
  epoch, net k penalised against the current nets j < k. ``f2_baseline`` is net 0 (no penalty),
  ``f2_diverge`` the last net, the nets between are ``chain_s<s>_net<k>``.

Attackers (parameter ``n_attackers``): attacker 0 is ``f1``; attackers k > 0 (``f1_a<k>``,
seed ``seed + 900000 + k``) are trained alone like f1 and are no network's reference, so a
transfer evaluation can tell "from the network I diverged from" (f1, under ``reference``) from
"from networks I never saw".

Controls: ``diverge_from="untrained"`` (``reference`` design only) penalises the diverged
networks against ``f0_untrained``, a frozen network of the same architecture with random
weights (seed ``seed + 800000``), instead of f1: the same penalty and the same collapse
pressure, but nothing of the attacker to become independent of. The baselines are the same
in both cases (they monitor f1 and add nothing to the loss), so a run of each reuses them.

Seeds: f1 uses ``seed``; pair s uses ``seed + 1 + s`` for both its baseline and its diverged
network under ``reference``, so the two start from the same weights and see the same batches,
and only the penalty differs. Under ``paper_code`` net k of chain s uses
``seed + 1 + s + 10000 k`` (net 0, the baseline, ``seed + 1 + s``): every net of a chain has
its own seed, as the paper's code had (its nets were unseeded, so never alike). Every derived
seed is below ``seed + config.DERIVED_SEED_SPAN``. Pair 0's networks are ``f2_baseline.keras``
and ``f2_diverge.keras`` (the names the series has always used); pair s > 0 adds ``_s<s>``.

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

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pdc_utils import config, data, distribute, locking, models, storage, training

ATTACKER = "f1"
#: The frozen untrained reference of the ``diverge_from="untrained"`` control.
UNTRAINED = "f0_untrained"
_CHAIN_SEED_STRIDE = config.CHAIN_SEED_STRIDE
_UNTRAINED_SEED_OFFSET = config.UNTRAINED_SEED_OFFSET
_ATTACKER_SEED_OFFSET = config.ATTACKER_SEED_OFFSET
#: The most host memory ``feature_cache="auto"`` gives cached reference features (bytes);
#: above it ``auto`` runs the references instead, ``on`` caches anyway. CIFAR-10 with a
#: width-64 ResNet-18 f1 needs 50,000 x 512 x 4 B = 102 MB; ImageNet 2012 needs 2.6 GB
#: (ResNet-34, 512 features, float32; half with mixed precision) to 10.5 GB (ResNet-50/152).
FEATURE_CACHE_BUDGET = 2 * 2**30


def pair_seed(seed: int, s: int) -> int:
    """The seed shared by the baseline and the diverged network of pair ``s``."""
    return seed + 1 + s


def attacker_name(k: int) -> str:
    """Attacker k's name: ``f1`` for k = 0, ``f1_a<k>`` for the independent ones."""
    return ATTACKER if k == 0 else f"{ATTACKER}_a{k}"


def attacker_seed(seed: int, k: int) -> int:
    """Attacker k's seed: ``seed`` for f1, ``seed + 900000 + k`` for the others."""
    return seed if k == 0 else seed + _ATTACKER_SEED_OFFSET + k


def untrained_seed(seed: int) -> int:
    """The seed of the untrained reference network of the control."""
    return seed + _UNTRAINED_SEED_OFFSET


def chain_seed(seed: int, s: int, k: int) -> int:
    """Net k of chain s: its own seed (net 0, the baseline, takes the pair's seed)."""
    return pair_seed(seed, s) + _CHAIN_SEED_STRIDE * k


def baseline_name(s: int) -> str:
    return "f2_baseline" if s == 0 else f"f2_baseline_s{s}"


def diverge_name(s: int) -> str:
    return "f2_diverge" if s == 0 else f"f2_diverge_s{s}"


def chain_names(s: int, n_nets: int) -> list[str]:
    """Names of chain ``s``'s nets: the baseline, the middle nets, the diverged network."""
    middle = [f"chain_s{s}_net{k}" for k in range(1, n_nets - 1)]
    return [baseline_name(s), *middle, diverge_name(s)]


def feature_cache_problem(design: str, dataset: str, augment: bool,
                          penalty: str = "u") -> str | None:
    """Why the networks of a run cannot use cached reference features, or ``None`` if they can.

    The cache is valid when every reference of a trained network is a frozen, finished network
    and the training images are not augmented: then a reference's features of an image are the
    same in every epoch. That excludes the ``paper_code`` design (its references are earlier
    nets of the same chain, trained at the same time) and augmentation that is applied (digits
    has none; on the other datasets ``augment=True`` draws new crops and flips every epoch).

    Nor can ``penalty="grad_align"`` use it: it needs the references' input gradients, which
    depend on more than their features.

    α plays no part: a baseline of the ``reference`` design (α = 0) only monitors its dCor² to
    f1, but that still needs f1's features in every step, so it uses the cache too and saves
    the same forward pass. A network without references (the attacker) has nothing to cache.
    """
    if penalty == "grad_align":
        return ("penalty grad_align compares input gradients, which cached features cannot "
                "give (the references run in every step)")
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


def _profile_with(recorded: Mapping[str, Any], with_seed: bool) -> str | None:
    """The profile whose values a network's record holds (its seed only when ``with_seed``:
    f1 takes the profile's seed, the others derive theirs), or ``None``."""
    own = ("alpha", "keep_dim", "penalty")  # the member's own, not the run's
    keys = [k for k in recorded if k in config.TRAINING_KEYS and k not in own
            and (with_seed or k != "seed")]
    for name in config.PROFILES:
        values = config.profile(name)
        if keys and all(values[k] == recorded[k] for k in keys):
            return name
    return None


class Experiment:
    """The networks of one run: trains what is missing, reuses what is finished, loads them.

    ``params`` are the run's parameters (a profile, possibly overridden); the training keys
    are read from it. Every network is trained with :func:`pdc_utils.training.train_group`, so
    an interrupted training resumes and a finished one is reused. ``feature_cache="on"`` in a
    run where the cache is not valid raises a ``ValueError`` here, before anything is loaded or
    trained.
    """

    _KEYS = ("run_name", *config.TRAINING_KEYS)

    def __init__(self, params: Mapping[str, Any], progress: bool = True) -> None:
        missing = [k for k in self._KEYS if k not in params]
        if missing:
            raise ValueError(f"the experiment needs the parameters {missing}")
        self.p = config.validate({k: params[k] for k in self._KEYS})
        problem = feature_cache_problem(self.p["design"], self.p["dataset"], self.p["augment"],
                                        self.p["penalty"])
        if self.p["feature_cache"] == "on" and problem:
            raise ValueError(f"feature_cache='on' is not valid for this run: {problem}. Use "
                             "feature_cache='auto' (the cache wherever it is valid) or 'off'.")
        #: whether networks whose references are all frozen networks use cached features
        self.feature_cache = self.p["feature_cache"] != "off" and problem is None
        self._cache: dict[tuple[str, ...], tuple[tf.Tensor, ...]] = {}  # the latest only
        self.progress = progress
        self.strategy = distribute.make_strategy(self.p["strategy"])
        self.info = data.dataset_info(self.p["dataset"])
        #: the test split, for reporting only
        self.test_data = data.load_split(self.p["dataset"], "test", batch_size=256,
                                         limit=self.p["test_limit"])
        #: the validation split: what every training evaluates after each epoch
        self.validation_data = data.load_split(self.p["dataset"], "validation", batch_size=256)

    # ------------------------------------------------------------------ names

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(baseline name, diverged name)`` for every seed, pair 0 first."""
        return [(baseline_name(s), diverge_name(s)) for s in range(self.p["n_seeds"])]

    @property
    def attacker_names(self) -> list[str]:
        """``f1`` and the independent attackers ``f1_a1`` ... (``n_attackers`` in all)."""
        return [attacker_name(k) for k in range(self.p["n_attackers"])]

    @property
    def reference_name(self) -> str:
        """What the diverged networks of the ``reference`` design are penalised against."""
        return UNTRAINED if self.p["diverge_from"] == "untrained" else ATTACKER

    @property
    def chain_members(self) -> list[str]:
        """The nets of every chain that are neither baseline nor diverged (paper_code)."""
        if self.p["design"] != "paper_code":
            return []
        return [n for s in range(self.p["n_seeds"])
                for n in chain_names(s, self.p["n_nets"])[1:-1]]

    def references_of(self, name: str) -> list[str]:
        """The networks ``name``'s penalty acts on (monitored ones for a reference baseline)."""
        if name in self.attacker_names or name == UNTRAINED:
            return []
        if self.p["design"] == "reference":
            diverged = {d for _, d in self.pairs}
            return [self.reference_name if name in diverged else ATTACKER]
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

        # a last batch of 1-3 images is dropped: batch norm and the U-statistic need more
        remainder = data.num_examples(p["dataset"], "train", p["train_limit"]) % p["batch_size"]
        tiny_last_batch = 0 < remainder < 4

        def epoch_data(epoch: int) -> tf.data.Dataset:
            extra = self.reference_features(cached) if cached else None
            return data.load_split(
                p["dataset"], "train", batch_size=p["batch_size"], shuffle=True,
                augment=p["augment"], seed=seed, limit=p["train_limit"], epoch=epoch,
                extra=extra, drop_remainder=tiny_last_batch)
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
        key = tuple(storage.weights_digest(ref) for ref in references)
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

    def _fingerprint(self, name: str, seed: int) -> dict[str, Any]:
        """What makes a network besides the fit parameters: data, split, architecture, seed."""
        keys = ["dataset", "network", "width", "batch_size", "augment", "train_limit"]
        if name not in self.attacker_names:  # attackers are trained alone in both designs
            keys.append("design")
        # feature_cache is left out on purpose: it changes nothing beyond float rounding
        split = f"{self.info.train_split} ({data.num_examples(self.p['dataset'], 'train'):,})"
        return {**{k: self.p[k] for k in keys}, "train_split": split, "seed": seed}

    def _spec(self, name: str, seed: int, alpha: float = 0.0,
              references: list[keras.Model | str] | None = None,
              network: keras.Model | None = None) -> training.Member:
        """The member ``name`` as it is recorded (and, with ``network``, trained)."""
        references = references or []
        keep_dim = self.p["keep_dim"] if alpha > 0 else 0.0
        train_data = None
        if network is not None:
            train_data = self._train_data(seed, self._cached_references(name, references))
        return training.Member(name, network, train_data, alpha=alpha, references=references,
                               fingerprint=self._fingerprint(name, seed), keep_dim=keep_dim)

    def _member(self, name: str, seed: int, alpha: float = 0.0,
                references: list[keras.Model | str] | None = None) -> training.Member:
        return self._spec(name, seed, alpha, references, network=self.build_network(seed))

    def _fit_params(self) -> dict[str, Any]:
        return {k: self.p[k] for k in ("epochs", "learning_rate", "momentum", "weight_decay",
                                       "schedule", "penalty", "feature_norm")}

    def _fit(self, members: list[training.Member], group: str) -> dict[str, keras.Model]:
        """Train (or reuse) a group under the run's lock (:func:`locking.training_lock`; the
        chief's only, in a multi-worker run)."""
        p = self.p
        lock = (locking.training_lock(p["run_name"]) if distribute.is_chief(self.strategy)
                else contextlib.nullcontext())
        with lock:
            results = training.train_group(
                members, self.validation_data, group=group, run_name=p["run_name"],
                **self._fit_params(), progress=self.progress, strategy=self.strategy)
        return {name: network for name, (network, _) in results.items()}

    def attacker(self) -> keras.Model:
        """Train (or reuse) the attacker f1 with ``seed``."""
        return self._fit([self._member(ATTACKER, self.p["seed"])], ATTACKER)[ATTACKER]

    def train_attacker(self, k: int) -> keras.Model:
        """Train (or reuse) attacker ``k`` alone (f1 for k = 0)."""
        name = self.attacker_names[k]
        return self._fit([self._member(name, attacker_seed(self.p["seed"], k))], name)[name]

    def attackers(self) -> dict[str, keras.Model]:
        """Train (or reuse) every attacker: f1 and the ``n_attackers - 1`` independent ones."""
        return {name: self.train_attacker(k) for k, name in enumerate(self.attacker_names)}

    def untrained(self, save: bool = True) -> keras.Model:
        """The frozen, untrained reference of the control: built from its seed, saved once
        (``models/f0_untrained.keras``) so that every notebook uses the same weights.
        ``save=False`` (checking finished networks) writes nothing."""
        path = config.models_dir(self.p["run_name"]) / f"{UNTRAINED}.keras"
        network = self.build_network(untrained_seed(self.p["seed"]))
        if path.exists():
            with self.strategy.scope():
                saved = storage.load_network(path)
            if storage.weights_digest(saved) == storage.weights_digest(network):
                return saved
        if save and distribute.is_chief(self.strategy):
            storage.save_network(network, path)
        return network

    def _reference_network(self, f1: keras.Model) -> keras.Model:
        return self.untrained() if self.p["diverge_from"] == "untrained" else f1

    def _chain_specs(self, s: int, networks: bool) -> list[training.Member]:
        names = chain_names(s, self.p["n_nets"])
        make = self._member if networks else self._spec
        return [make(name, chain_seed(self.p["seed"], s, k),
                     alpha=self.p["alpha"] if k else 0.0, references=names[:k])
                for k, name in enumerate(names)]

    def _chain(self, s: int) -> dict[str, keras.Model]:
        return self._fit(self._chain_specs(s, networks=True), f"chain_s{s}")

    def train_chain(self, s: int) -> dict[str, keras.Model]:
        """Train (or reuse) chain ``s`` of the ``paper_code`` design, all its nets."""
        if self.p["design"] != "paper_code":
            raise ValueError(f"chains belong to design 'paper_code', not {self.p['design']!r}")
        return self._chain(s)

    def train_baseline(self, f1: keras.Model, s: int) -> keras.Model:
        """Train (or reuse) pair ``s``'s baseline (under ``paper_code``: its whole chain)."""
        base = self.pairs[s][0]
        if self.p["design"] == "paper_code":
            return self._chain(s)[base]
        member = self._member(base, pair_seed(self.p["seed"], s), references=[f1])
        return self._fit([member], base)[base]

    def train_diverged(self, f1: keras.Model, s: int) -> keras.Model:
        """Train (or reuse) pair ``s``'s diverged network (under ``paper_code``: its chain),
        penalised against f1 or, for the control, the untrained network."""
        div = self.pairs[s][1]
        if self.p["design"] == "paper_code":
            return self._chain(s)[div]
        member = self._member(div, pair_seed(self.p["seed"], s), alpha=self.p["alpha"],
                              references=[self._reference_network(f1)])
        return self._fit([member], div)[div]

    def baselines(self, f1: keras.Model) -> dict[str, keras.Model]:
        """Train (or reuse) every pair's baseline. Under ``paper_code`` a baseline is net 0 of
        a chain trained interleaved with the others, so this trains the whole chains."""
        return {base: self.train_baseline(f1, s) for s, (base, _) in enumerate(self.pairs)}

    def diverged(self, f1: keras.Model) -> dict[str, keras.Model]:
        """Train (or reuse) every pair's diverged network (under ``paper_code``: its chain),
        penalised against f1 or, for the control, the untrained network."""
        return {div: self.train_diverged(f1, s) for s, (_, div) in enumerate(self.pairs)}

    # ------------------------------------------------------------------ loading

    def _expected_records(self, name: str, frozen: dict[str, keras.Model]
                          ) -> dict[str, Any]:
        """The ``.json`` record ``name`` would have if this run trained it (``frozen``: the
        run's f1 and untrained reference, whose weight digests the records name)."""
        seed = self.p["seed"]
        if name in self.attacker_names:
            k = self.attacker_names.index(name)
            members, group = [self._spec(name, attacker_seed(seed, k))], name
        elif self.p["design"] == "paper_code":
            s = next(s for s in range(self.p["n_seeds"])
                     if name in chain_names(s, self.p["n_nets"]))
            members, group = self._chain_specs(s, networks=False), f"chain_s{s}"
        else:
            s = next(s for s, pair in enumerate(self.pairs) if name in pair)
            diverged = name == self.pairs[s][1]
            reference = frozen[self.reference_name if diverged else ATTACKER]
            members = [self._spec(name, pair_seed(seed, s),
                                  alpha=self.p["alpha"] if diverged else 0.0,
                                  references=[reference])]
            group = name
        return training.member_records(members, self._fit_params(), group)[name]

    def load(self, names: list[str], notebook: str) -> dict[str, keras.Model]:
        """Load finished networks, checking that each was trained with exactly the values this
        run would train it with (every parameter that changes its weights, and the same f1):
        a network is never used, or labelled, under parameters it was not trained with.

        f1 is checked first: a run trained under other parameters (another profile) is named
        as such, not as a network to train. Checking writes nothing (not even the control's
        untrained reference)."""
        folder = config.models_dir(self.p["run_name"])
        with self.strategy.scope():  # references used in training must live in its scope
            f1 = storage.load_network(folder / f"{ATTACKER}.keras", "02_baseline_training")
        frozen = {ATTACKER: f1}
        self._check_record(ATTACKER, frozen, "02_baseline_training")
        if self.p["diverge_from"] == "untrained" and self.p["design"] == "reference" and any(
                n not in self.attacker_names for n in names):
            frozen[UNTRAINED] = self.untrained(save=False)
        with self.strategy.scope():
            nets = {n: f1 if n == ATTACKER else
                    storage.load_network(folder / f"{n}.keras", notebook) for n in names}
        for name in names:
            self._check_record(name, frozen, notebook)
        return nets

    def _check_record(self, name: str, frozen: dict[str, keras.Model], notebook: str) -> None:
        """Refuse network ``name`` unless its ``.json`` is the record this run would write,
        naming each difference (and the profile or ``diverge_from`` it was trained with)."""
        folder = config.models_dir(self.p["run_name"])
        recorded = storage.read_params(folder / f"{name}.json", notebook)
        recorded.pop(storage.TRAINED_ON, None)
        expected = self._expected_records(name, frozen)
        differ = sorted(k for k in set(recorded) | set(expected)
                        if recorded.get(k) != expected.get(k))
        if not differ:
            return
        described = "; ".join(
            self._reference_words(recorded.get(k), expected.get(k), frozen,
                                  diverged=name in {d for _, d in self.pairs})
            if k == "references" else
            f"{k} = {recorded.get(k, 'not recorded')!r} (this run: "
            f"{expected.get(k, 'not used')!r})" for k in differ)
        profile = _profile_with(recorded, with_seed=name == ATTACKER)
        named = (f" It was trained with profile {profile!r}'s values: give --profile {profile}."
                 if profile and profile != _profile_with(expected, name == ATTACKER) else "")
        raise ValueError(
            f"{folder / name}.keras was not trained with this run's parameters: "
            f"{described}.{named} Use the parameters it was trained with, or train matching "
            f"networks with `python -m pdc_utils run --run-name {self.p['run_name']} "
            f"--notebooks {notebook[:2]} -p KEY=VALUE ...` (the same -p values for every "
            f"notebook).")

    def _reference_words(self, recorded: Any, expected: Any, frozen: dict[str, keras.Model],
                         diverged: bool) -> str:
        """A network's recorded references against this run's, in the run's words: f1, the
        untrained network (for a diverged network with the ``diverge_from`` value that names
        it), an earlier net of its chain, or a network no longer in the run."""
        f1 = storage.weights_digest(frozen[ATTACKER])
        untrained = storage.weights_digest(frozen[UNTRAINED] if UNTRAINED in frozen
                                           else self.untrained(save=False))
        known = {f1: "f1" + (" (diverge_from = 'attacker')" if diverged else ""),
                 untrained: "the untrained network"
                 + (" (diverge_from = 'untrained')" if diverged else "")}

        def words(references: Any) -> str:
            if not isinstance(references, list) or not references:
                return "no reference"
            return ", ".join(r.removeprefix("member:") if str(r).startswith("member:") else
                             known.get(r, "a network no longer in the run (an earlier f1)")
                             for r in references)
        return (f"trained against {words(recorded)}, while this run uses "
                f"{words(expected)}")

    def all_networks(self) -> dict[str, keras.Model]:
        """Every attacker and every pair's baseline and diverged network, checked (for
        notebooks 04, 05)."""
        attackers = self.load(self.attacker_names, "02_baseline_training")
        baselines = self.load([b for b, _ in self.pairs], "02_baseline_training")
        diverged = self.load([d for _, d in self.pairs], "03_diverge_training")
        return {**attackers, **baselines, **diverged}
