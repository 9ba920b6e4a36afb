"""BayesianResults.save / load: every table, diagnostic, WTP and prediction of the reloaded
results equals the fit's (a NUTS mixed logit with person draws, an SVI fit with its ELBO trace,
a latent-class fit with its ordering internals)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from mixlogit import ChoiceData, MixedLogit, simulate_choices
from mixlogit.bayes import BayesianResults, LatentClassLogit


@pytest.fixture(scope="module")
def data() -> ChoiceData:
    model = MixedLogit(random={"x1": "normal"}, fixed=["price"])
    data = simulate_choices(
        model, {"x1": 0.8, "sd.x1": 0.6, "price": -1.1}, num_people=40, seed=60606
    )
    # panel ids that are not 0 .. P-1, kept through the file
    frame = data.frame.assign(person=lambda f: "hh-" + (f[data.panel_column] + 100).astype(str))
    return ChoiceData(
        frame,
        choice=data.choice_column,
        alternative=data.alternative_column,
        situation=data.situation_column,
        panel="person",
    )


def _quiet_fit(model, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(data, **kwargs)


def _assert_same(fit, loaded, data):
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    pd.testing.assert_frame_equal(loaded.population(), fit.population())
    np.testing.assert_array_equal(
        loaded.population_draws(num_draws=16, seed=2), fit.population_draws(num_draws=16, seed=2)
    )
    pd.testing.assert_frame_equal(
        loaded.predict(data, num_draws=8, num_posterior_draws=10),
        fit.predict(data, num_draws=8, num_posterior_draws=10),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert loaded.check(warn=False) == fit.check(warn=False)
    assert loaded.spec.describe() == fit.spec.describe()
    assert loaded.priors == fit.priors and loaded.settings == fit.settings
    assert (loaded.kind, loaded.method, loaded.backend) == (fit.kind, fit.method, fit.backend)
    assert loaded.summary_text() == fit.summary_text()
    np.testing.assert_array_equal(loaded.person_ids, fit.person_ids)


def test_nuts_mixed_logit_round_trip(tmp_path, data):
    model = MixedLogit(random={"x1": "normal"}, fixed=["price"])
    fit = _quiet_fit(model, data, method="nuts", num_warmup=60, num_samples=40, num_chains=2)
    fit.check(warn=False)
    path = tmp_path / "nuts.nc"
    fit.save(path)
    loaded = BayesianResults.load(path)
    _assert_same(fit, loaded, data)
    pd.testing.assert_frame_equal(loaded.individual_coefficients(), fit.individual_coefficients())
    assert list(loaded.individual_coefficients()["person"].unique()[:2]) == ["hh-100", "hh-101"]
    pd.testing.assert_frame_equal(loaded.wtp("x1", "price"), fit.wtp("x1", "price"))
    assert loaded.diagnostics == fit.diagnostics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a large Pareto k on a 40-person fit, both times
        np.testing.assert_allclose(loaded.loo().elpd_loo, fit.loo().elpd_loo, rtol=1e-12)
    # the file is a plain InferenceData to ArviZ, with the extra group beside the standard ones
    plain = az.from_netcdf(path)
    assert set(fit.idata.groups()) < set(plain.groups())
    assert "mixlogit_results" not in loaded.idata.groups()
    az.summary(loaded.idata, var_names=["mean", "sd"])


def test_svi_and_latent_class_round_trip(tmp_path, data):
    svi = _quiet_fit(
        MixedLogit(random={"x1": "normal"}, fixed=["price"]),
        data,
        method="svi",
        num_steps=200,
        num_samples=50,
    )
    svi.save(tmp_path / "svi.nc")
    loaded = BayesianResults.load(tmp_path / "svi.nc")
    np.testing.assert_array_equal(loaded.elbo, svi.elbo)
    _assert_same(svi, loaded, data)

    classes = _quiet_fit(
        LatentClassLogit(["x1", "price"], num_classes=2),
        data,
        num_warmup=40,
        num_samples=30,
        num_chains=1,
    )
    classes.save(tmp_path / "classes.nc")
    loaded = BayesianResults.load(tmp_path / "classes.nc")
    _assert_same(classes, loaded, data)
    pd.testing.assert_frame_equal(loaded.class_membership(), classes.class_membership())


def test_load_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.nc does not exist"):
        BayesianResults.load(tmp_path / "missing.nc")
    az.from_dict(posterior={"a": np.zeros((1, 5))}).to_netcdf(str(tmp_path / "plain.nc"))
    with pytest.raises(ValueError, match="no 'mixlogit_results' group"):
        BayesianResults.load(tmp_path / "plain.nc")
