"""Separation, units of the data, the default MNL optimiser, and what ``fit`` passes on.

Issue 14, items 3 (separation is diagnosed; the gradient test does not depend on the units
of a variable), 4 (the MNL default is Newton's method and converges on ModeCanada) and 14
(``MixedLogit.fit(method="nuts"/"svi")`` refuses arguments it would ignore).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import mixlogit.jax as mj
import mixlogit.torch as mt
from mixlogit import ChoiceData, MixedLogit, MultinomialLogit
from mixlogit.datasets import load_modecanada
from mixlogit.estimation import SeparationWarning
from mixlogit.estimators import SeparationWarning as exported
from mixlogit.simulate import simulate_choices


# ------------------------------------------------------------------ item 3: separation
def _choice_frame(x: np.ndarray, z: np.ndarray, chosen: np.ndarray) -> ChoiceData:
    S, J = x.shape
    frame = pd.DataFrame(
        {
            "sit": np.repeat(np.arange(S), J),
            "alt": np.tile(np.arange(J), S),
            "x": x.ravel(),
            "z": z.ravel(),
            "choice": (np.arange(J)[None, :] == chosen[:, None]).astype(int).ravel(),
            "person": np.repeat(np.arange(S) // 2, J),
        }
    )
    return ChoiceData(frame, choice="choice", alternative="alt", situation="sit", panel="person")


def quasi_separated(seed: int, num_situations: int = 240) -> ChoiceData:
    """``x`` decides the choice in the first half of the situations (the chosen alternative
    has the largest ``x``) and is 0 for every alternative in the second half, where ``z``
    and Gumbel noise decide: the MLE of ``x``'s coefficient is at infinity, ``z``'s is
    finite, and the log-likelihood stays far from 0."""
    rng = np.random.default_rng(seed)
    S, J = num_situations, 3
    x = rng.normal(size=(S, J))
    z = rng.normal(size=(S, J))
    noisy = np.argmax(1.0 * z + rng.gumbel(size=(S, J)), axis=1)
    chosen = np.where(np.arange(S) < S // 2, np.argmax(x, axis=1), noisy)
    x[S // 2 :] = 0.0
    return _choice_frame(x, z, chosen)


def _fit_recording(model, data, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = model.fit(data, **options)
    return results, [w for w in caught if issubclass(w.category, SeparationWarning)]


@pytest.mark.parametrize("optimizer", ["auto", "bfgs"])
def test_quasi_separation_of_an_mnl_is_reported_not_converged(optimizer):
    results, caught = _fit_recording(
        MultinomialLogit(["x", "z"]), quasi_separated(seed=41), optimizer=optimizer
    )
    assert caught and "'x'" in str(caught[0].message) and "'z'" not in str(caught[0].message)
    assert not results.converged and results.message.startswith("separation")
    # the log-likelihood is that of the noisy half, not ~0: only the doubling test finds it
    assert results.loglik < -30


def test_complete_separation_of_a_mixed_logit_is_reported():
    rng = np.random.default_rng(43)
    x, z = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    data = _choice_frame(x, z, np.argmax(x, axis=1))  # x decides every choice
    model = MixedLogit(fixed=["x"], random={"z": "normal"})
    results, caught = _fit_recording(model, data, num_draws=30, hessian=False)
    assert caught and all("'x'" in str(w.message) for w in caught)
    assert "predicted with probability near 1" in results.message
    assert not results.converged


def test_a_well_identified_fit_raises_no_separation_warning():
    model = MixedLogit(fixed=["price"], random={"x1": "normal"})
    data = simulate_choices(model, {"price": -1.5, "x1": 1.0, "sd.x1": 0.6}, num_people=80, seed=47)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        mnl = MultinomialLogit(["price", "x1"]).fit(data)
        mixed = model.fit(data, num_draws=40)
    assert mnl.converged and mixed.converged and SeparationWarning is exported


@pytest.mark.parametrize("lib", [mj, mt], ids=["jax", "torch"])
def test_strength_mle_separation_is_reported(lib):
    rng = np.random.default_rng(53)
    d = rng.normal(size=300)
    with pytest.warns(SeparationWarning, match="every choice agrees with the sign of d"):
        found = lib.fit_strength_mle(d, (d > 0).astype(float), "gamma")
    assert not found.converged and found.message.startswith("separation")
    # a few choices against the sign of d: a finite maximum, no warning
    y = (d + rng.normal(scale=1.0, size=300) > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        assert lib.fit_strength_mle(d, y, "gamma").converged


# ------------------------------------------------------------------ item 3: units
def _rescaled(data: ChoiceData, column: str, factor: float) -> ChoiceData:
    frame = data.frame.copy()
    frame[column] = frame[column] * factor
    return data.with_frame(frame)


@pytest.mark.parametrize("optimizer", ["auto", "bfgs", "newton"])
def test_a_variable_in_tiny_units_is_estimated_mnl(optimizer):
    model = MultinomialLogit(["price", "x1"])
    data = simulate_choices(model, {"price": -1.0, "x1": 0.8}, num_people=120, seed=59)
    plain = model.fit(data, optimizer=optimizer)
    tiny = model.fit(_rescaled(data, "price", 1e-8), optimizer=optimizer)
    assert tiny.converged
    np.testing.assert_allclose(tiny.params * [1e-8, 1.0], plain.params, rtol=1e-6)
    np.testing.assert_allclose(tiny.std_errors * [1e-8, 1.0], plain.std_errors, rtol=1e-4)


def test_a_variable_in_tiny_units_is_estimated_mixed_logit():
    model = MixedLogit(fixed=["price"], random={"x1": "normal"})
    data = simulate_choices(
        model, {"price": -1.0, "x1": 1.0, "sd.x1": 0.5}, num_people=120, seed=61
    )
    plain = model.fit(data, num_draws=40, hessian=False)
    tiny = model.fit(_rescaled(data, "price", 1e-8), num_draws=40, hessian=False)
    assert tiny.converged
    np.testing.assert_allclose(tiny.params * [1e-8, 1.0, 1.0], plain.params, rtol=1e-6)


# ------------------------------------------------------------------ item 4: ModeCanada
MODECANADA_VARIABLES = [
    "ASC_train",
    "ASC_bus",
    "ASC_air",
    "cost",
    "freq",
    "ovt",
    "ivt",
    "income@train",
    "income@bus",
    "income@air",
]


def numpy_newton_mnl(arrays, iterations=30):
    """Independent MNL maximum: Newton's method on a NumPy log-likelihood."""
    X, chosen, available = arrays.X, arrays.chosen, arrays.available
    rows = np.arange(len(chosen))
    beta = np.zeros(X.shape[2])
    for _ in range(iterations):
        v = np.where(available, X @ beta, -np.inf)
        p = np.exp(v - logsumexp(v, axis=1, keepdims=True))
        mean = np.einsum("sj,sjk->sk", p, X)
        grad = (X[rows, chosen] - mean).sum(0)
        centred = X - mean[:, None]
        hessian = -np.einsum("sj,sjk,sjl->kl", p, centred, centred)
        beta = beta - np.linalg.solve(hessian, grad)
    v = np.where(available, X @ beta, -np.inf)
    return beta, float(np.sum(v[rows, chosen] - logsumexp(v, axis=1)))


@pytest.fixture(scope="module")
def modecanada():
    return ChoiceData(load_modecanada(), choice="choice", alternative="alt", situation="case")


def test_mnl_default_is_newton_and_converges_on_modecanada(modecanada):
    model = MultinomialLogit(MODECANADA_VARIABLES)
    reference, reference_ll = numpy_newton_mnl(modecanada.to_arrays(MODECANADA_VARIABLES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning, no Hessian warning
        results = model.fit(modecanada)
    assert results.converged and results.message.startswith("Newton's method")
    assert "precision loss" not in results.message
    assert np.max(np.abs(results.gradient)) < 1e-5
    assert results.loglik == pytest.approx(reference_ll, abs=1e-8)
    np.testing.assert_allclose(results.params, reference, rtol=1e-6, atol=1e-9)
    # BFGS stays selectable and reaches the same maximum
    bfgs = model.fit(modecanada, optimizer="bfgs", hessian=False)
    assert bfgs.converged and "Newton" not in bfgs.message
    assert bfgs.loglik == pytest.approx(reference_ll, abs=1e-6)


# ------------------------------------------------------------------ item 14: Bayesian route
# fake_bayes (conftest.py): mixlogit.bayes replaced by a recorder of the fit_bayes call


def test_bayesian_fit_refuses_classical_arguments_naming_each(fake_bayes):
    model = MixedLogit(random={"x1": "normal"})
    with pytest.raises(TypeError) as error:
        model.fit("data", method="nuts", tolerance=1e-9, draws="sobol", hessian=False, seed=7)
    message = str(error.value)
    for name in ("tolerance=1e-09", "draws='sobol'", "hessian=False", "method='nuts'"):
        assert name in message
    assert "seed" not in message.split("does not use")[1].split(".")[0]
    with pytest.raises(TypeError, match=r"num_draws=64 \(NUTS samples"):
        model.fit("data", method="nuts", num_draws=64)
    with pytest.raises(TypeError, match=r"quadrature_nodes=12 \(used only with integrate="):
        model.fit("data", method="nuts", quadrature_nodes=12)
    with pytest.raises(TypeError, match=r"gtol="):
        model.fit("data", method="svi", gtol=1e-8)
    assert fake_bayes == {}  # nothing reached the Bayesian fit


def test_bayesian_fit_passes_on_what_applies(fake_bayes):
    model = MixedLogit(random={"x1": "normal"})
    assert model.fit("data", method="svi", num_draws=64, seed=7, num_steps=3) == "posterior"
    assert fake_bayes["kwargs"] == {"num_draws": 64, "num_steps": 3, "seed": 7, "progress": False}
    model.fit("data", method="nuts", integrate="quadrature", num_nodes=12, seed=5)
    assert fake_bayes["kwargs"] == {
        "integrate": "quadrature",
        "num_nodes": 12,
        "seed": 5,
        "progress": False,
    }
    # arguments equal to their defaults cannot be told from omitted ones and pass
    model.fit("data", method="nuts", optimizer="auto", panel=True, seed=3)
    assert fake_bayes["kwargs"]["seed"] == 3


def test_nuts_fit_of_an_mnl_runs_with_the_seed_given_to_fit():
    # one real (tiny) run: MultinomialLogit.fit's draw default does not reach NUTS, the seed does
    model = MultinomialLogit(["price", "x1"])
    data = simulate_choices(model, {"price": -1.0, "x1": 0.5}, num_people=30, seed=67)
    results = model.fit(
        data,
        method="nuts",
        seed=7,
        num_warmup=5,
        num_samples=5,
        num_chains=1,
        diagnose=False,
        log_likelihood=False,
    )
    assert results.settings["seed"] == 7
    assert results.idata.posterior["beta_fixed"].values.shape == (1, 5, 2)


# ------------------------------------------------------------------ item 2: local maxima, noise
# Developed on simulate_choices seeds 1-3 (price fixed, two random normals, 100 people x 6, 10
# draws) and on Swissmetro; the tests below use other seeds and structures.
def _panel_four_alternatives(seed: int) -> tuple[MixedLogit, ChoiceData]:
    """Panel of 70 people x 8 situations, four alternatives: a random alternative-specific
    constant and a random attribute, a fixed price."""
    model = MixedLogit(fixed=["price"], random={"ASC_1": "normal", "comfort": "normal"})
    truth = {"price": -0.8, "ASC_1": 0.4, "comfort": 0.7, "sd.ASC_1": 1.2, "sd.comfort": 1.4}
    data = simulate_choices(
        model, truth, num_people=70, situations_per_person=8, num_alternatives=4, seed=seed
    )
    return model, data


def _caught(function, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = function()
    return value, [w for w in caught if issubclass(w.category, category)]


def test_multistart_escapes_a_worse_maximum_of_a_poor_start_and_warns():
    from mixlogit import LocalMaximumWarning

    model, data = _panel_four_alternatives(seed=2029)
    # with 6 draws per person a negative spread is a different (mirrored) draw set with its own
    # maximum; started there BFGS converges to it, and reports converged=True
    poor = {"sd.ASC_1": -1.5, "sd.comfort": -1.5}
    single = model.fit(data, num_draws=6, init=poor, hessian=False)
    assert single.converged and single.starts is None
    results, caught = _caught(
        lambda: model.fit(data, num_draws=6, init=poor, hessian=False, num_starts=6, start_seed=11),
        LocalMaximumWarning,
    )
    starts = results.starts
    assert len(starts) == 6 and [s["start"] for s in starts] == list(range(1, 7))
    # start 1 is the single fit, exactly: the same compiled problem, the same path
    assert starts[0]["loglik"] == single.loglik
    np.testing.assert_array_equal(starts[0]["params"], single.params)
    assert starts[0]["theta0"][-2:] == [-1.5, -1.5]
    # the other starts are those random_starts gives for start_seed (reproducible)
    from mixlogit.estimation.multistart import random_starts
    from mixlogit.estimation.start import variable_scales

    units = 1.0 / variable_scales(data.to_arrays(model.variables))
    expected = random_starts(np.array(starts[0]["theta0"]), model.spec, units, 6, 11)
    np.testing.assert_array_equal([s["theta0"] for s in starts], expected)
    best = max(s["loglik"] for s in starts)
    assert best > single.loglik + 1.0  # a clearly better maximum was found ...
    assert results.loglik == best  # ... and kept
    assert results.params.tolist() == max(starts, key=lambda s: s["loglik"])["params"]
    # random starts draw the spreads positive
    assert all(s["theta0"][-1] > 0 and s["theta0"][-2] > 0 for s in starts[1:])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{best:.4f}" in message and "of 6 starts reached the best" in message
    assert f"the default start (start 1) stopped at {single.loglik:.4f}" in message


def test_saved_results_keep_the_starts(tmp_path):
    """starts and simulation_noise used to be dropped by save()."""
    from mixlogit import EstimationResults

    model, data = _panel_four_alternatives(seed=2029)
    results = model.fit(data, num_draws=6, hessian=False, num_starts=2, start_seed=3)
    results.simulation_noise = {"loglik_change": -0.5, "max_abs_shift_in_se": 0.25}
    results.save(tmp_path / "fit.json")
    loaded = EstimationResults.load(tmp_path / "fit.json")
    assert loaded.starts == results.starts and len(loaded.starts) == 2
    assert loaded.simulation_noise == results.simulation_noise


def test_random_starts_are_reproducible_and_keep_the_default_first():
    from mixlogit.estimation.multistart import random_starts

    model = MixedLogit(
        fixed=["price"],
        random={"a": "normal", "b": "lognormal", "c": "normal"},
        correlated=["a", "c"],
    )
    theta0 = np.arange(1.0, 1.0 + len(model.parameter_names))
    units = np.array([2.0, 0.5, 1.0, 3.0])
    first, again, other = (random_starts(theta0, model.spec, units, 4, s) for s in (5, 5, 6))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], theta0)
    np.testing.assert_array_equal(other[0], theta0)
    assert not np.allclose(first[1:], other[1:])
    names = list(model.parameter_names)
    # means move by at most one unit; the spread and the Cholesky diagonal are drawn positive
    assert np.all(np.abs(first[1:, names.index("price")] - theta0[0]) <= 2.0)
    for name in ("sd.b", "chol.a.a", "chol.c.c"):
        assert np.all(first[1:, names.index(name)] > 0), name


@pytest.mark.parametrize(
    ("num_starts", "error"),
    [(0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError)],
)
def test_bad_num_starts_is_refused(num_starts, error):
    model, data = _panel_four_alternatives(seed=2031)
    with pytest.raises(error, match=rf"num_starts must be .*got {num_starts!r}"):
        model.fit(data, num_draws=5, num_starts=num_starts)


def test_simulation_noise_warns_with_few_draws_and_is_quiet_with_many():
    from mixlogit import SimulationNoiseWarning
    from mixlogit.estimation import check_simulation_noise

    model, data = _panel_four_alternatives(seed=2037)
    few, caught = _caught(
        lambda: model.fit(data, num_draws=5, simulation_noise=True), SimulationNoiseWarning
    )
    report = few.simulation_noise
    assert len(caught) == 1 and str(caught[0].message) == report["warning"]
    assert report["max_abs_shift_in_se"] > 1.0 or abs(report["loglik_change"]) > 1.0
    # the independent draws continue the Halton sequence after the estimation's points
    assert report["skip"] == 100 + 70 * 5 and report["num_draws"] == 5
    assert report["loglik_reestimated"] >= report["loglik_at_estimates"] - 1e-9
    many = model.fit(data, num_draws=150)
    noise, caught = _caught(lambda: check_simulation_noise(many), SimulationNoiseWarning)
    assert caught == [] and noise["warning"] is None and many.simulation_noise is noise
    assert noise["max_abs_shift_in_se"] < 1.0 and abs(noise["loglik_change"]) < 1.0
    with pytest.raises(ValueError, match="needs method='simulation' and random coefficients"):
        MultinomialLogit(["price"]).fit(data, simulation_noise=True)
    assert "Simulation noise (independent draws): log-lik change" in str(many)


@pytest.mark.slow
def test_swissmetro_panel_multistart_reaches_biogemes_maximum():
    # issue 14 item 2: from the default start BFGS stops at -3589.74 with converged=True;
    # Biogeme reaches -3584.23 on the same simulated likelihood (500 Halton draws by person)
    from mixlogit import LocalMaximumWarning
    from mixlogit.datasets import swissmetro_choice_data

    model = MixedLogit(fixed=["cost"], random={n: "normal" for n in ("ASC_1", "ASC_3", "time")})
    data = swissmetro_choice_data(panel=True)
    results, caught = _caught(
        lambda: model.fit(data, num_draws=500, hessian=False, num_starts=5), LocalMaximumWarning
    )
    assert results.starts[0]["loglik"] == pytest.approx(-3589.737, abs=1e-3)
    assert results.loglik == pytest.approx(-3584.227, abs=1e-3)
    assert len(caught) == 1 and "-3584.2273" in str(caught[0].message)
