"""The exercises added to notebooks 02 (the optimiser's update) and 05 (logits and labels)."""

from __future__ import annotations

import numpy as np

from pdc_utils.exercises import check


def said(capsys, *args) -> str:
    check(*args)
    return capsys.readouterr().out


def test_sgd_step_accepts_coupled_decay_and_rejects_other_updates(capsys):
    def coupled(w, g, velocity, lr, momentum, weight_decay):
        velocity = momentum * velocity - lr * (g + weight_decay * w)
        return w + velocity, velocity

    def decay_outside_momentum(w, g, velocity, lr, momentum, weight_decay):
        velocity = momentum * velocity - lr * g
        return w + velocity - lr * weight_decay * w, velocity

    def pytorch_form_without_lr_in_buffer(w, g, velocity, lr, momentum, weight_decay):
        velocity = momentum * velocity + (g + weight_decay * w)
        return w - lr * velocity, velocity

    def in_place(w, g, velocity, lr, momentum, weight_decay):
        velocity *= momentum
        return w, velocity

    assert "correct" in said(capsys, "02.sgd_step", coupled)
    assert "not yet" in said(capsys, "02.sgd_step", decay_outside_momentum)
    assert "not yet" in said(capsys, "02.sgd_step", pytorch_form_without_lr_in_buffer)
    assert "read-only" in said(capsys, "02.sgd_step", in_place)
    assert "not attempted" in said(capsys, "02.sgd_step", lambda *args: None)


def test_logit_labels_names_the_network_whose_logits_follow_the_labels(capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 80)
    onehot = np.eye(4)[labels]
    outputs = {"f1": {"logits": 5 * onehot + 0.1 * rng.normal(size=(80, 4))},
               "div": {"logits": rng.normal(size=(80, 4)).astype(np.float32)}}
    assert "correct" in said(capsys, "05.logit_labels", "f1", outputs, onehot, "div")
    assert "not yet" in said(capsys, "05.logit_labels", "div", outputs, onehot, "div")
    assert "not a valid answer" in said(capsys, "05.logit_labels", 1, outputs, onehot, "div")


def test_pdcor_symmetry_is_checked_against_the_swapped_pdcor_computed_in_the_package(capsys):
    import dcor

    rng = np.random.default_rng(2)
    f1 = rng.normal(size=(60, 5))
    penultimate = {"f1": f1, "base": f1[:, :3] + rng.normal(size=(60, 3)),
                   "div": np.tanh(f1[:, 2:]) + rng.normal(size=(60, 3))}
    swapped = dcor.partial_distance_correlation(penultimate["div"], penultimate["base"], f1)
    assert said(capsys, "05.symmetric", swapped, penultimate, "base", "div").endswith(
        "correct.\n")
    assert "not yet" in said(capsys, "05.symmetric", swapped + 0.1, penultimate, "base", "div")
