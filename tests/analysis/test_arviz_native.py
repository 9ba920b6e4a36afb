"""Every InferenceData the package produces works with plain ArviZ calls, without a warning.

One test per producer: :func:`analysis.training_runs_to_inference_data`,
:func:`analysis.choice_fit_to_inference_data` (classical and Bayesian fits),
:func:`analysis.subgroup_posterior.fit_subgroup_strengths` and
:func:`analysis.strength_panels.fit_panel_strengths`. Each runs ``az.summary``,
``plot_posterior``, ``plot_forest``, ``plot_trace``, ``plot_ppc`` (with a posterior predictive),
``loo``, ``plot_loo_pit`` and ``compare`` (with a log-likelihood) and a netCDF round trip with
every warning an error, and checks that coordinates carry the real ids.
"""

from __future__ import annotations

import logging
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import special

from analysis._arviz import az
from analysis.converters import (
    TrainingRun,
    choice_fit_to_inference_data,
    training_runs_to_inference_data,
)


def _exercise(idata, tmp_path, *, other=None, ppc=None, loo_pit=None):
    """The ArviZ calls of an analyst's workflow; returns the summary and the re-read object.

    Two third-party warnings are let through, both raised inside libraries for their own
    calls and independent of the data passed in:

    * ``MatplotlibDeprecationWarning`` "Passing a dict or None as alias_mapping": ArviZ 0.23's
      matplotlib backend (``matplotlib_kwarg_dealiaser``) calls ``normalize_kwargs`` the way
      matplotlib 3.11 deprecated;
    * pandas' "The inplace keyword in DataFrame.sort_values is deprecated": ``az.compare``
      sorts its table in place.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame")
        summary = az.summary(idata)
        for plot in (az.plot_posterior, az.plot_forest, az.plot_trace):
            plot(idata)
            plt.close("all")
        if ppc is not None:
            az.plot_ppc(idata, var_names=[ppc], num_pp_samples=20)
            plt.close("all")
        if "log_likelihood" in idata.groups():
            loo = az.loo(idata)
            assert np.isfinite(loo.elpd_loo)
            az.plot_loo_pit(idata, y=loo_pit)
            plt.close("all")
            table = az.compare({"first": idata, "second": other})
            assert sorted(table.index) == ["first", "second"]
        path = tmp_path / "idata.nc"
        idata.to_netcdf(path)
        back = az.from_netcdf(path)
    assert back.groups() == idata.groups()
    return summary, back


@pytest.fixture(autouse=True)
def _no_arviz_log_warnings(caplog):
    """ArviZ reports some problems (one chain: no r_hat) through ``logging``, not warnings."""
    with caplog.at_level(logging.WARNING, logger="arviz"):
        yield
    assert not [r for r in caplog.records if r.name.startswith("arviz")], caplog.text


def _gamma_log(steps, shapes, rates):
    return [
        {
            "step": s,
            "strength/mean": a / b,
            "strength/variance": a / b**2,
            "strength/shape": a,
            "strength/rate": b,
            "loss": 0.7 - 0.01 * s,
        }
        for s, a, b in zip(steps, shapes, rates, strict=True)
    ]


def _lognormal_log(steps, locs, scales):
    return [
        {
            "step": s,
            "strength/mean": math.exp(m + v * v / 2),
            "strength/variance": math.expm1(v * v) * math.exp(2 * m + v * v),
            "strength/loc": m,
            "strength/scale": v,
        }
        for s, m, v in zip(steps, locs, scales, strict=True)
    ]


def test_training_runs(tmp_path):
    runs = [
        TrainingRun("gamma-hetero", _gamma_log([0, 5, 10], [2.0, 1.6, 1.3], [2.0, 1.5, 1.1]),
                    dataset="hetero"),
        TrainingRun("lognormal-homo", _lognormal_log([0, 5], [0.0, 0.2], [0.4, 0.5]),
                    dataset="homo"),
    ]  # fmt: skip
    idata = training_runs_to_inference_data(runs, num_draws=400, seed=3)
    assert set(idata.groups()) == {"posterior", "constant_data"}
    summary, back = _exercise(idata, tmp_path)
    assert summary.index.tolist() == ["strength[gamma-hetero]", "strength[lognormal-homo]"]
    assert idata.posterior["strength"].dims == ("chain", "draw", "run")
    assert idata.posterior["strength"].shape == (4, 100, 2)
    # the re-read object keeps the labels and the trajectories (in constant_data)
    assert back.posterior["run"].values.tolist() == ["gamma-hetero", "lognormal-homo"]
    assert back.posterior["dataset"].values.tolist() == ["hetero", "homo"]
    assert back.constant_data["strength_shape"].sel(run="gamma-hetero", step=10) == 1.3
    assert idata.strength["shape"].sel(run="gamma-hetero") == 1.3
    assert idata.trajectory["step"].values.tolist() == [0, 5, 10]
    # the Gamma(1.3, 1.1) draws have its mean: sd of the mean of 400 draws is 0.05
    draws = idata.posterior["strength"].sel(run="gamma-hetero").values
    assert draws.mean() == pytest.approx(1.3 / 1.1, abs=4 * math.sqrt(1.3) / 1.1 / 20)


def test_classical_fit(tmp_path, classical_fit):
    fit = classical_fit  # conftest.py
    fit.num_situations = np.int64(250)  # a numpy integer attribute must survive netCDF too
    idata = choice_fit_to_inference_data(fit, num_draws=800, seed=4)
    assert set(idata.groups()) == {"posterior", "constant_data"}
    summary, back = _exercise(idata, tmp_path)
    assert summary.index.tolist() == ["theta[price]", "theta[quality]", "theta[sd.quality]"]
    # before: the bool attribute made to_netcdf fail
    assert back.attrs["converged"] == 1 and back.attrs["num_situations"] == 250
    assert back.constant_data.attrs["loglik"] == -100.0
    np.testing.assert_allclose(back.constant_data["std_err"], [0.2, 0.3, 0.5])
    assert back.posterior["parameter"].values.tolist() == fit.names


@pytest.mark.slow  # two NUTS compilations: about 15 s on an idle laptop core, 70 s under load
def test_bayesian_fit(tmp_path, panel_choices):
    from mixlogit import MixedLogit, MultinomialLogit

    frame, data = panel_choices(40, seed=21)
    options = dict(method="nuts", num_warmup=100, num_samples=100, num_chains=2, diagnose=False)
    mixed = MixedLogit(fixed=["x0"], random={"x1": "normal"}).fit(data, seed=1, **options)
    mnl = MultinomialLogit(["x0", "x1"]).fit(data, seed=2, **options)
    idata = choice_fit_to_inference_data(mixed)
    summary, back = _exercise(
        idata,
        tmp_path,
        other=choice_fit_to_inference_data(mnl),
        ppc="first_alternative_count",
        loo_pit="first_alternative_count",
    )
    # the lean default: population parameters only, no person's z
    assert summary.index.tolist()[:3] == ["beta_fixed[x0]", "mean[x1]", "sd[x1]"]
    assert not [n for n in summary.index if n.startswith(("z[", "u[", "u_std["))]
    assert idata.unconstrained_posterior["z"].dims == ("chain", "draw", "person", "z_random")
    # households 101 .. 140 keep their ids (before: 0 .. 39)
    ids = list(range(101, 141))
    assert back.log_likelihood["person_choices"]["person"].values.tolist() == ids
    assert back.unconstrained_posterior["person"].values.tolist() == ids
    assert back.observed_data["first_alternative_count"]["person"].values.tolist() == ids
    # the log-likelihood is not named as the per-situation observations
    assert set(idata.log_likelihood.data_vars) == {"person_choices"}
    assert idata.observed_data["choice"].dims == ("situation",)
    # the per-person count is the data's: person 101's first-alternative choices
    own = frame[(frame["person"] == 101) & (frame["chosen"] == 1) & (frame["alt"] == 0)]
    assert int(back.observed_data["first_alternative_count"].sel(person=101)) == len(own)


def _subgroup_pairs(seed):
    """Binary choices of 300 pairs in subgroups a, b, c; pair ids 5000, 5003, ..."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 1.5, size=300)
    group = rng.choice(["a", "b", "c"], size=300)
    chosen = (rng.random(300) < special.expit(1.0 * d)).astype(int)
    return pd.DataFrame(
        {"pair_id": 5000 + 3 * np.arange(300), "margin": d, "group": group, "chosen": chosen}
    )


def test_subgroup_posterior(tmp_path):
    from analysis.subgroup_posterior import _pair_ids, fit_subgroup_strengths

    frame = _subgroup_pairs(seed=8)
    options = dict(
        outcome="chosen", family="fixed", num_warmup=100, num_samples=150, log_likelihood=True
    )
    fit = fit_subgroup_strengths(frame, "group", seed=1, **options)
    # az.compare reads only the log-likelihood: no predictive groups for the second fit
    other = fit_subgroup_strengths(frame, "group", seed=2, predictive=False, **options)
    idata = fit.idata
    for group in ("prior", "prior_predictive", "posterior_predictive", "constant_data"):
        assert group in idata.groups(), group
    summary, back = _exercise(idata, tmp_path, other=other.idata, ppc="y", loo_pit="y")
    # hyperparameters first
    assert summary.index.tolist()[:2] == ["mu_log_mean", "tau_log_mean"]
    # before: pair was 0 .. N-1
    assert back.observed_data["pair"].values.tolist() == frame["pair_id"].tolist()
    assert back.constant_data["pair_subgroup"].values.tolist() == frame["group"].tolist()
    np.testing.assert_array_equal(back.constant_data["margin"].values, frame["margin"].values)
    assert back.posterior["subgroup"].values.tolist() == ["a", "b", "c"]
    # a pair judged twice: rows label the dimension, the pair ids are kept per row (the
    # labelling step alone: a second NUTS compilation would double the test's time)
    twice = pd.concat([frame.iloc[:4], frame.iloc[:4]], ignore_index=True)
    twice.index = 9000 + twice.index
    labels, kept = _pair_ids(twice, "pair_id")
    assert labels.tolist() == list(range(9000, 9008))
    assert kept.tolist() == twice["pair_id"].tolist()
    # nothing tells the rows apart: their positions label them
    labels, _ = _pair_ids(twice.reset_index(drop=True).iloc[[0, 1, 1]], "pair_id")
    assert labels.tolist() == [0, 1, 2]


def _panel_labels(seed):
    """Twelve annotators in two subgroups, eight labels each, from known strengths."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(12):
        subgroup = "steady" if a % 2 else "erratic"
        beta = rng.gamma(4.0, 0.5) if a % 2 else rng.gamma(1.0, 0.4)
        for gap in rng.normal(0.0, 1.2, size=8):
            chose = rng.random() < special.expit(beta * gap)
            rows.append({"annotator_id": f"ann{300 + a}", "subgroup": subgroup,
                         "reward_gap": gap if chose else -gap})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.slow  # one NUTS run of the panel marginal: about 50 s (tracing dominates)
def test_panel_strengths(tmp_path):
    from analysis.strength_panels import fit_panel_strengths

    frame = _panel_labels(seed=31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # short chains: low-ESS warnings
        fit = fit_panel_strengths(
            frame, num_warmup=100, num_samples=300, num_chains=2, num_annotator_draws=20, seed=1
        )
    idata = fit.idata
    for group in ("prior", "prior_predictive", "posterior_predictive", "constant_data"):
        assert group in idata.groups(), group
    summary, back = _exercise(
        idata,
        tmp_path,
        other=idata.copy(),  # compare reads the object twice: a second NUTS run costs 50 s
        ppc="agreeing_labels",
        loo_pit="agreeing_labels",
    )
    # population first, then the subgroups
    names = summary.index.tolist()
    scalars = {"mu_log_mean", "mu_log_cv", "tau_log_mean", "population_mean", "population_cv"}
    assert set(names[:5]) == scalars and "mean_strength[erratic]" in names[5:]
    ids = [f"ann{300 + a}" for a in range(12)]
    assert back.log_likelihood["annotator"].values.tolist() == ids
    assert back.posterior["subgroup"].values.tolist() == ["erratic", "steady"]
    # the observed count is the data's: labels of ann305 whose signed gap is positive
    own = frame[frame["annotator_id"] == "ann305"]
    observed = back.observed_data["agreeing_labels"].sel(annotator="ann305")
    assert int(observed) == int((own["reward_gap"] > 0).sum())
    # replicated counts lie in 0 .. 8; the prior's parameters are stored per subgroup
    replicated = back.posterior_predictive["agreeing_labels"].values
    assert replicated.shape == (2, 300, 12) and replicated.min() >= 0 and replicated.max() <= 8
    assert back.prior["mean_strength"].dims == ("chain", "draw", "subgroup")
    assert back.prior_predictive["agreeing_labels"].shape == (1, 500, 12)
