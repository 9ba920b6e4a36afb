"""Heterogeneous-preference losses against hand-computed values and exact identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alignment.losses import PairBatch, available_losses, get_loss
from alignment.losses.heterogeneous import (
    agreement_only_dpo_loss,
    agreement_only_nll,
    estimate_pair_variance,
    unanimous_pairs,
    variance_corrected_dpo_loss,
    variance_corrected_log_likelihood,
)

LN3 = math.log(3.0)
f64 = torch.float64


def test_corrected_likelihood_hand_values():
    # sigmoid(ln 3) = 3/4, sigmoid''(ln 3) = 3/4 * 1/4 * (1 - 3/2) = -3/32
    h = torch.tensor([LN3, -LN3, 0.0], dtype=f64)
    V = torch.tensor([2.0, 2.0, 5.0], dtype=f64)
    logp = variance_corrected_log_likelihood(h, V, alpha=1.0)
    # p = 3/4 - (1/2)(3/32)(2) = 21/32; p(-h) = 1/4 + 3/32 = 11/32; at h = 0 sigmoid'' = 0.
    expected = torch.log(torch.tensor([21 / 32, 11 / 32, 0.5], dtype=f64))
    torch.testing.assert_close(logp, expected, rtol=0, atol=1e-15)
    # alpha scales the correction: alpha = 0.5, V = 2 -> p = 3/4 - 3/64 = 45/64
    logp_half = variance_corrected_log_likelihood(h[:1], V[:1], alpha=0.5)
    assert logp_half.item() == pytest.approx(math.log(45 / 64), abs=1e-15)


def test_corrected_likelihood_is_a_bernoulli_and_reduces_to_dpo():
    h = torch.linspace(-30, 30, 601, dtype=f64)
    V = torch.full_like(h, 3.0)
    p = (
        variance_corrected_log_likelihood(h, V).exp()
        + variance_corrected_log_likelihood(-h, V).exp()
    )
    torch.testing.assert_close(p, torch.ones_like(p), rtol=0, atol=1e-13)
    zero = variance_corrected_log_likelihood(h, torch.zeros_like(h))
    torch.testing.assert_close(zero, F.logsigmoid(h), rtol=0, atol=0)


def test_corrected_bound_is_tight_and_gradients_finite():
    eps = 1e-3
    # at sigmoid(h) = 3/4 the factor (1 - s)(1 - 2 s) reaches its minimum -1/8, so the clamped
    # correction c = 8 (1 - eps) gives p = s * eps exactly.
    h = torch.tensor([LN3], dtype=f64)
    logp = variance_corrected_log_likelihood(h, torch.tensor([100.0], dtype=f64), eps=eps)
    assert logp.item() == pytest.approx(math.log(0.75 * eps), rel=1e-12)
    # the other side: 1 - p >= eps (1 - s), tight at s = 1/4
    logp_neg = variance_corrected_log_likelihood(-h, torch.tensor([100.0], dtype=f64), eps=eps)
    assert 1 - logp_neg.exp().item() == pytest.approx(0.75 * eps, rel=1e-9)
    # extreme margins and variances: finite losses and gradients
    h = torch.tensor([-60.0, -5.0, 0.3, 1.1, 40.0], dtype=f64, requires_grad=True)
    V = torch.tensor([1e6, 1e3, 50.0, 16.0, 1e8], dtype=f64)
    loss = -variance_corrected_log_likelihood(h, V)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(h.grad).all()


def test_first_order_correction_beats_dpo_on_two_types():
    # two equally likely types with D = m +- s: E sigmoid(D) vs the corrected and plain models
    m, s = 0.8, 0.6
    truth = 0.5 * (1 / (1 + math.exp(-(m + s))) + 1 / (1 + math.exp(-(m - s))))
    h = torch.tensor([m], dtype=f64)
    corrected = variance_corrected_log_likelihood(h, torch.tensor([s * s], dtype=f64)).exp().item()
    plain = torch.sigmoid(h).item()
    # the first-order term removes > 90% of DPO's error (the rest is O(s^4))
    assert abs(corrected - truth) < 0.1 * abs(plain - truth)


def test_corrected_dpo_loss_plumbing_and_registry():
    pc = torch.tensor([-1.0, -2.0], dtype=f64)
    pr = torch.tensor([-1.5, -1.0], dtype=f64)
    rc = torch.tensor([-1.2, -2.2], dtype=f64)
    rr = torch.tensor([-1.2, -1.1], dtype=f64)
    V = torch.tensor([0.4, 1.2], dtype=f64)
    margin = (pc - rc) - (pr - rr)  # [0.5, -0.9]
    loss = variance_corrected_dpo_loss(pc, pr, rc, rr, V, beta=0.5, alpha=2.0)
    s = torch.sigmoid(0.5 * margin)
    expected = -torch.log(s + 0.5 * 2.0 * s * (1 - s) * (1 - 2 * s) * V)
    torch.testing.assert_close(loss, expected, rtol=1e-13, atol=1e-15)
    assert {"variance_corrected_dpo", "agreement_dpo"} <= set(available_losses())
    registered = get_loss("variance_corrected_dpo", beta=0.5, alpha=2.0)
    batch = PairBatch(pc, pr, rc, rr, extras={"reward_variance": V})
    torch.testing.assert_close(registered(batch), expected, rtol=1e-13, atol=1e-15)
    assert registered.reward_scale(batch) == 0.5
    with pytest.raises(
        ValueError, match=r"variance must be finite and >= 0; got -1.0 at index \(1,\)"
    ):
        variance_corrected_dpo_loss(pc, pr, rc, rr, torch.tensor([0.0, -1.0], dtype=f64))
    with pytest.raises(ValueError, match="alpha must be"):
        get_loss("variance_corrected_dpo", alpha=-1.0)
    with pytest.raises(ValueError, match="variance must have shape"):
        variance_corrected_dpo_loss(pc, pr, rc, rr, V[:1])
    # V from another column (e.g. estimated from same-annotator pairs); the instance's
    # extra_columns tell the trainer and collator which column to pass
    estimated = get_loss(
        "variance_corrected_dpo", beta=0.5, alpha=2.0, variance_column="estimated_V"
    )
    assert estimated.extra_columns == ("estimated_V",)
    assert registered.extra_columns == ("reward_variance",)
    other = PairBatch(pc, pr, rc, rr, extras={"estimated_V": V, "reward_variance": 0 * V})
    torch.testing.assert_close(estimated(other), expected, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="column 'estimated_V' must hold one number per pair"):
        estimated(PairBatch(pc, pr, rc, rr, extras={"estimated_V": V[:, None].repeat(1, 2)}))
    with pytest.raises(ValueError, match="variance_column must be a column name"):
        get_loss("variance_corrected_dpo", variance_column="")


def test_unanimity_gives_temperature_one_over_T():
    # P(all T types prefer y_w | unanimous) = sigmoid(sum_t D_t) exactly
    rng = np.random.default_rng(0)
    D = rng.normal(0, 2, size=(50, 4))
    p_all = np.prod(1 / (1 + np.exp(-D)), axis=1)
    q_all = np.prod(1 / (1 + np.exp(D)), axis=1)
    np.testing.assert_allclose(
        p_all / (p_all + q_all), 1 / (1 + np.exp(-D.sum(axis=1))), rtol=1e-12
    )


def test_agreement_only_hand_values():
    labels = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 1]])
    kept, sign = unanimous_pairs(labels)
    assert kept.tolist() == [True, True, False, False]
    assert sign.tolist() == [1.0, -1.0, 0.0, 0.0]
    # T = 3: loss = -log sigmoid(3 * sign * h); with 3h = ln 3 -> -log(3/4) = log(4/3)
    h = torch.tensor([LN3 / 3, LN3 / 3, 5.0, -5.0], dtype=f64)
    loss = agreement_only_nll(h, labels)
    expected = torch.tensor([math.log(4 / 3), math.log(4), 0.0, 0.0], dtype=f64)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-15)
    # through log-probs with beta, and the registered class
    pc = torch.tensor([0.2, 0.2, 0.0, 0.0], dtype=f64)
    zero = torch.zeros(4, dtype=f64)
    beta = 0.1
    pr = pc - h / beta
    torch.testing.assert_close(
        agreement_only_dpo_loss(pc, pr, zero, zero, labels, beta=beta),
        expected,
        rtol=1e-12,
        atol=1e-14,
    )
    batch = PairBatch(pc, pr, zero, zero, extras={"type_labels": labels})
    torch.testing.assert_close(
        get_loss("agreement_dpo", beta=beta)(batch), expected, rtol=1e-12, atol=1e-14
    )
    with pytest.raises(ValueError, match=r"got 0\.5 for pair 1, type 2"):
        unanimous_pairs(torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.5]]))


def _type_mixture_data(num_annotators: int, pairs_each: int, seed: int, spread: float):
    # 12 responses, 2 equally common types whose rewards differ by +-spread * z
    rng = np.random.default_rng(seed)
    n = 12
    base = rng.normal(0, 1, n)
    z = rng.normal(0, 1, n)
    rewards = np.stack([base + spread * z, base - spread * z])
    N = num_annotators * pairs_each
    a = rng.integers(0, n, N)
    b = (a + rng.integers(1, n, N)) % n
    types = np.repeat(rng.integers(0, 2, num_annotators), pairs_each)
    d = rewards[types, a] - rewards[types, b]
    a_wins = rng.random(N) < 1 / (1 + np.exp(-d))
    chosen, rejected = np.where(a_wins, a, b), np.where(a_wins, b, a)
    true_v = (spread * (z[chosen] - z[rejected])) ** 2  # Var of +-x with weights 1/2 is x^2
    eye = torch.eye(n, dtype=f64)
    ids = torch.as_tensor(np.repeat(np.arange(num_annotators), pairs_each))
    return eye[torch.as_tensor(chosen)], eye[torch.as_tensor(rejected)], ids, true_v


def test_variance_estimator_recovers_two_types():
    xc, xr, ids, true_v = _type_mixture_data(600, 8, seed=1, spread=1.5)
    est = estimate_pair_variance(xc, xr, ids, num_types=2, num_restarts=2, ridge=0.1)
    assert est.bic[2] < est.bic[1]
    v = est.variance.numpy()
    assert np.corrcoef(v, true_v)[0, 1] > 0.95
    assert v.mean() == pytest.approx(true_v.mean(), rel=0.15)
    np.testing.assert_allclose(sorted(est.type_weights.tolist()), [0.5, 0.5], atol=0.06)
    # the returned V is the weighted variance of the fitted per-type differences
    diffs = (xc - xr) @ est.type_coefficients.T
    w = est.type_weights
    manual = (diffs**2) @ w - (diffs @ w) ** 2
    torch.testing.assert_close(est.variance, manual, rtol=1e-9, atol=1e-12)


def test_variance_estimator_homogeneous_and_errors():
    xc, xr, ids, _ = _type_mixture_data(300, 6, seed=2, spread=0.0)
    est = estimate_pair_variance(xc, xr, ids, num_types=2, num_restarts=2)
    # BIC prefers one type: no spurious heterogeneity
    assert len(est.type_weights) == 1 and est.bic[1] < est.bic[2]
    assert est.variance.abs().max().item() < 1e-12
    with pytest.raises(ValueError, match="at least 2 pairs"):
        estimate_pair_variance(xc, xr, torch.arange(xc.shape[0]), num_types=2)
    with pytest.raises(ValueError, match="annotator_ids must have shape"):
        estimate_pair_variance(xc, xr, ids[:5])
