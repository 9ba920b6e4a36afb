"""The annotator-level MixDPO loss against direct quadrature (``scipy.integrate.quad``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, special, stats

from alignment.losses import PairBatch, get_loss
from alignment.losses.panel import (
    FEATURES_COLUMN,
    GROUP_COLUMN,
    LEVELS_COLUMN,
    ROW_COLUMN,
    TRAINING_CV_FLOOR,
    PanelMemory,
    PanelMixDPOLoss,
    floored_cv_params,
    panel_mixdpo_loss,
)
from mixlogit.conditional import StrengthDesign
from mixlogit.torch._ops import OPS
from mixlogit.torch.conditional import ConditionalStrength

# the references (scipy quadrature, scipy.stats) are float64 (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("torch_float64")


def _panel_log_likelihood(dist, d: np.ndarray) -> float:
    """``log int p(beta) prod_i sigmoid(beta d_i) dbeta`` by adaptive quadrature."""

    def integrand(beta):
        return dist.pdf(beta) * np.exp(np.sum(special.log_expit(beta * d)))

    value, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-12, limit=400)
    return float(np.log(value))


def _batch(margin, **extras):
    zero = torch.zeros_like(margin)
    return PairBatch(margin, zero, zero, zero, extras=extras)


def test_batch_loss_is_minus_the_sum_of_annotator_log_likelihoods_per_pair():
    margin = torch.tensor([2.0, -1.5, 0.7, 4.0, -3.0, 1.2, 0.3])
    group = torch.tensor([17, 3, 17, 3, 17, 40, 3])  # any ids, interleaved
    strength = ConditionalStrength("gamma", mean=0.8, cv=0.6)
    with torch.no_grad():
        per_pair = panel_mixdpo_loss(margin, group, strength)
    shape, rate = 1 / 0.36, 1 / 0.36 / 0.8
    dist = stats.gamma(a=shape, scale=1 / rate)
    expected = -sum(
        _panel_log_likelihood(dist, margin[group == g].numpy()) for g in (3, 17, 40)
    ) / len(margin)
    assert float(per_pair.mean()) == pytest.approx(expected, rel=1e-9)
    # a pair alone in its group is pair-level MixDPO
    alone = int(np.flatnonzero(group.numpy() == 40)[0])
    with torch.no_grad():
        pair_level = -strength.log_marginal(margin[alone : alone + 1])
    assert float(per_pair[alone]) == pytest.approx(float(pair_level[0]), rel=1e-10)


def test_each_annotator_takes_its_own_covariate_parameters():
    raters = pd.DataFrame({"subgroup": ["slow", "fast", "slow"], "years": [1.0, 9.0, 4.0]})
    design = StrengthDesign.fit(raters, levels=["subgroup"], numeric=["years"])
    strength = ConditionalStrength("lognormal", design, method="quadrature", num_points=64)
    with torch.no_grad():
        strength.log_mean_level_z.copy_(torch.tensor([1.2, -0.8]))
        strength.log_mean_coef.copy_(torch.tensor([0.3]))
        strength.log_cv_level_z.copy_(torch.tensor([-0.5, 0.4]))
    encoded = design.encode(raters)
    # rows: annotators 0, 1, 2 with 3, 2, 2 pairs
    group = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    margin = torch.tensor([1.0, -2.0, 3.0, 0.5, 2.5, -0.4, 1.5])
    levels = torch.as_tensor(encoded.level_index)[group]
    features = torch.as_tensor(encoded.features)[group]
    loss = PanelMixDPOLoss("annotator", uses_levels=True, uses_features=True)
    assert loss.extra_columns == (GROUP_COLUMN, LEVELS_COLUMN, FEATURES_COLUMN)
    batch = _batch(
        margin, **{GROUP_COLUMN: group, LEVELS_COLUMN: levels, FEATURES_COLUMN: features}
    )
    batch.strength = strength
    with torch.no_grad():
        value = float(loss(batch).mean())
    natural = {k: v.detach() for k, v in strength.group_params(raters).items()}
    expected = 0.0
    for g in range(3):
        dist = stats.lognorm(s=float(natural["scale"][g]), scale=math.exp(float(natural["loc"][g])))
        expected -= _panel_log_likelihood(dist, margin[group == g].numpy())
    assert value == pytest.approx(expected / len(margin), rel=1e-9)


def test_pair_level_with_covariates_and_the_prior_term():
    raters = {"subgroup": ["a", "b", "a", "c"]}
    design = StrengthDesign.fit(raters, levels=["subgroup"])
    strength = ConditionalStrength("gamma", design, tau_mean=0.5)
    with torch.no_grad():
        strength.log_mean_level_z.copy_(torch.tensor([0.5, -1.0, 2.0]))
    levels = torch.as_tensor(design.encode(raters).level_index)
    margin = torch.tensor([1.0, 2.0, -1.0, 3.0])
    loss = get_loss("panel_mixdpo", level="pair", uses_levels=True, num_train_pairs=50)
    batch = _batch(margin, **{LEVELS_COLUMN: levels})
    batch.strength = strength
    per_pair = loss(batch)
    natural = {k: v.detach() for k, v in strength.group_params(raters).items()}
    direct = -strength.log_marginal(margin, covariates=design.encode(raters))
    expected = direct - strength.log_prior() / 50
    torch.testing.assert_close(per_pair, expected, rtol=1e-12, atol=0)
    shape, rate = float(natural["shape"][3]), float(natural["rate"][3])
    by_quad = -_panel_log_likelihood(stats.gamma(a=shape, scale=1 / rate), np.array([3.0]))
    assert float(direct[3].detach()) == pytest.approx(by_quad, rel=1e-9)


def test_gradients_reach_the_margins_and_every_strength_parameter():
    raters = {"subgroup": ["a", "b"]}
    design = StrengthDesign.fit(raters, levels=["subgroup"])
    strength = ConditionalStrength("gamma", design)
    margin = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)
    group = torch.tensor([0, 0, 1, 1])
    levels = torch.tensor([[0], [0], [1], [1]])
    with torch.no_grad():
        strength.log_mean_level_z.fill_(0.3)
    panel_mixdpo_loss(margin, group, strength, levels=levels).mean().backward()
    assert margin.grad is not None and torch.all(margin.grad != 0)
    for name, param in strength.named_parameters():
        assert param.grad is not None and torch.all(torch.isfinite(param.grad)), name


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_a_strength_narrower_than_the_panel_rule_is_read_at_the_cv_floor(family):
    # A homogeneous population drives the learned CV to zero; the loss must not fail there
    # (the panel rule refuses CV < 0.01) but score the floored CV f + cv^2 / (4 f).
    margin = torch.tensor([2.5, -0.4, 1.1, 0.9, -1.7])
    group = torch.tensor([5, 5, 2, 5, 2])
    mean, cv = 1.3, 2e-3
    strength = ConditionalStrength(family, mean=mean, cv=cv)
    used_cv = TRAINING_CV_FLOOR + cv**2 / (4 * TRAINING_CV_FLOOR)
    per_pair = panel_mixdpo_loss(margin, group, strength)
    if family == "gamma":
        shape = 1 / used_cv**2
        dist = stats.gamma(a=shape, scale=mean / shape)
    else:
        sigma = math.sqrt(math.log1p(used_cv**2))
        dist = stats.lognorm(s=sigma, scale=mean * math.exp(-(sigma**2) / 2))

    def narrow(d):  # the bulk only: a prior this narrow defeats quad over (0, inf)
        lo, hi = mean * (1 - 40 * used_cv), mean * (1 + 40 * used_cv)
        value, _ = integrate.quad(
            lambda b: dist.pdf(b) * np.exp(np.sum(special.log_expit(b * d))),
            lo,
            hi,
            epsabs=0,
            epsrel=1e-12,
            limit=400,
        )
        return math.log(value)

    expected = -sum(narrow(margin[group == g].numpy()) for g in (2, 5)) / len(margin)
    assert float(per_pair.detach().mean()) == pytest.approx(expected, rel=1e-9)
    per_pair.mean().backward()
    for name, param in strength.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert float(strength.log_cv.grad) != 0.0  # the CV can still grow back

    # at or above twice the floor the parameters pass through untouched
    wide = strength.spec.family.from_mean_cv(
        OPS, torch.tensor([mean, mean]), torch.tensor([2 * TRAINING_CV_FLOOR, 0.7])
    )
    assert floored_cv_params(strength.spec.family, wide) is wide


def test_missing_columns_and_bad_arguments_are_named():
    strength = ConditionalStrength("gamma", StrengthDesign.fit({"s": ["a", "b"]}, levels=["s"]))
    loss = PanelMixDPOLoss("annotator", uses_levels=True)
    batch = _batch(torch.tensor([1.0, 2.0]), **{LEVELS_COLUMN: torch.tensor([[0], [1]])})
    batch.strength = strength
    with pytest.raises(ValueError, match="strength_group"):
        loss(batch)
    batch = _batch(torch.tensor([1.0, 2.0]), **{GROUP_COLUMN: torch.tensor([0, 1])})
    batch.strength = strength
    with pytest.raises(ValueError, match="strength_levels"):
        loss(batch)
    with pytest.raises(ValueError, match="level must be one of"):
        PanelMixDPOLoss("rater")
    with pytest.raises(ValueError, match="num_train_pairs"):
        PanelMixDPOLoss(num_train_pairs=0)
    batch.strength = None
    with pytest.raises(ValueError, match="ConditionalStrength"):
        PanelMixDPOLoss()(batch)


def _pass_in_pieces(loss, strength, margin, group, pieces):
    """Score ``pieces`` (lists of rows) in turn; the sum of each piece's annotator terms."""
    total = 0.0
    for piece in pieces:
        rows = torch.tensor(piece)
        batch = _batch(
            margin[rows].clone().requires_grad_(True),
            **{GROUP_COLUMN: group[rows], ROW_COLUMN: rows},
        )
        batch.strength = strength
        total = total + loss(batch).sum()
    return total


def test_a_pass_with_memory_adds_up_to_the_full_panel_log_likelihood():
    # Two annotators, their pairs cut into pieces of 1-3 rows and interleaved over batches.
    rng = np.random.default_rng(20261201)
    margin = torch.tensor(rng.normal(0.0, 3.0, size=11))
    group = torch.tensor([5, 5, 9, 5, 9, 9, 5, 5, 9, 5, 9])
    pieces = [[0, 2], [1, 4, 5], [3], [8, 6], [7, 9, 10]]
    strength = ConditionalStrength("gamma", mean=1.3, cv=0.9)
    loss = get_loss("panel_mixdpo", level="annotator", memory=True)
    total = _pass_in_pieces(loss, strength, margin, group, pieces)
    # Each pair carries -L/n_g, so a piece's terms add up to -L_piece (conditional on the past).
    shape, rate = 1 / 0.81, 1 / 0.81 / 1.3
    dist = stats.gamma(a=shape, scale=1 / rate)
    full = sum(_panel_log_likelihood(dist, margin[group == g].numpy()) for g in (5, 9))
    assert float(total.detach()) == pytest.approx(-full, rel=1e-9)
    # and its strength gradient is the full panel's
    strength.zero_grad()
    total.backward()
    got = [p.grad.clone() for p in strength.parameters()]
    strength.zero_grad()
    whole = panel_mixdpo_loss(margin, group, strength)
    whole.sum().backward()
    for g_memory, p in zip(got, strength.parameters(), strict=True):
        torch.testing.assert_close(g_memory, p.grad, rtol=1e-9, atol=1e-12)
    # the second pass starts afresh and adds up to the same
    again = _pass_in_pieces(loss, strength, margin, group, [[9, 10], [0, 1, 2], [3, 4, 5, 6, 7, 8]])
    assert float(again.detach()) == pytest.approx(-full, rel=1e-9)


def test_without_memory_pieces_are_scored_alone_and_evaluation_leaves_the_memory_alone():
    margin = torch.tensor([2.0, 1.5, -0.5, 3.0])
    group = torch.tensor([1, 1, 1, 1])
    strength = ConditionalStrength("gamma", mean=1.0, cv=1.2)
    pieces = [[0, 1], [2, 3]]
    composite = _pass_in_pieces(
        get_loss("panel_mixdpo", level="annotator"), strength, margin, group, pieces
    )
    with torch.no_grad():
        alone = sum(panel_mixdpo_loss(margin[p], group[p], strength).sum() for p in pieces)
        full = panel_mixdpo_loss(margin, group, strength).sum()
    assert float(composite) == pytest.approx(float(alone), rel=1e-12)
    assert abs(float(full) - float(alone)) > 1e-3  # the panel's information across pieces
    loss = get_loss("panel_mixdpo", level="annotator", memory=True)
    batch = _batch(margin[:2], **{GROUP_COLUMN: group[:2], ROW_COLUMN: torch.tensor([0, 1])})
    batch.strength = strength
    with torch.no_grad():  # evaluation: scored alone, nothing remembered
        loss(batch)
    assert len(loss.memory) == 0


def test_memory_errors_are_named():
    with pytest.raises(ValueError, match="memory applies to level='annotator'"):
        get_loss("panel_mixdpo", level="pair", memory=True)
    loss = get_loss("panel_mixdpo", level="annotator", memory=True)
    margin = torch.tensor([1.0, 2.0], requires_grad=True)
    batch = _batch(margin, **{GROUP_COLUMN: torch.tensor([0, 0])})
    batch.strength = ConditionalStrength("gamma", mean=1.0, cv=1.0)
    with pytest.raises(ValueError, match="strength_row"):
        loss(batch)
    with pytest.raises(ValueError, match="needs the batch's dataset rows"):
        panel_mixdpo_loss(
            margin,
            torch.tensor([0, 0]),
            ConditionalStrength("gamma", mean=1.0, cv=1.0),
            memory=PanelMemory(),
            rows=torch.tensor([0]),
        )


# ----------------------------------------------------------------------------- refit


def _gamma_panel_objective(log_mean: float, log_cv: float, margin, group) -> float:
    """``-sum_g log-likelihood_g`` of a Gamma(mean, CV) strength by scipy quadrature (the
    log density written out: ``scipy.stats`` frozen pdfs are slow in ``quad``'s loop)."""
    mean, cv = math.exp(log_mean), math.exp(log_cv)
    shape, scale = 1 / cv**2, mean * cv**2
    const = -special.gammaln(shape) - shape * math.log(scale)
    total = 0.0
    for g in np.unique(group):
        d = margin[group == g]

        def integrand(b, d=d):
            log_choices = float(np.sum(special.log_expit(b * d)))
            return math.exp(const + (shape - 1) * math.log(b) - b / scale + log_choices)

        value, _ = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)
        total -= math.log(value)
    return total


def test_refit_is_the_maximum_likelihood_strength_of_the_fixed_margins():
    from alignment.losses.panel import refit_panel_strength

    rng = np.random.default_rng(20261201)
    group = np.repeat(np.arange(6), 5)
    beta = rng.gamma(2.0, 0.5, size=6)[group]  # mean 1, CV 0.71
    margin = rng.normal(0.0, 3.0, size=group.size)
    margin = np.where(rng.random(group.size) < special.expit(beta * margin), margin, -margin)
    start = ConditionalStrength("gamma", mean=0.3, cv=0.4)
    refit = refit_panel_strength(start, torch.tensor(margin), torch.tensor(group))
    # the input is left as it was
    assert float(start.log_mean.detach()) == pytest.approx(math.log(0.3))
    fitted = refit.strength
    x = np.array([float(fitted.log_mean.detach()), float(fitted.log_cv.detach())])
    assert refit.objective == pytest.approx(_gamma_panel_objective(*x, margin, group), rel=1e-9)
    assert refit.start_objective > refit.objective + 1.0
    assert refit.gradient_norm < 1e-6
    # stationary for the independent objective: central differences (error ~1e-6 here)
    step = 1e-4
    for k in range(2):
        e = np.eye(2)[k] * step
        slope = (
            _gamma_panel_objective(*(x + e), margin, group)
            - _gamma_panel_objective(*(x - e), margin, group)
        ) / (2 * step)
        assert abs(slope) < 1e-4, (k, slope)


def test_refit_with_levels_is_the_partially_pooled_map():
    from alignment.losses.panel import _refit_bounds, refit_panel_strength

    rng = np.random.default_rng(1202)
    group = np.repeat(np.arange(16), 8)
    kind = np.where(group < 8, "sure", "unsure")
    beta = np.where(kind == "sure", 3.0, 0.3)
    margin = rng.normal(0.0, 2.0, size=group.size)
    margin = np.where(rng.random(group.size) < special.expit(beta * margin), margin, -margin)
    design = StrengthDesign.fit(pd.DataFrame({"kind": kind}), levels=["kind"])
    levels = torch.as_tensor(design.encode(pd.DataFrame({"kind": kind})).level_index)
    strength = ConditionalStrength("gamma", design)
    refit = refit_panel_strength(strength, torch.tensor(margin), torch.tensor(group), levels=levels)
    fitted = refit.strength
    with torch.no_grad():
        means = {k: float(v["mean"]) for k, v in fitted.level_moments().items()}
    # truth 10x; the partial pooling shrinks the ratio but keeps it well away from 1
    assert means["sure"] > 2 * means["unsure"], means

    def objective(module) -> float:
        with torch.no_grad():
            per_pair = panel_mixdpo_loss(
                torch.tensor(margin), torch.tensor(group), module, levels=levels
            )
            return float(per_pair.sum() - module.log_prior())

    # a stationary point of likelihood + prior (projected on the refit's box), and no nearby
    # point inside the box is better
    assert refit.objective == pytest.approx(objective(fitted), rel=1e-12)
    assert refit.gradient_norm < 1e-5
    for name, value in fitted.named_parameters():
        low, high = _refit_bounds(name)
        for index in range(value.numel()):
            for step in (-1e-3, 1e-3):
                moved = ConditionalStrength.from_config(fitted.config())
                moved.load_state_dict(fitted.state_dict())
                with torch.no_grad():
                    flat = getattr(moved, name).view(-1)
                    if not low <= float(flat[index]) + step <= high:
                        continue
                    flat[index] += step
                assert objective(moved) >= refit.objective - 1e-9, (name, index, step)


def test_refit_names_a_non_finite_margin():
    from alignment.losses.panel import refit_panel_strength

    margin = torch.tensor([1.0, 2.0, float("nan"), 0.5])
    with pytest.raises(ValueError, match="margin row 2 is nan; 1 of 4"):
        refit_panel_strength(ConditionalStrength("gamma"), margin, torch.tensor([0, 0, 1, 1]))
