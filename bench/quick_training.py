"""Shared by the quick-profile studies in ``bench/``: train networks with the quick recipe.

Each study trains into a fresh temporary runs folder, so nothing it does touches ``runs/``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from pdc_utils import config, data, models, training


def quick_setup(
    prefix: str, epochs: int | None = None
) -> tuple[dict[str, Any], tf.data.Dataset, Callable[..., keras.Model]]:
    """The quick profile's parameters, its test set, and ``train(name, seed, **extra)``.

    ``train`` builds the profile's network with ``seed`` (weights and batch order) and trains
    it with the profile's recipe; ``extra`` goes to :func:`pdc_utils.training.train_network`
    (``references``, ``alpha``). ``epochs`` overrides the profile's.
    """
    p = config.profile("quick")
    os.environ["PDC_RUNS_DIR"] = tempfile.mkdtemp(prefix=prefix)
    training.configure(p["seed"])
    info = data.dataset_info(p["dataset"])
    test = data.load_split(p["dataset"], "test", batch_size=256)
    fit = dict(run_name="study", epochs=epochs or p["epochs"], learning_rate=p["learning_rate"],
               momentum=p["momentum"], weight_decay=p["weight_decay"], schedule=p["schedule"],
               feature_norm=p["feature_norm"], progress=False)

    def train(name: str, seed: int, **extra: Any) -> keras.Model:
        keras.utils.set_random_seed(seed)
        net = models.build_network(p["network"], info, width=p["width"])
        train_ds = data.load_split(p["dataset"], "train", batch_size=p["batch_size"],
                                   shuffle=True, seed=seed)
        return training.train_network(net, train_ds, test, name=name, **fit, **extra)[0]

    return p, test, train
