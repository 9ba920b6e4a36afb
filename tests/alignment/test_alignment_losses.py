"""DPO/MixDPO losses against hand formulas and numerical integration; the loss registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from alignment.losses import (
    PairBatch,
    PreferenceLoss,
    available_losses,
    dpo_loss,
    get_loss,
    mixdpo_loss,
    register_loss,
)
from mixlogit.torch import FixedStrength, GammaStrength, LogNormalStrength

LOGPS = {
    "policy_chosen_logps": torch.tensor([-10.0, -3.5, -7.25, -1.0], dtype=torch.float64),
    "policy_rejected_logps": torch.tensor([-12.0, -1.0, -9.5, -20.0], dtype=torch.float64),
    "ref_chosen_logps": torch.tensor([-11.0, -4.0, -7.0, -2.0], dtype=torch.float64),
    "ref_rejected_logps": torch.tensor([-11.5, -2.0, -9.0, -5.0], dtype=torch.float64),
}
# delta = (c - rc) - (r - rr), computed by hand: [1.5, -0.5, 0.25, 16.0]
DELTA = np.array([1.5, -0.5, 0.25, 16.0])


def _double(factory, *args, **kwargs):
    """Build a strength module with float64 parameters from the start (no float32 rounding)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return factory(*args, **kwargs)
    finally:
        torch.set_default_dtype(previous)


def _expected_log_sigmoid(delta, pdf, upper=np.inf):
    return math.log(
        integrate.quad(lambda b: pdf(b) / (1 + math.exp(-b * delta)), 0, upper, limit=200)[0]
    )


def test_dpo_loss_matches_hand_formula():
    loss = dpo_loss(**LOGPS, beta=0.1)
    expected = np.log1p(np.exp(-0.1 * DELTA))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=0, atol=1e-15)


def test_mixdpo_point_mass_equals_dpo():
    strength = _double(FixedStrength, 0.1)
    np.testing.assert_allclose(
        mixdpo_loss(**LOGPS, strength=strength).numpy(),
        dpo_loss(**LOGPS, beta=0.1).numpy(),
        rtol=0,
        atol=1e-14,
    )


def test_mixdpo_gamma_matches_numerical_integral():
    strength = _double(GammaStrength, 2.0, 16.7)
    loss = mixdpo_loss(**LOGPS, strength=strength)
    pdf = stats.gamma(a=2.0, scale=1 / 16.7).pdf
    expected = [-_expected_log_sigmoid(d, pdf) for d in DELTA]
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-9)


def test_mixdpo_lognormal_quadrature_matches_numerical_integral():
    strength = _double(LogNormalStrength, -2.3, 0.6, method="quadrature", num_points=32)
    loss = mixdpo_loss(**LOGPS, strength=strength)
    pdf = stats.lognorm(s=0.6, scale=math.exp(-2.3)).pdf
    expected = [-_expected_log_sigmoid(d, pdf) for d in DELTA]
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)


def test_mixdpo_gamma_tiny_variance_equals_dpo_to_1e5():
    shape = 1e7  # mean 0.1, CV 3e-4
    strength = _double(GammaStrength, shape, shape / 0.1)
    diff = mixdpo_loss(**LOGPS, strength=strength) - dpo_loss(**LOGPS, beta=0.1)
    assert diff.abs().max().item() < 1e-5


def test_mixdpo_gradients_reach_strength_and_logps():
    strength = _double(GammaStrength, 2.0, 16.7)
    logps = {k: v.clone().requires_grad_(True) for k, v in LOGPS.items()}
    mixdpo_loss(**logps, strength=strength).sum().backward()
    assert strength.raw_shape.grad is not None and strength.raw_shape.grad != 0
    # d loss / d chosen_logp = -d loss / d ref_chosen_logp
    torch.testing.assert_close(logps["policy_chosen_logps"].grad, -logps["ref_chosen_logps"].grad)


def test_shape_mismatch_is_reported():
    bad = dict(LOGPS, ref_rejected_logps=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="ref_rejected_logps"):
        dpo_loss(**bad)
    with pytest.raises(ValueError, match="beta must be positive"):
        dpo_loss(**LOGPS, beta=0.0)


def test_registry_lookup_and_errors():
    assert {"dpo", "mixdpo"} <= set(available_losses())
    assert get_loss("dpo", beta=0.5).beta == 0.5
    with pytest.raises(KeyError, match="unknown loss_type 'nope'"):
        get_loss("nope")
    with pytest.raises(TypeError, match="bad loss_kwargs"):
        get_loss("dpo", gamma=3)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("dpo")(
            type("Other", (PreferenceLoss,), {"__call__": lambda self, b: b.margin})
        )


def test_registered_loss_receives_extra_columns():
    @register_loss("test_variance_shift", overwrite=True)
    class VarianceShift(PreferenceLoss):
        extra_columns = ("V",)

        def __call__(self, batch: PairBatch) -> torch.Tensor:
            return -torch.nn.functional.logsigmoid(batch.margin) + batch.extras["V"]

    loss = get_loss("test_variance_shift")
    batch = PairBatch(
        LOGPS["policy_chosen_logps"],
        LOGPS["policy_rejected_logps"],
        LOGPS["ref_chosen_logps"],
        LOGPS["ref_rejected_logps"],
        extras={"V": torch.arange(4, dtype=torch.float64)},
    )
    expected = np.log1p(np.exp(-DELTA)) + np.arange(4)
    np.testing.assert_allclose(loss(batch).numpy(), expected, atol=1e-14)
    np.testing.assert_allclose(batch.margin.numpy(), DELTA, atol=1e-14)


def _batch(**extra):
    keys = ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    values = [LOGPS[k] for k in ("policy_chosen_logps", "policy_rejected_logps",
                                 "ref_chosen_logps", "ref_rejected_logps")]  # fmt: skip
    return PairBatch(**dict(zip(keys, values, strict=True)), **extra)


def test_trl_named_losses_against_hand_formulas():
    """TRL's names on the hand-computed margins DELTA (the TRL side-by-side checks are in
    test_alignment_trl_parity.py)."""
    beta, eps = 0.5, 0.2
    lengths = torch.tensor([4.0, 2.0, 5.0, 1.0], dtype=torch.float64)
    rej_lengths = torch.tensor([3.0, 6.0, 1.0, 2.0], dtype=torch.float64)
    batch = _batch(chosen_lengths=lengths, rejected_lengths=rej_lengths)
    ls = lambda x: -np.log1p(np.exp(-x))  # noqa: E731  (log sigmoid)
    np.testing.assert_allclose(get_loss("sigmoid", beta=beta)(batch), -ls(beta * DELTA))
    np.testing.assert_allclose(get_loss("hinge", beta=beta)(batch), np.maximum(0, 1 - beta * DELTA))
    chosen_ratio = (LOGPS["policy_chosen_logps"] - LOGPS["ref_chosen_logps"]).numpy()
    rejected_ratio = (LOGPS["policy_rejected_logps"] - LOGPS["ref_rejected_logps"]).numpy()
    per_token = chosen_ratio / lengths.numpy() - rejected_ratio / rej_lengths.numpy()
    np.testing.assert_allclose(get_loss("ipo", beta=beta)(batch), (per_token - 1 / (2 * beta)) ** 2)
    robust = (-(1 - eps) * ls(beta * DELTA) + eps * ls(-beta * DELTA)) / (1 - 2 * eps)
    np.testing.assert_allclose(
        get_loss("robust", beta=beta, label_smoothing=eps)(batch), robust, rtol=1e-12
    )
    np.testing.assert_allclose(  # eps = 0 is DPO
        get_loss("robust", beta=beta)(batch), get_loss("dpo", beta=beta)(batch), rtol=1e-12
    )
    nll = -LOGPS["policy_chosen_logps"].sum().item() / lengths.sum().item()
    np.testing.assert_allclose(get_loss("sft")(batch), [nll] * 4)
    with pytest.raises(ValueError, match="needs the completion token counts"):
        get_loss("ipo")(_batch())
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 0.5\)"):
        get_loss("robust", label_smoothing=0.5)


def test_weighted_loss_adds_its_losses():
    from alignment.losses import WeightedLoss

    batch = _batch(chosen_lengths=torch.ones(4, dtype=torch.float64))
    combined = WeightedLoss([get_loss("sigmoid", beta=0.5), get_loss("sft")], [1.0, 0.3])
    expected = get_loss("sigmoid", beta=0.5)(batch) + 0.3 * get_loss("sft")(batch)
    torch.testing.assert_close(combined(batch), expected)
    assert combined.name == "sigmoid+sft" and not combined.uses_strength
    assert combined.reward_scale(batch) == 0.5  # the preference loss's, not the NLL term's
    with pytest.raises(ValueError, match="1 weights for 2 losses"):
        WeightedLoss([get_loss("sigmoid"), get_loss("sft")], [1.0])
