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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from pdc_utils import config, data, distribute, models, training

ATTACKER = "f1"
_MIDDLE_SEED_STRIDE = 10_000


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


class Experiment:
    """The networks of one run: trains what is missing, reuses what is finished, loads them.

    ``params`` are the run's parameters (a profile, possibly overridden); the training keys
    are read from it. Every network is trained with :func:`pdc_utils.training.train_group`, so
    an interrupted training resumes and a finished one is reused.
    """

    _KEYS = ("run_name", "seed", "dataset", "network", "width", "epochs", "batch_size",
             "learning_rate", "momentum", "weight_decay", "schedule", "augment", "train_limit",
             "test_limit", "alpha", "penalty", "feature_norm", "design", "n_seeds", "n_nets",
             "strategy")

    def __init__(self, params: Mapping[str, Any], progress: bool = True) -> None:
        missing = [k for k in self._KEYS if k not in params]
        if missing:
            raise ValueError(f"the experiment needs the parameters {missing}")
        self.p = config.validate({k: params[k] for k in self._KEYS})
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

    def _train_data(self, seed: int):
        p = self.p
        return lambda epoch: data.load_split(
            p["dataset"], "train", batch_size=p["batch_size"], shuffle=True,
            augment=p["augment"], seed=seed, limit=p["train_limit"], epoch=epoch)

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
        fingerprint = {k: self.p[k] for k in keys}
        return training.Member(name, network, self._train_data(seed), alpha=alpha,
                               references=references or [],
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

