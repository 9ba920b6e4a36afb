"""Heterogeneity in means and variances: covariates in the mixing distribution.

The likelihood is checked against a NumPy reference written here from the parameter *names*
(not from the layout's positions), in every layout of the likelihood (unit blocks, the
draw-chunked grid, the gathered layout of an unbalanced panel, shared quadrature nodes); the
gradient and the unit scores against finite differences; recovery on data simulated with a
seed and a structure (a binary and a continuous covariate) that the code was not developed on.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from mixlogit import MixedLogit
from mixlogit.data import ChoiceData, ChoiceDataError
from mixlogit.draws import standardised_draws
from mixlogit.estimation import build_problem
from mixlogit.likelihood import x64
from mixlogit.quadrature import quadrature_rule
from mixlogit.results import EstimationResults
from mixlogit.simulate import simulate_choices

#: every kind of random coefficient with covariates on its location and, except gamma, spread
MODEL = MixedLogit(
    ["ASC_1"],
    {
        "x1": "normal",
        "price": "-lognormal",
        "x3": "triangular",
        "x5": "truncnormal",
        "x6": "-gamma",
        "x7": "normal",
        "x8": "lognormal",
    },
    correlated=["x7", "x8"],
    mean_covariates={"x1": ["z1"], "price": ["z1", "z2"], "x3": ["z2"], "x6": ["z1"], "x8": "z2"},
    sd_covariates={"x1": ["z2"], "price": ["z1"], "x5": ["z1"], "x7": ["z1"]},
)


def reference_coefficients(model, theta, standard, z):
    """``(U, R, Kr)`` coefficients from standardised draws ``(U, R, Kr)`` and covariates
    ``z`` ``(U, Q)`` (columns ``model.spec.covariates``), read by parameter name."""
    p = dict(zip(model.parameter_names, theta, strict=True))
    covariates = model.spec.covariates
    mean = dict(model.spec.mean_covariates)
    sd = dict(model.spec.sd_covariates)

    def shift(name):  # (U, 1)
        total = sum(p[f"{name}:{c}"] * z[:, covariates.index(c)] for c in mean.get(name, ()))
        return np.zeros((len(z), 1)) + np.reshape(total, (-1, 1))

    def factor(name):
        log = sum(p[f"ln_sd.{name}:{c}"] * z[:, covariates.index(c)] for c in sd.get(name, ()))
        return np.exp(np.zeros((len(z), 1)) + np.reshape(log, (-1, 1)))

    out = np.empty(np.broadcast_shapes(standard.shape, (len(z), 1, standard.shape[-1])))
    names = list(model.random)
    correlated = list(model.correlated)
    for k, (name, mixing) in enumerate(model.random.items()):
        if name in correlated:
            continue
        a, e = (
            p[name] if mixing.distribution != "gamma" else p[f"ln_shape.{name}"],
            standard[..., k],
        )
        kind = mixing.distribution
        if kind == "gamma":
            value = np.exp(p[f"ln_scale.{name}"] + shift(name)) * special.gammaincinv(np.exp(a), e)
        else:
            b = p[f"spread.{name}" if kind in ("triangular", "uniform") else f"sd.{name}"]
            location, spread = a + shift(name), b * factor(name)
            if kind in ("normal", "triangular", "uniform"):
                value = location + spread * e
            elif kind == "lognormal":
                value = np.exp(location + spread * e)
            else:  # truncated normal
                scale = np.abs(spread)
                value = stats.truncnorm.ppf(e, -location / scale, np.inf, loc=location, scale=scale)
        out[..., k] = mixing.sign * value
    if correlated:
        m = len(correlated)
        chol = np.zeros((m, m))
        for i, row in enumerate(correlated):
            for j, col in enumerate(correlated[: i + 1]):
                chol[i, j] = p[f"chol.{row}.{col}"]
        idx = [names.index(n) for n in correlated]
        spread = standard[..., idx] @ chol.T
        for pos, name in enumerate(correlated):
            k = names.index(name)
            value = p[name] + shift(name) + factor(name) * spread[..., pos]
            if model.random[name].distribution == "lognormal":
                value = np.exp(value)
            out[..., k] = model.random[name].sign * value
    return out


def reference_unit_loglik(model, data, theta, standard, log_weights, panel=True):
    """Simulated log-likelihood of each unit (person, or situation with ``panel=False``)."""
    arrays = data.to_arrays(model.variables)
    by_panel = panel and data.has_panel
    z = data.unit_values(model.spec.covariates, by_panel=by_panel)
    unit = arrays.panel if by_panel else np.arange(arrays.X.shape[0])
    kf = model.layout.num_fixed
    betas = reference_coefficients(model, theta, standard, z)  # (U, R, Kr)
    v = np.einsum("sjk,k->sj", arrays.X[:, :, :kf], theta[:kf])[:, :, None]
    v = v + np.einsum("sjk,srk->sjr", arrays.X[:, :, kf:], betas[unit])
    v = np.where(arrays.available[:, :, None], v, -np.inf)
    logp = v[np.arange(len(v)), arrays.chosen] - special.logsumexp(v, axis=1)  # (S, R)
    per_unit = np.zeros((len(z), logp.shape[1]))
    np.add.at(per_unit, unit, logp)
    return special.logsumexp(per_unit + log_weights, axis=1)


@pytest.fixture(scope="module")
def case():
    names = MODEL.parameter_names
    truth = dict.fromkeys(names, 0.2)
    data = simulate_choices(MODEL, truth, num_people=16, situations_per_person=3, seed=5)
    theta = np.random.default_rng(3).normal(0.0, 0.3, len(names))
    return data, theta


def test_parameter_names_and_specification_round_trip():
    names = MODEL.parameter_names
    assert names[-10:] == (
        "x1:z1",
        "price:z1",
        "price:z2",
        "x3:z2",
        "x6:z1",
        "x8:z2",
        "ln_sd.x1:z2",
        "ln_sd.price:z1",
        "ln_sd.x5:z1",
        "ln_sd.x7:z1",
    )
    assert MODEL.spec.covariates == ("z1", "z2")
    again = MixedLogit.from_dict(MODEL.to_dict())
    assert again.spec == MODEL.spec and again.parameter_names == names
    assert "mean_covariates" in repr(MODEL)


@pytest.mark.parametrize("layout", ["blocks", "grid", "gathered"])
def test_likelihood_matches_numpy_in_every_layout(
    case, layout, likelihood_in_layout, one_long_panel
):
    data, theta = case
    if layout == "gathered":  # person 0 takes 30 situations and keeps one set of covariates
        data = one_long_panel(data, 30, keep=("z1", "z2"))
    standard, log_w = standardised_draws(MODEL, data.num_panels, 24, "mlhs", 7)
    unit_ll, value, grad, scores = likelihood_in_layout(
        MODEL, data, standard, log_w, theta, layout, 10
    )
    expected = reference_unit_loglik(MODEL, data, theta, standard, log_w)
    np.testing.assert_allclose(unit_ll, expected, rtol=1e-11)
    assert value == pytest.approx(expected.sum(), rel=1e-11)
    np.testing.assert_allclose(scores.sum(axis=0), grad, rtol=1e-9, atol=1e-10)
    # the gradient in every shift direction against central differences of the reference
    shifts = [i for i, n in enumerate(MODEL.parameter_names) if ":" in n]
    for i in shifts:
        up, down = theta.copy(), theta.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric = (
            reference_unit_loglik(MODEL, data, up, standard, log_w)
            - reference_unit_loglik(MODEL, data, down, standard, log_w)
        ) / 2e-6
        np.testing.assert_allclose(scores[:, i], numeric, rtol=1e-5, atol=1e-7)


def test_quadrature_nodes_shared_by_units_with_their_own_covariates():
    model = MixedLogit(
        ["ASC_1"],
        {"x1": "normal", "price": "-lognormal"},
        mean_covariates={"x1": ["z1"], "price": ["z1"]},
        sd_covariates={"x1": ["z1"]},
    )
    names = model.parameter_names
    data = simulate_choices(model, dict.fromkeys(names, 0.3), num_people=20, seed=2)
    standard, log_w = quadrature_rule(model.spec, (9, 7))
    assert standard.shape[0] == 1  # one set of nodes for every unit
    problem = build_problem(model, data, standard=standard, log_weights=log_w, panel=False)
    theta = np.linspace(-0.4, 0.5, len(names))
    expected = reference_unit_loglik(model, data, theta, standard, log_w, panel=False)
    with x64():
        t = jnp.asarray(theta)
        unit_ll = np.asarray(problem.unit_loglik(t, problem.data))
        _, grad = problem.value_and_grad(t, problem.data)
        scores = np.asarray(problem.unit_scores(t, problem.data))
    assert len(unit_ll) == data.num_situations  # units are situations without the panel
    np.testing.assert_allclose(unit_ll, expected, rtol=1e-11)
    np.testing.assert_allclose(-np.asarray(grad), scores.sum(axis=0), rtol=1e-9, atol=1e-10)


def test_zero_shifts_give_the_model_without_covariates(case):
    data, theta = case
    plain = MixedLogit(MODEL.fixed, MODEL.random, MODEL.correlated)
    kept = [MODEL.parameter_names.index(n) for n in plain.parameter_names]
    zeroed = np.zeros_like(theta)
    zeroed[kept] = theta[kept]
    values = []
    for model, t in ((MODEL, zeroed), (plain, theta[kept])):
        problem = build_problem(model, data, num_draws=20, draws="halton")
        with x64():
            values.append(float(problem.loglik(jnp.asarray(t), problem.data)))
    assert values[0] == pytest.approx(values[1], rel=1e-13)


def test_recovers_known_shifts_on_fresh_data():
    """Seed 20261204 and a structure unlike the development case (a binary covariate on a
    lognormal price's level, a continuous one on a normal's mean and spread); the tolerance,
    3.5 robust SE for every parameter, was fixed before the first run."""
    model = MixedLogit(
        ["ASC_1", "ASC_2"],
        {"time": "normal", "price": "-lognormal"},
        mean_covariates={"time": ["age"], "price": ["business", "age"]},
        sd_covariates={"time": ["age"]},
    )
    truth = {
        "ASC_1": 0.4,
        "ASC_2": -0.2,
        "time": -1.0,
        "price": 0.1,
        "sd.time": 0.6,
        "sd.price": 0.5,
        "time:age": 0.5,
        "price:business": -0.8,
        "price:age": 0.2,
        "ln_sd.time:age": 0.4,
    }
    rng = np.random.default_rng(20261204)
    people = 1200
    covariates = {
        "business": rng.binomial(1, 0.3, people).astype(float),
        "age": rng.normal(size=people),
    }
    data = simulate_choices(
        model,
        truth,
        num_people=people,
        situations_per_person=6,
        seed=20261204,
        person_covariates=covariates,
    )
    results = model.fit(data, num_draws=400)
    table = results.table()
    for name, value in truth.items():
        gap = abs(table.loc[name, "estimate"] - value) / table.loc[name, "robust_std_err"]
        assert gap < 3.5, (name, table.loc[name, "estimate"], value)
    # the population is the sample's mixture: its mean time coefficient is the location plus
    # the mean shift at the sample's ages
    population = results.population_coefficients(num_draws=60_000, seed=4)
    expected = results["time"] + results["time:age"] * covariates["age"].mean()
    assert population["time"].mean() == pytest.approx(expected, abs=0.02)
    wtp = results.wtp("time", "price", num_draws=20_000, parameter_draws=20)
    assert (
        np.isfinite(wtp["median"])
        and wtp["kr_median_q2.5%"] < wtp["median"] < wtp["kr_median_q97.5%"]
    )


def test_saved_results_keep_the_covariates_and_ask_for_data(tmp_path):
    model = MixedLogit(["ASC_1"], {"x1": "normal"}, mean_covariates={"x1": ["z1"]})
    truth = {"ASC_1": 0.1, "x1": 1.0, "sd.x1": 0.5, "x1:z1": 0.5}
    data = simulate_choices(model, truth, num_people=150, seed=9)
    results = model.fit(data, num_draws=50)
    path = tmp_path / "fit.json"
    results.save(path)
    loaded = EstimationResults.load(path)
    assert loaded.spec == model.spec
    with pytest.raises(ValueError, match="do not keep: pass the ChoiceData"):
        loaded.population_coefficients(num_draws=10)
    again = EstimationResults.load(path, data=data)
    np.testing.assert_allclose(again.predict().to_numpy(), results.predict().to_numpy(), rtol=1e-12)


def test_bad_covariates_are_named():
    model = MixedLogit(["ASC_1"], {"x1": "normal"}, mean_covariates={"x1": ["z1"]})
    data = simulate_choices(model, dict.fromkeys(model.parameter_names, 0.2), num_people=10, seed=1)
    frame = data.frame.copy()
    frame.loc[frame.index[0], "z1"] = 99.0
    varying = ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )
    with pytest.raises(
        ChoiceDataError, match=r"mixing covariate 'z1' varies within decision maker 0"
    ):
        build_problem(model, varying, num_draws=5)
    with pytest.raises(ChoiceDataError, match="mixing covariate 'z1' varies within situation 0"):
        build_problem(model, varying, num_draws=5, panel=False)
    missing = MixedLogit(["ASC_1"], {"x1": "normal"}, mean_covariates={"x1": ["income"]})
    with pytest.raises(ChoiceDataError, match="mixing covariate 'income' is not a column"):
        build_problem(missing, data, num_draws=5)
    frame = data.frame.copy()
    frame["z1"] = frame["z1"].where(frame.person != 3, np.nan)
    gap = ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )
    with pytest.raises(ChoiceDataError, match="'z1' is not finite for decision maker 3"):
        build_problem(model, gap, num_draws=5)
    with pytest.raises(ValueError, match="'ASC_1', which has a fixed coefficient"):
        MixedLogit(["ASC_1"], {"x1": "normal"}, mean_covariates={"ASC_1": ["z1"]})
    with pytest.raises(ValueError, match="'x2', which is not a coefficient"):
        MixedLogit(["ASC_1"], {"x1": "normal"}, sd_covariates={"x2": ["z1"]})
    with pytest.raises(ValueError, match="a gamma coefficient"):
        MixedLogit(random={"x1": "gamma"}, sd_covariates={"x1": ["z1"]})
    with pytest.raises(ValueError, match="listed twice"):
        MixedLogit(random={"x1": "normal"}, mean_covariates={"x1": ["z1", "z1"]})
    with pytest.raises(NotImplementedError, match="no covariates in the mixing distribution"):
        model.fit(data, method="svi", num_steps=1)
    with pytest.raises(ValueError, match=r"person_covariates \['z9'\] are not covariates"):
        simulate_choices(
            model,
            dict.fromkeys(model.parameter_names, 0.2),
            person_covariates={"z9": np.zeros(500)},
        )
