"""Elasticities and marginal effects (issue 16, item 3): the MNL closed form, finite differences
of ``predict`` for a panel mixed logit, and the delta method against a finite-difference
Jacobian of the aggregate in the parameters.

The data are drawn here with seeds and designs of their own (not tuned on)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mixlogit import ChoiceData, MixedLogit, MultinomialLogit, simulate_choices


@pytest.fixture(scope="module")
def mnl():
    model = MultinomialLogit(["price", "x1"])
    data = simulate_choices(
        model, {"price": -0.8, "x1": 0.5}, num_people=40, seed=101, variable_scale={"price": 1.0}
    )
    return model.fit(data), data


def test_mnl_elasticities_equal_the_closed_form(mnl):
    fit, data = mnl
    result = fit.elasticities("price")
    prob = fit.predict().to_numpy()
    x = data.to_arrays(["price"], check_identified=False).X[..., 0]
    b = fit["price"]
    num_alternatives = prob.shape[1]
    for i in range(num_alternatives):
        for j in range(num_alternatives):
            # direct: b x_j (1 - P_j); cross: -b x_i P_i (independence from irrelevant alternatives)
            expected = b * x[:, j] * (1 - prob[:, j]) if i == j else -b * x[:, i] * prob[:, i]
            np.testing.assert_allclose(result.point[:, i, j], expected, rtol=1e-12, atol=1e-14)
            # aggregate: probability-weighted mean of the point elasticities
            weighted = (prob[:, j] * expected).sum() / prob[:, j].sum()
            assert result.aggregate.iloc[i, j] == pytest.approx(weighted, rel=1e-12)
    marginal = fit.elasticities("price", kind="marginal_effect")
    for i in range(num_alternatives):
        for j in range(num_alternatives):
            expected = b * prob[:, j] * ((i == j) - prob[:, i])
            np.testing.assert_allclose(marginal.point[:, i, j], expected, rtol=1e-12, atol=1e-15)
    # a generic variable moved in every alternative at once changes no probability
    together = fit.elasticities("price", kind="marginal_effect", changed=None)
    assert list(together.aggregate.index) == ["all"]
    np.testing.assert_allclose(together.aggregate.to_numpy(), 0.0, atol=1e-14)


def _with_column_scaled(data: ChoiceData, column: str, alternatives, factor: float) -> ChoiceData:
    frame = data.frame.copy()
    rows = frame[data.alternative_column].isin(alternatives)
    frame.loc[rows, column] = frame.loc[rows, column] * factor
    return data.with_frame(frame)


@pytest.fixture(scope="module")
def mixed():
    # a panel mixed logit with a normal price coefficient, drawn for 50 people x 3 situations,
    # 4 alternatives; a person-level income enters alternative-specifically (its true effect is
    # 0 here); 64 Halton draws (a second or so)
    truth = {"x1": 0.6, "price": -1.2, "sd.price": 0.7}
    drawn = simulate_choices(
        MixedLogit(fixed=["x1"], random={"price": "normal"}),
        truth,
        num_people=50,
        situations_per_person=3,
        num_alternatives=4,
        seed=2027,
        variable_scale={"price": 1.0},
    )
    frame = drawn.frame.copy()
    people = frame[drawn.panel_column].unique()
    income = dict(
        zip(people, np.random.default_rng(5).lognormal(0.0, 0.5, len(people)), strict=True)
    )
    frame["income"] = frame[drawn.panel_column].map(income)
    data = drawn.with_frame(frame)
    model = MixedLogit(fixed=["x1", "income@1", "income@2"], random={"price": "normal"})
    return model.fit(data, num_draws=64), data


def _demand(fit, data) -> np.ndarray:
    return fit.predict(data).mul(data.weights, axis=0).sum().to_numpy()


def test_mixed_logit_aggregate_elasticities_match_finite_differences_of_predict(mixed):
    fit, data = mixed
    h = 1e-5
    result = fit.elasticities("price")
    for i, alternative in enumerate(data.alternatives):
        up = _demand(fit, _with_column_scaled(data, "price", [alternative], 1 + h))
        down = _demand(fit, _with_column_scaled(data, "price", [alternative], 1 - h))
        # d log(demand_j) / d log(x_i), central differences on the same draws
        finite = (np.log(up) - np.log(down)) / (np.log1p(h) - np.log1p(-h))
        np.testing.assert_allclose(result.aggregate.iloc[i].to_numpy(), finite, rtol=1e-6)
    # income enters through income@1 and income@2 only; moving it in every alternative (a
    # decision maker's attribute) is one row, "all"
    income = fit.elasticities("income", changed=None)
    up = _demand(fit, _with_column_scaled(data, "income", data.alternatives, 1 + h))
    down = _demand(fit, _with_column_scaled(data, "income", data.alternatives, 1 - h))
    finite = (np.log(up) - np.log(down)) / (np.log1p(h) - np.log1p(-h))
    np.testing.assert_allclose(income.aggregate.loc["all"].to_numpy(), finite, rtol=1e-6)


def test_point_marginal_effects_match_finite_differences_per_situation(mixed):
    fit, data = mixed
    alternative = data.alternatives[2]
    result = fit.elasticities("price", kind="marginal_effect", changed=[alternative])
    h = 1e-6
    frame = data.frame
    step = pd.Series(0.0, index=frame.index)
    step[frame[data.alternative_column] == alternative] = h

    def shifted(sign):
        moved = frame.copy()
        moved["price"] = moved["price"] + sign * step
        return data.with_frame(moved)

    finite = (fit.predict(shifted(1)).to_numpy() - fit.predict(shifted(-1)).to_numpy()) / (2 * h)
    np.testing.assert_allclose(result.point[:, 0, :], finite, rtol=1e-6, atol=1e-9)


def test_standard_errors_are_the_delta_method_with_the_robust_covariance(mixed):
    fit, data = mixed
    result = fit.elasticities("price")
    # finite-difference Jacobian of the aggregate elasticities in the parameters
    h = 1e-6
    columns = []
    for k in range(len(fit.params)):
        step = np.zeros_like(fit.params)
        step[k] = h
        up = dataclasses.replace(fit, params=fit.params + step).elasticities("price")
        down = dataclasses.replace(fit, params=fit.params - step).elasticities("price")
        columns.append(((up.aggregate - down.aggregate) / (2 * h)).to_numpy())
    jacobian = np.stack(columns, axis=-1)  # (I, J, P)
    for name, cov in (("robust", fit.robust_cov), ("classical", fit.cov)):
        expected = np.sqrt(np.einsum("ijp,pq,ijq->ij", jacobian, cov, jacobian))
        got = (
            result.std_errors
            if name == "robust"
            else fit.elasticities("price", covariance="classical").std_errors
        )
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5)
    table = result.table(interval=0.9)
    assert table.loc[(data.alternatives[0], data.alternatives[0]), "direct"]
    assert table["estimate"].to_numpy() == pytest.approx(result.aggregate.stack().to_numpy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variable": "x9"}, "does not enter the utility"),
        ({"variable": "price", "kind": "arc"}, "kind must be one of"),
        ({"variable": "price", "covariance": "sandwich"}, "covariance must be"),
        ({"variable": "price", "changed": ["bus"]}, "not in the data"),
        ({"variable": "price", "changed": "some"}, "changed must be"),
    ],
)
def test_bad_arguments_are_named(mnl, kwargs, message):
    fit, _ = mnl
    with pytest.raises(ValueError, match=message):
        fit.elasticities(**kwargs)
