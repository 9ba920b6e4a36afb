"""The Biogeme benchmark's comparison helpers and report, without Biogeme or a fit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_biogeme import (
    ALTERNATIVE_NAMES,
    LATENT_NAMES,
    MNL_NAMES,
    NESTED_NAMES,
    biogeme_elasticity_arrays,
    compare_elasticities,
    compare_fits,
    findings,
    in_mixlogit_units,
    latent_names,
    loglik_difference,
    markdown,
    max_relative_difference,
    max_relative_elasticity_difference,
    max_scaled_difference,
    mu_as_lambda,
    order_classes,
    verdicts,
)


def _biogeme_fit(shift: float = 0.0) -> dict:
    names = list(MNL_NAMES)
    return {
        "loglik": -5331.252,
        "estimates": {name: -1.0 - k + shift for k, name in enumerate(names)},
        "std_errors": {name: 0.05 for name in names},
        "robust_std_errors": {name: 0.1 for name in names},
        "wall_seconds": 10.0,
        "biogeme_version": "3.3.2",
    }


def _as_mixlogit(fit: dict) -> dict:
    return {
        key: ({MNL_NAMES[k]: v for k, v in value.items()} if isinstance(value, dict) else value)
        for key, value in fit.items()
    }


def test_scalar_and_named_differences():
    assert loglik_difference(-1.5, -1.25) == 0.25
    a, b = {"x": 1.0, "y": 2.2, "extra": 9.0}, {"x": 1.1, "y": 2.0}
    value, at = max_relative_difference(a, b)
    assert at == "y" and value == pytest.approx(0.1)
    value, at = max_scaled_difference(a, b, {"x": 0.01, "y": 1.0})
    assert at == "x" and value == pytest.approx(10.0)
    with pytest.raises(KeyError):
        max_relative_difference({"x": 1.0}, b)


def test_compare_fits_maps_names_and_scales_by_biogeme_robust_se():
    biogeme = _biogeme_fit()
    mixlogit = _as_mixlogit(_biogeme_fit(shift=0.002))  # 0.02 robust SE everywhere
    mixlogit["loglik"] = -5331.2521
    mixlogit["robust_std_errors"]["time"] = 0.103
    mixlogit["wall_seconds"] = 2.5
    c = compare_fits(mixlogit, biogeme, MNL_NAMES)
    assert c["loglik_abs_diff"] == pytest.approx(1e-4)
    assert c["max_estimate_diff_over_se"] == pytest.approx(0.02)
    assert c["max_rel_diff_se"] == 0.0
    assert c["max_rel_diff_robust_se"] == pytest.approx(0.03)
    assert c["max_rel_diff_robust_se_at"] == "time"
    assert c["time_ratio"] == 0.25


def test_elasticity_difference_skips_undefined_and_compares_zeros_absolutely():
    a = np.array([1.0, np.nan, 0.0, -2.0])
    b = np.array([1.01, 3.0, 1e-15, -2.0])
    assert max_relative_elasticity_difference(a, b) == pytest.approx(0.01 / 1.01)
    assert max_relative_elasticity_difference(np.array([1e-13]), np.array([0.0])) == 0.1
    with pytest.raises(ValueError, match="no entry"):
        max_relative_elasticity_difference(np.array([np.nan]), np.array([1.0]))


def _block(aggregate: np.ndarray, point: np.ndarray) -> dict:
    """The Biogeme side's JSON layout: [variable][changed][responding]."""
    alts = list(ALTERNATIVE_NAMES.values())
    return {
        "aggregate": {
            "time": {
                i: {j: aggregate[a, b] for b, j in enumerate(alts)} for a, i in enumerate(alts)
            }
        },
        "point": {
            "time": {
                i: {
                    j: [None if np.isnan(v) else v for v in point[:, a, b]]
                    for b, j in enumerate(alts)
                }
                for a, i in enumerate(alts)
            }
        },
    }


def test_elasticity_arrays_keep_changed_then_responding_order():
    rng = np.random.default_rng(16)
    aggregate = rng.normal(size=(3, 3))
    point = rng.normal(size=(5, 3, 3))
    point[2, :, 1] = np.nan  # Swissmetro unavailable in situation 2
    back_aggregate, back_point = biogeme_elasticity_arrays(_block(aggregate, point), "time")
    np.testing.assert_array_equal(back_aggregate, aggregate)
    np.testing.assert_array_equal(back_point, point)
    mine = {"time": {"aggregate": aggregate * (1 + 1e-9), "point": point.copy()}}
    mine["time"]["point"][0, 0, 1] *= 1.001  # a cross point elasticity
    c = compare_elasticities(mine, _block(aggregate, point))["time"]
    assert c["aggregate_direct_max_rel_diff"] == pytest.approx(1e-9, rel=1e-3)
    assert c["aggregate_cross_max_rel_diff"] == pytest.approx(1e-9, rel=1e-3)
    assert c["point_max_rel_diff"] == pytest.approx(1e-3)
    assert c["point_defined_both"] == 5 * 9 - 3 and c["point_defined_only_one"] == 0


def test_markdown_report_lists_every_case():
    biogeme = _biogeme_fit()
    mixlogit = _as_mixlogit(biogeme)
    case = {
        "model": "b01logit",
        "num_draws": 0,
        "mixlogit": mixlogit,
        "biogeme": biogeme,
        "comparison": compare_fits(mixlogit, biogeme, MNL_NAMES),
    }
    payload = {
        "command": "python -m benchmarks.bench_biogeme --models b01logit",
        "biogeme_version": "3.3.2",
        "machine": {"cpus": 2, "load_avg_start": (1.0, 1.0, 1.0)},
        "cases": [case],
    }
    text = markdown(payload)
    assert "| b01logit | - | -5331.252000 | -5331.252000 | 0.00e+00 |" in text
    assert "ASC_1 (ASC_TRAIN)" in text
    assert "Findings (written from the numbers above): b01logit: |LL diff| 0.0e+00 (meets" in text


def test_mu_as_lambda_inverts_the_nest_parameter_and_its_standard_errors():
    fit = _biogeme_fit()
    for key, value in (("estimates", 2.0), ("std_errors", 0.2), ("robust_std_errors", 0.4)):
        fit[key]["MU"] = value
    converted = mu_as_lambda(fit)
    assert converted["estimates"]["MU"] == 0.5
    assert converted["std_errors"]["MU"] == pytest.approx(0.05)  # 0.2 / 2^2
    assert converted["robust_std_errors"]["MU"] == pytest.approx(0.1)
    assert converted["estimates"]["B_TIME"] == fit["estimates"]["B_TIME"]
    assert fit["estimates"]["MU"] == 2.0  # the input is left alone
    mixlogit = _as_mixlogit(_biogeme_fit()) | {"loglik": -5236.9}
    for key, value in (("estimates", 0.5), ("std_errors", 0.05), ("robust_std_errors", 0.1)):
        mixlogit[key]["lambda.existing"] = value
    c = compare_fits(
        mixlogit, in_mixlogit_units("b09nested", fit | {"loglik": -5236.9}), NESTED_NAMES
    )
    assert c["max_estimate_diff_over_se"] == 0.0 and c["max_rel_diff_robust_se"] < 1e-12


def _latent_fit(time1: float, time2: float, share: float) -> dict:
    estimates = {name: 0.1 * k for k, name in enumerate(LATENT_NAMES)}
    estimates |= {"B_TIME_CLASS1": time1, "B_TIME_CLASS2": time2, "SHARE_CLASS2": share}
    errors = {name: 0.01 * (k + 1) for k, name in enumerate(LATENT_NAMES)}
    return {
        "loglik": -4318.8,
        "estimates": estimates,
        "std_errors": errors,
        "robust_std_errors": {k: 2 * v for k, v in errors.items()},
        "wall_seconds": 1.0,
    }


def test_order_classes_renumbers_by_increasing_time_and_flips_the_share():
    ordered = _latent_fit(-2.5, 0.02, -1.3)
    same, swapped = order_classes(ordered)
    assert not swapped and same["estimates"] == ordered["estimates"]
    reversed_fit = _latent_fit(0.02, -2.5, 1.3)
    back, swapped = order_classes(reversed_fit)
    assert swapped
    assert back["estimates"]["B_TIME_CLASS1"] == -2.5 and back["estimates"]["B_TIME_CLASS2"] == 0.02
    assert back["estimates"]["SHARE_CLASS2"] == -1.3
    assert back["estimates"]["ASC_CAR_CLASS1"] == reversed_fit["estimates"]["ASC_CAR_CLASS2"]
    assert back["std_errors"]["B_COST_CLASS2"] == reversed_fit["std_errors"]["B_COST_CLASS1"]
    assert (
        back["robust_std_errors"]["SHARE_CLASS2"]
        == reversed_fit["robust_std_errors"]["SHARE_CLASS2"]
    )
    assert in_mixlogit_units("latent_class", reversed_fit)["classes_swapped"] is True


def _comparison(ll: float, est: float, rse: float) -> dict:
    return {
        "loglik_abs_diff": ll,
        "max_estimate_diff_over_se": est,
        "max_rel_diff_robust_se": rse,
        "time_ratio": 0.5,
    }


def test_verdicts_use_the_simulated_target_for_b12panel_only():
    c = _comparison(1e-5, 0.001, 0.02)
    assert verdicts("b09nested", c) == {"loglik": True, "estimates": True, "robust_se": False}
    assert verdicts("b12panel", c)["loglik"] is False


def test_findings_state_targets_maxima_and_starts_from_the_numbers():
    biogeme = _biogeme_fit() | {"converged": True}
    mixlogit = _as_mixlogit(biogeme) | {"loglik": -5340.0, "converged": True}
    multi = mixlogit | {"loglik": -5331.252, "start_logliks": [-5340.0, -5331.252, -5331.2525]}
    case = {
        "model": "b12panel",
        "num_draws": 500,
        "mixlogit": mixlogit,
        "biogeme": biogeme,
        "comparison": _comparison(8.748, 0.5, 0.2),
        "mixlogit_multistart": multi,
        "comparison_multistart": _comparison(1e-7, 0.001, 0.001),
    }
    first, second = findings([case])
    assert first.startswith("b12panel: |LL diff| 8.7e+00 (misses 1e-06)")
    assert "Biogeme's is higher, so the two stopped at different maxima" in first
    assert "-5340.0000, Biogeme -5331.2520" in first
    assert second.startswith("b12panel, mixlogit 3 starts: |LL diff| 1.0e-07 (meets 1e-06)")
    assert "robust SEs within 0.1 % (meets 1 %)" in second
    assert "3 starts reached LLs from -5340.0000 to -5331.2520 (2 within 0.01" in second
    assert second.endswith("mixlogit 2.0 times faster.")


def test_latent_names_read_mixlogit_class_labels_from_the_fit():
    variables = list(MNL_NAMES.values())
    zero_based = [f"{v}.class{c}" for c in (0, 1) for v in variables] + ["share.class1"]
    names = latent_names(zero_based)
    assert names["B_TIME_CLASS1"] == "time.class0" and names["B_TIME_CLASS2"] == "time.class1"
    assert names["SHARE_CLASS2"] == "share.class1"
    one_based = [f"{v}.class{c}" for c in (1, 2) for v in variables] + ["share.class2"]
    assert latent_names(one_based) == LATENT_NAMES
    with pytest.raises(ValueError, match="two-class"):
        latent_names(one_based[:4])
