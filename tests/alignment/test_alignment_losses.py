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
