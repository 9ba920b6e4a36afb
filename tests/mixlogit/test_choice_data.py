"""ChoiceData: construction from long and wide format, array layout and validation messages."""

import numpy as np
import pandas as pd
import pytest

from mixlogit import MultinomialLogit
from mixlogit.data import ChoiceData, ChoiceDataError
from mixlogit.datasets import (
    load_car,
    load_electricity,
    load_heating,
    load_modecanada,
    load_swissmetro,
)


def small_long() -> pd.DataFrame:
    # situation 10: 3 alternatives, situation 20: 2 alternatives (unbalanced), person 1 both
    return pd.DataFrame(
        {
            "sit": [10, 10, 10, 20, 20],
            "alt": ["a", "b", "c", "a", "c"],
            "choice": [0, 1, 0, 0, 1],
            "person": [1, 1, 1, 1, 1],
            "price": [1.0, 2.0, 3.0, 1.5, 2.5],
            "time": [5.0, 4.0, 3.0, 2.0, 1.0],
            "income": [30.0, 30.0, 30.0, 40.0, 40.0],
            "av": [1, 1, 1, 1, 1],
            "w": [2.0, 2.0, 2.0, 1.0, 1.0],
        }
    )


def make(frame, **kwargs):
    options = dict(choice="choice", alternative="alt", situation="sit", panel="person")
    options.update(kwargs)
    return ChoiceData(frame, **options)


def test_long_format_arrays_unbalanced_with_asc_and_alternative_specific():
    data = make(small_long(), availability="av", weights="w")
    arrays = data.to_arrays(["price", "ASC_b", "income@c"])
    assert arrays.X.shape == (2, 3, 3)
    assert arrays.alternatives == ("a", "b", "c")
    np.testing.assert_array_equal(arrays.available, [[True, True, True], [True, False, True]])
    np.testing.assert_array_equal(arrays.chosen, [1, 2])
    np.testing.assert_array_equal(arrays.X[:, :, 0], [[1.0, 2.0, 3.0], [1.5, 0.0, 2.5]])
    np.testing.assert_array_equal(arrays.X[:, :, 1], [[0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(arrays.X[:, :, 2], [[0, 0, 30.0], [0, 0, 40.0]])
    np.testing.assert_array_equal(arrays.weights, [2.0, 1.0])
    np.testing.assert_array_equal(arrays.panel, [0, 0])
    assert arrays.num_panels == 1 and arrays.X.dtype == np.float64
    assert arrays.variable_names == ("price", "ASC_b", "income@c")


def test_wide_format_matches_long_format():
    wide = pd.DataFrame(
        {
            "id": [7, 8],
            "chosen": [2, 1],
            "p1": [1.0, 3.0],
            "p2": [2.0, 4.0],
            "av2": [1, 0],
            "inc": [10.0, 20.0],
        }
    )
    data = ChoiceData.from_wide(
        wide,
        choice="chosen",
        alternatives=[1, 2],
        alternative_columns={"price": {1: "p1", 2: "p2"}},
        shared=["inc"],
        availability={2: "av2"},
        situation="id",
    )
    arrays = data.to_arrays(["price", "inc@2"], check_identified=False)
    np.testing.assert_array_equal(arrays.X[:, :, 0], [[1.0, 2.0], [3.0, 0.0]])
    np.testing.assert_array_equal(arrays.X[:, :, 1], [[0.0, 10.0], [0.0, 0.0]])
    np.testing.assert_array_equal(arrays.available, [[True, True], [True, False]])
    np.testing.assert_array_equal(arrays.chosen, [1, 0])
    np.testing.assert_array_equal(data.situation_ids, [7, 8])


def test_shipped_datasets_load_with_expected_sizes():
    electricity = load_electricity()
    assert electricity.shape == (17232, 10)
    data = ChoiceData(electricity, choice="choice", alternative="alt", situation="chid", panel="id")
    assert (data.num_situations, data.num_alternatives, data.num_panels) == (4308, 4, 361)
    assert load_swissmetro().shape == (10728, 28)
    assert load_car().shape == (4654, 70)
    assert load_heating().shape == (900, 16)
    canada = load_modecanada()
    canada_data = ChoiceData(canada, choice="choice", alternative="alt", situation="case")
    # unbalanced choice sets: the number of available alternatives is the noalt column
    noalt = canada.groupby("case")["noalt"].first().to_numpy()
    np.testing.assert_array_equal(canada_data.to_arrays(["cost"]).available.sum(1), noalt)


# ---------------------------------------------------------------- validation messages
#: ``{case: ({(row, column): new value}, ChoiceData options, expected message)}``: one edit of
#: the small frame that each validation must report, naming the column, rows or situations.
_CONSTRUCTION_ERRORS = {
    "no chosen alternative": (
        {(3, "choice"): 0, (4, "choice"): 0},
        {},
        r"no chosen alternative.*situations \[20\]",
    ),
    "more than one chosen": ({(0, "choice"): 1}, {}, r"more than one chosen.*situations \[10\]"),
    "chosen alternative unavailable": (
        {(1, "av"): 0},
        {"availability": "av"},
        r"unavailable.*'av'.*situations \[10\].*rows \[1\]",
    ),
    "panel changes within situation": (
        {(4, "person"): 2},
        {},
        r"panel id.*'person'.*changes within.*\[20\]",
    ),
    "choice not 0/1": ({(2, "choice"): 2}, {}, r"0/1 or boolean; rows \[2\] have values \[2\]"),
    "negative weight": ({(4, "w"): -1.0}, {"weights": "w"}, r"weights column 'w'.*rows \[4\]"),
    "weight varies in situation": (
        {(4, "w"): 3.0},
        {"weights": "w"},
        r"weights.*vary within situations \[20\]",
    ),
}


@pytest.mark.parametrize(
    ("edits", "options", "match"), _CONSTRUCTION_ERRORS.values(), ids=list(_CONSTRUCTION_ERRORS)
)
def test_construction_error_names_what_is_wrong(edits, options, match):
    frame = small_long()
    for (row, column), value in edits.items():
        frame.loc[row, column] = value
    with pytest.raises(ChoiceDataError, match=match):
        make(frame, **options)


def test_error_nan_and_inf_name_column_row_situation_value():
    frame = small_long()
    frame.loc[3, "price"] = np.nan
    data = make(frame)
    with pytest.raises(ChoiceDataError, match=r"'price'.*row 3 \(situation 20, alternative 'a'\)"):
        data.to_arrays(["price"])
    frame.loc[3, "price"] = np.inf
    with pytest.raises(ChoiceDataError, match=r"'price'.*non-finite.*row 3.*inf"):
        make(frame).to_arrays(["price"])


def test_nan_in_unavailable_alternative_is_allowed():
    frame = small_long()
    frame.loc[0, "price"] = np.nan
    frame.loc[0, "av"] = 0
    arrays = make(frame, availability="av").to_arrays(["price"])
    assert arrays.X[0, 0, 0] == 0.0 and not arrays.available[0, 0]


def test_error_duplicate_situation_alternative():
    frame = pd.concat([small_long(), small_long().iloc[[3]]], ignore_index=True)
    with pytest.raises(ChoiceDataError, match=r"duplicate.*situation 20, alternative 'a'.*rows"):
        make(frame)


def test_error_non_numeric_column_names_column_and_value():
    frame = small_long()
    frame["price"] = frame["price"].astype(object)
    frame.loc[2, "price"] = "cheap"
    with pytest.raises(ChoiceDataError, match=r"'price'.*not numeric.*row 2.*'cheap'"):
        make(frame).to_arrays(["price"])


def test_error_constant_variable_is_unidentified():
    with pytest.raises(
        ChoiceDataError, match=r"\['income'\] do not vary.*'<column>@<alternative>'"
    ):
        make(small_long()).to_arrays(["price", "income"])


def test_error_collinear_variables_are_named():
    frame = small_long()
    frame["price2"] = 2 * frame["price"]
    with pytest.raises(ChoiceDataError, match=r"\['price', 'price2'\] are collinear"):
        make(frame).to_arrays(["price", "price2"])


def test_error_missing_columns_and_unknown_alternatives():
    with pytest.raises(ChoiceDataError, match=r"panel column 'who' is not in the data"):
        make(small_long(), panel="who")
    with pytest.raises(ChoiceDataError, match=r"column 'cost' is not in the data"):
        make(small_long()).to_arrays(["cost"])
    with pytest.raises(ChoiceDataError, match=r"alternative 'z'"):
        make(small_long()).to_arrays(["ASC_z"])


def test_error_wide_choice_not_an_alternative():
    wide = pd.DataFrame({"c": [1, 3], "x1": [1.0, 2.0], "x2": [2.0, 1.0]})
    with pytest.raises(ChoiceDataError, match=r"not alternatives \[1, 2\] at rows \[1\]"):
        ChoiceData.from_wide(
            wide, choice="c", alternatives=[1, 2], alternative_columns={"x": {1: "x1", 2: "x2"}}
        )


def test_scenario_data_without_choices_forecasts_and_refuses_fitting():
    # a fit on observed choices, then forecasts on the same situations with the choice column
    # removed and one attribute changed: no invented choice is needed, and nothing reads one
    rng = np.random.default_rng(8801)
    rows = []
    for s in range(150):
        for j in range(3):
            rows.append((s, j, rng.normal(), rng.lognormal(0.0, 0.3), int(rng.random() < 0.9)))
    frame = pd.DataFrame(rows, columns=["sit", "alt", "quality", "price", "avail"])
    frame.loc[frame["alt"] == 0, "avail"] = 1
    utility = 0.8 * frame["quality"] - 1.5 * frame["price"] + rng.gumbel(size=len(frame))
    utility = utility.where(frame["avail"] == 1, -np.inf)
    frame["choice"] = (utility == utility.groupby(frame["sit"]).transform("max")).astype(int)
    observed = ChoiceData(
        frame, choice="choice", alternative="alt", situation="sit", availability="avail"
    )
    results = MultinomialLogit(["quality", "price"]).fit(observed)
    scenario = ChoiceData(
        frame.drop(columns="choice"),
        choice=None,
        alternative="alt",
        situation="sit",
        availability="avail",
    )
    assert not scenario.has_choices and observed.has_choices
    np.testing.assert_allclose(results.predict(scenario).to_numpy(), results.predict().to_numpy())
    cheaper = frame.drop(columns="choice").assign(price=frame["price"] * 0.9)
    shares = results.market_shares(scenario.with_frame(cheaper))
    assert shares.sum() == pytest.approx(1.0)
    assert results.elasticities("price", data=scenario).aggregate.shape == (3, 3)
    with pytest.raises(ChoiceDataError, match="fitting a model needs observed choices"):
        MultinomialLogit(["quality", "price"]).fit(scenario)
    with pytest.raises(ChoiceDataError, match="conditional prediction"):
        results.predict(scenario, conditional=True)
    empty = frame.drop(columns="choice").assign(avail=0)
    with pytest.raises(ChoiceDataError, match="have no available alternative"):
        ChoiceData(empty, choice=None, alternative="alt", situation="sit", availability="avail")
