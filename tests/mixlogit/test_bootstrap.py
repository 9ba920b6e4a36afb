"""Cluster bootstrap of a fit (``results.bootstrap``), against the cluster-robust standard
errors it estimates by another route (simulated panel data, seed 8128, fresh)."""

import numpy as np
import pytest

from mixlogit import MultinomialLogit, simulate_choices
from mixlogit.estimation.bootstrap import resample_units


@pytest.fixture(scope="module")
def fit():
    model = MultinomialLogit(["ASC_1", "x1", "price"])
    data = simulate_choices(
        model,
        {"ASC_1": 0.3, "x1": 0.8, "price": -1.0},
        num_people=120,
        situations_per_person=6,
        seed=8128,
    )
    return model.fit(data, fix={"ASC_1": 0.3})


def test_resampling_draws_people_as_new_people(fit):
    sample = resample_units(fit.data, np.random.default_rng(1))
    assert sample.num_panels == fit.data.num_panels
    assert sample.num_situations == fit.data.num_situations  # 6 situations each
    # ids are per copy: a person drawn twice is two people
    assert len(set(sample.panel_ids)) == sample.num_panels


def test_bootstrap_table_layout(fit):
    result = fit.bootstrap(4, seed=2, interval=0.9)
    assert list(result.table.columns) == [
        "estimate",
        "bootstrap_std_err",
        "q5%",
        "q95%",
        "bootstrap_mean",
        "robust_std_err",
    ]
    assert result.draws.shape == (4, 3) and np.all(result.draws[:, 0] == 0.3)


@pytest.mark.slow
def test_bootstrap_standard_errors_match_the_cluster_robust_ones(fit):
    result = fit.bootstrap(60, seed=3)
    table = result.table
    assert result.num_failed == 0 and result.draws.shape == (60, 3)
    assert np.isnan(table.loc["ASC_1", "bootstrap_std_err"])  # fixed: no sampling variance
    free = ["x1", "price"]
    ratio = table.loc[free, "bootstrap_std_err"] / table.loc[free, "robust_std_err"]
    # 60 replications: the SD of a bootstrap SD is about 9 %; the tolerance was set before
    # the first run
    assert np.all(np.abs(ratio - 1.0) < 0.35), ratio
    assert np.all(table.loc[free, "q2.5%"] < table.loc[free, "estimate"])
    assert np.all(table.loc[free, "estimate"] < table.loc[free, "q97.5%"])
