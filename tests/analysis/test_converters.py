"""Training-log converters: JSONL/DataFrame -> DataFrame -> InferenceData."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.converters import (
    TrainingRun,
    choice_fit_to_inference_data,
    read_training_log,
    strength_distribution,
    strength_family,
    training_runs_to_inference_data,
)


def gamma_log(steps: list[int], shapes: list[float], rates: list[float]) -> list[dict]:
    records = []
    for step, shape, rate in zip(steps, shapes, rates, strict=True):
        records.append(
            {
                "step": step,
                "loss": 0.7 - 0.01 * step,
                "strength/mean": shape / rate,
                "strength/variance": shape / rate**2,
                "strength/cv": 1 / math.sqrt(shape),
                "strength/shape": shape,
                "strength/rate": rate,
                "rewards/chosen": 0.1,
                "rewards/rejected": -0.1,
                "rewards/accuracies": 0.6,
                "rewards/margins": 0.2,
            }
        )
    return records


def lognormal_log(steps: list[int], locs: list[float], scales: list[float]) -> list[dict]:
    records = []
    for step, loc, scale in zip(steps, locs, scales, strict=True):
        mean = math.exp(loc + scale**2 / 2)
        records.append(
            {
                "step": step,
                "loss": 0.69,
                "strength/mean": mean,
                "strength/variance": math.expm1(scale**2) * mean**2,
                "strength/cv": math.sqrt(math.expm1(scale**2)),
                "strength/loc": loc,
                "strength/scale": scale,
                "rewards/margins": 0.1,
            }
        )
    return records


def test_read_jsonl_drops_summary_records_and_sorts(tmp_path):
    path = tmp_path / "log.jsonl"
    records = gamma_log([20, 10], [2.5, 2.0], [15.0, 16.7])
    lines = [json.dumps(r) for r in records]
    lines.insert(1, json.dumps({"step": 20, "eval_loss": 0.5}))
    lines.append(json.dumps({"train_runtime": 12.0, "step": 20}))
    path.write_text("\n".join(lines) + "\n\n")
    log = read_training_log(path)
    assert log["step"].tolist() == [10, 20]
    assert log["strength/shape"].tolist() == [2.0, 2.5]
    assert strength_family(log) == "gamma"
    assert read_training_log(tmp_path)["step"].tolist() == [10, 20]  # a run directory


def test_trainer_state_with_summary_record_merges_into_last_step(tmp_path):
    history = gamma_log([5, 10], [2.0, 1.8], [16.7, 15.0])
    history.insert(1, {"step": 5, "eval_loss": 0.6, "eval_strength/mean": 0.12, "epoch": 0.5})
    summary = {key: history[-1][key] for key in history[-1] if key.startswith("strength/")}
    history.append({"step": 10, "train_runtime": 3.5, "train_loss": 0.66, **summary})
    checkpoint = tmp_path / "checkpoint-10"
    checkpoint.mkdir()
    (tmp_path / "checkpoint-5").mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    log = read_training_log(tmp_path)
    assert log["step"].tolist() == [5, 10]
    assert log["train_runtime"].tolist()[1] == 3.5 and np.isnan(log["train_runtime"].iloc[0])
    assert log["strength/rate"].tolist() == [16.7, 15.0]
    assert "eval_loss" not in log  # evaluation records are dropped


def test_bad_logs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="strength/variance"):
        read_training_log([{"step": 1, "strength/mean": 1.0}])
    records = gamma_log([1, 2], [2.0, 2.0], [1.0, 1.0])
    records[1]["strength/rate"] = -3.0
    with pytest.raises(ValueError, match=r"'strength/rate'.*-3.0.*step 2"):
        read_training_log(records)
    with pytest.raises(
        ValueError, match=r"step 1 is logged more than once.*'strength/mean' \(2.0 vs 2.5\)"
    ):
        read_training_log(gamma_log([1, 1], [2.0, 2.5], [1.0, 1.0]))
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"step": 1}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        read_training_log(bad_json)
    mixed = pd.DataFrame(gamma_log([1], [2.0], [1.0])).assign(**{"strength/beta": 0.1})
    with pytest.raises(ValueError, match="cannot tell the strength family"):
        strength_family(mixed)


def test_strength_distribution_matches_logged_moments():
    gamma = strength_distribution("gamma", shape=2.0, rate=16.7)
    assert gamma.mean() == pytest.approx(2.0 / 16.7, rel=1e-14)
    assert gamma.var() == pytest.approx(2.0 / 16.7**2, rel=1e-14)
    lognormal = strength_distribution("lognormal", loc=-2.3, scale=0.6)
    assert lognormal.mean() == pytest.approx(math.exp(-2.3 + 0.18), rel=1e-14)
    assert lognormal.var() == pytest.approx(math.expm1(0.36) * math.exp(-4.6 + 0.36), rel=1e-13)
    assert strength_distribution("fixed", beta=0.1) is None  # the point mass's old name
    assert strength_distribution("point_mass", beta=0.1) is None
    with pytest.raises(ValueError, match="takes parameters"):
        strength_distribution("gamma", loc=1.0, scale=2.0)
    with pytest.raises(ValueError, match="gamma parameter shape must be a positive"):
        strength_distribution("gamma", shape=-1.0, rate=2.0)


def test_point_mass_log_is_named_canonically():
    log = pd.DataFrame(
        {"step": [0, 5], "strength/mean": [0.1, 0.1], "strength/variance": [0.0, 0.0],
         "strength/beta": [0.1, 0.1]}
    )  # fmt: skip
    assert strength_family(log) == "point_mass"
    idata = training_runs_to_inference_data([TrainingRun("dpo", log, family="fixed")], num_draws=3)
    assert idata.strength["family"].values.tolist() == ["point_mass"]
    assert idata.posterior["strength"].values.ravel().tolist() == [0.1, 0.1, 0.1]


def test_runs_to_inference_data_dims_coords_and_values():
    runs = [
        TrainingRun(
            "g-hetero", gamma_log([0, 10, 20], [2.0, 1.5, 1.2], [16.7, 12.0, 9.0]), dataset="hetero"
        ),
        TrainingRun("ln-homo", lognormal_log([0, 10], [-2.3, -2.2], [0.6, 0.3]), dataset="homo"),
    ]
    idata = training_runs_to_inference_data(runs, num_draws=20_000, seed=1)
    with pytest.warns(DeprecationWarning, match="num_strength_draws= is deprecated"):
        renamed = training_runs_to_inference_data(runs, num_strength_draws=10, seed=1)
    assert renamed.posterior["strength"].shape == (1, 10, 2)  # 10 draws: too few for 4 chains
    assert idata.posterior["strength"].shape == (4, 5000, 2)
    assert training_runs_to_inference_data(runs, num_draws=0).groups() == ["constant_data"]
    trajectory = idata.trajectory
    assert trajectory["strength_mean"].dims == ("run", "step")
    assert trajectory["step"].values.tolist() == [0, 10, 20]
    assert trajectory["family"].values.tolist() == ["gamma", "lognormal"]
    assert trajectory["dataset"].values.tolist() == ["hetero", "homo"]
    assert float(trajectory["strength_shape"].sel(run="g-hetero", step=20)) == 1.2
    # the LogNormal run did not log step 20 nor Gamma parameters: structurally missing
    assert np.isnan(float(trajectory["strength_mean"].sel(run="ln-homo", step=20)))
    assert np.isnan(trajectory["strength_shape"].sel(run="ln-homo").values).all()
    final = idata.strength
    assert float(final["rate"].sel(run="g-hetero")) == 9.0
    assert float(final["scale"].sel(run="ln-homo")) == 0.3
    assert final["final_step"].values.tolist() == [20, 10]
    assert float(final["cv"].sel(run="g-hetero")) == pytest.approx(1 / math.sqrt(1.2))
    draws = idata.posterior["strength"]
    assert draws.dims == ("chain", "draw", "run")
    # draws follow the final fitted distributions: KS test against scipy
    gamma_draws = draws.sel(run="g-hetero").values.ravel()
    assert stats.kstest(gamma_draws, stats.gamma(a=1.2, scale=1 / 9.0).cdf).pvalue > 1e-3
    lognormal_draws = draws.sel(run="ln-homo").values.ravel()
    assert (
        stats.kstest(lognormal_draws, stats.lognorm(s=0.3, scale=math.exp(-2.2)).cdf).pvalue > 1e-3
    )


def test_a_refit_record_gives_the_final_strength_and_leaves_the_trajectory(tmp_path):
    """Annotator-level runs end with the strength refit to the final policy, logged at the
    last step as ``strength_refit/...`` (what ``MixDPOTrainer.refit_strength`` writes)."""
    history = gamma_log([5, 10], [2.0, 1.8], [16.7, 15.0])
    refit = gamma_log([10], [0.9], [4.0])[0]
    history.append(
        {
            "step": 10,
            "epoch": 1.0,
            **{k.replace("strength/", "strength_refit/"): v for k, v in refit.items() if "/" in k},
            "strength_refit/objective_gain": 3.2,
        }
    )
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    log = read_training_log(tmp_path)
    assert log["step"].tolist() == [5, 10]
    assert log["strength/shape"].tolist() == [2.0, 1.8]  # the trajectory is the iterate's
    assert log["strength_refit/shape"].iloc[-1] == 0.9
    idata = training_runs_to_inference_data({"run": tmp_path}, num_draws=4_000, seed=3)
    final = idata.strength
    assert float(final["shape"].sel(run="run")) == 0.9
    assert float(final["rate"].sel(run="run")) == 4.0
    assert float(final["cv"].sel(run="run")) == pytest.approx(1 / math.sqrt(0.9))
    draws = idata.posterior["strength"].sel(run="run").values.ravel()
    assert stats.kstest(draws, stats.gamma(a=0.9, scale=1 / 4.0).cdf).pvalue > 1e-3
    # without the refit record the last iterate is the final strength
    plain = training_runs_to_inference_data({"run": gamma_log([5, 10], [2.0, 1.8], [16.7, 15.0])})
    assert float(plain.strength["shape"].sel(run="run")) == 1.8


def test_mapping_input_infers_family_and_rejects_wrong_label():
    idata = training_runs_to_inference_data({"a": gamma_log([1, 2], [2.0, 2.0], [1.0, 2.0])})
    assert idata.trajectory["family"].values.tolist() == ["gamma"]
    assert idata.trajectory["dataset"].values.tolist() == ["unknown"]
    with pytest.raises(ValueError, match="labelled family 'lognormal'"):
        training_runs_to_inference_data(
            TrainingRun("a", gamma_log([1], [2.0], [1.0]), family="lognormal")
        )
    with pytest.raises(ValueError, match="unique"):
        training_runs_to_inference_data([TrainingRun("a", gamma_log([1], [2.0], [1.0]))] * 2)


def test_classical_fit_to_inference_data_draws_have_the_fit_covariance(classical_fit):
    from types import SimpleNamespace

    fit = classical_fit  # conftest.py
    cov = fit.cov
    idata = choice_fit_to_inference_data(fit, num_draws=40_000, seed=2)
    estimates = idata.constant_data
    assert estimates["parameter"].values.tolist() == fit.names
    np.testing.assert_allclose(estimates["std_err"], [0.2, 0.3, 0.5], rtol=1e-15)
    np.testing.assert_allclose(estimates["robust_std_err"], np.sqrt(2) * np.array([0.2, 0.3, 0.5]))
    np.testing.assert_allclose(estimates["z"], [-5.0, 0.5 / 0.3, 1.6])
    # netCDF has no boolean: converged is stored as 1
    assert estimates.attrs["loglik"] == -100.0 and estimates.attrs["converged"] == 1
    assert idata.attrs["converged"] == 1 and idata.attrs["method"] == "simulation"
    draws = idata.posterior["theta"].values.reshape(-1, 3)
    # sample covariance of 40000 draws: s.e. of an entry ~ cov * sqrt(2 / n) = 0.7 % of scale
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=4 * 0.25 * np.sqrt(2 / 40_000))
    np.testing.assert_allclose(draws.mean(axis=0), fit.params, atol=4 * 0.5 / np.sqrt(40_000))
    robust = choice_fit_to_inference_data(fit, num_draws=40_000, seed=2, robust=True)
    ratio = np.cov(robust.posterior["theta"].values.reshape(-1, 3).T) / np.cov(draws.T)
    np.testing.assert_allclose(np.diag(ratio), 2.0, rtol=0.05)
    with pytest.raises(TypeError, match="lacks"):
        choice_fit_to_inference_data(SimpleNamespace(names=["a"]))


@pytest.mark.slow
def test_mixed_logit_fit_to_inference_data():
    from mixlogit import MixedLogit
    from mixlogit.data import ChoiceData
    from mixlogit.datasets import load_electricity

    frame = load_electricity()
    frame = frame[frame["id"].isin(frame["id"].unique()[:40])]
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="chid", panel="id")
    fit = MixedLogit(fixed=["pf", "cl", "loc", "wk"], random={"tod": "normal"}).fit(
        data, num_draws=50
    )
    idata = choice_fit_to_inference_data(fit, num_population_draws=20_000)
    np.testing.assert_allclose(idata.constant_data["estimate"], fit.params, rtol=0)
    np.testing.assert_allclose(idata.constant_data["std_err"], fit.std_errors, rtol=0)
    tod = idata.predictions["tod"].values.ravel()
    # population of a normal coefficient: mean tod, sd |sd.tod|
    assert tod.mean() == pytest.approx(fit["tod"], abs=4 * abs(fit["sd.tod"]) / np.sqrt(20_000))
    assert tod.std() == pytest.approx(abs(fit["sd.tod"]), rel=0.03)
