"""Classical latent-class logit (``LatentClassLogit.fit(method="ml")``): recovery of known
classes, an independent numpy/scipy likelihood, relabelling, membership covariates, and the
Bayesian fit of the same model.

The simulated data (seed 7103 and 7104, four alternatives, three variables) are fresh for
these tests; the module was developed on a different design.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax, logsumexp

from mixlogit import ChoiceData, ChoiceDataError, EstimationResults, LatentClassLogit
from mixlogit.estimation.latent_class import latent_class_of, relabel

VARIABLES = ["price", "time", "comfort"]
BETA = np.array([[-2.5, -0.4, 0.3], [-0.7, -1.2, 1.0]])  # class 1, class 2


def simulate(seed, num_people=700, num_t=6, num_j=4, share_constant=0.4, income_effect=0.8):
    """Panel choices of people in two classes; class 2 more likely with higher income."""
    rng = np.random.default_rng(seed)
    income = rng.normal(0.0, 1.0, num_people)
    odds = share_constant + income_effect * income
    cls = (rng.random(num_people) < 1.0 / (1.0 + np.exp(-odds))).astype(int)
    rows = []
    for n in range(num_people):
        for t in range(num_t):
            x = np.column_stack(
                [
                    rng.lognormal(0.0, 0.3, num_j),
                    rng.uniform(0.5, 2.0, num_j),
                    rng.normal(0.0, 1.0, num_j),
                ]
            )
            utility = x @ BETA[cls[n]] + rng.gumbel(size=num_j)
            chosen = int(np.argmax(utility))
            for j in range(num_j):
                rows.append((n, n * num_t + t, j, int(j == chosen), *x[j], income[n]))
    frame = pd.DataFrame(rows, columns=["person", "sit", "alt", "choice", *VARIABLES, "income"])
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="sit", panel="person")
    return data, cls


@pytest.fixture(scope="module")
def fitted():
    data, cls = simulate(7103)
    model = LatentClassLogit(VARIABLES, num_classes=2, order_by="price", membership=["income"])
    return data, cls, model.fit(data, method="ml")


def numpy_latent_class_loglik(data, theta, num_classes=2, membership=("income",)):
    """Independent person log-likelihood sum in numpy, from the data frame (every situation
    of the simulated data has all alternatives, so the rows reshape to (N, T, J))."""
    frame = data.frame.sort_values(["person", "sit", "alt"])
    num_people, num_j = frame["person"].nunique(), frame["alt"].nunique()
    x = frame[VARIABLES].to_numpy().reshape(num_people, -1, num_j, len(VARIABLES))
    choice = frame["choice"].to_numpy().reshape(num_people, -1, num_j)
    z = frame.groupby("person")[list(membership)].first().to_numpy()
    num_k = len(VARIABLES)
    beta = theta[: num_classes * num_k].reshape(num_classes, num_k)
    delta = theta[num_classes * num_k :].reshape(num_classes - 1, 1 + len(membership))
    logits = np.column_stack(
        [np.zeros(num_people), np.column_stack([np.ones(num_people), z]) @ delta.T]
    )
    log_share = log_softmax(logits, axis=1)  # (N, C)
    log_p = log_softmax(np.einsum("ntjk,ck->ntjc", x, beta), axis=2)  # (N, T, J, C)
    class_ll = np.einsum("ntj,ntjc->nc", choice, log_p)
    return float(np.sum(logsumexp(log_share + class_ll, axis=1)))


def test_recovers_known_classes_and_membership(fitted):
    _, cls, results = fitted
    assert results.names == [
        "price.class0",
        "time.class0",
        "comfort.class0",
        "price.class1",
        "time.class1",
        "comfort.class1",
        "share.class1",
        "income.class1",
    ]
    truth = np.concatenate([BETA.ravel(), [0.4, 0.8]])
    se = results.robust_std_errors
    assert results.converged
    # each estimate within 3.5 robust standard errors of the truth (set before the first run)
    assert np.all(np.abs(results.params - truth) <= 3.5 * se), (results.params, se)
    membership = results.class_membership()
    # the columns of the Bayesian route's class_membership, then the prior probabilities
    assert list(membership.columns) == [
        "person",
        "p_class_0",
        "p_class_1",
        "most_likely_class",
        "prior_class_0",
        "prior_class_1",
    ]
    accuracy = np.mean(membership["most_likely_class"].to_numpy() == cls)
    assert accuracy >= 0.8
    np.testing.assert_allclose(membership[["p_class_0", "p_class_1"]].sum(axis=1), 1.0, atol=1e-12)


def test_loglik_matches_numpy_and_no_nearby_point_is_higher(fitted):
    data, _, results = fitted
    assert results.loglik == pytest.approx(
        numpy_latent_class_loglik(data, results.params), abs=1e-8
    )
    # the numpy likelihood is lower at small steps from the estimates in every direction tried
    rng = np.random.default_rng(7106)
    for _ in range(20):
        step = rng.normal(0.0, 1.0, results.params.shape) * 0.05 * results.robust_std_errors
        assert numpy_latent_class_loglik(data, results.params + step) < results.loglik


def test_relabelling_keeps_the_likelihood(fitted):
    data, _, results = fitted
    latent = latent_class_of(results.model)
    swapped = results.params.copy()
    swapped[:3], swapped[3:6] = results.params[3:6], results.params[:3]
    swapped[6:] = -results.params[6:]  # class 2 is the base now
    assert numpy_latent_class_loglik(data, swapped) == pytest.approx(results.loglik, abs=1e-8)
    np.testing.assert_allclose(relabel(latent, swapped), results.params, atol=1e-12)


def test_prediction_elasticities_and_persistence(fitted, tmp_path):
    data, _, results = fitted
    unconditional = results.predict().to_numpy()
    conditional = results.predict(conditional=True).to_numpy()
    np.testing.assert_allclose(unconditional.sum(axis=1), 1.0, atol=1e-12)
    # conditioning on a person's own choices predicts them better
    chosen = data.to_arrays(VARIABLES).chosen
    rows = np.arange(len(chosen))
    assert np.log(conditional[rows, chosen]).sum() > np.log(unconditional[rows, chosen]).sum()
    elasticity = results.elasticities("price", changed=[0]).aggregate.loc[0, 0]
    shares = []
    for factor in (1.001, 0.999):
        frame = data.frame.copy()
        frame.loc[frame["alt"] == 0, "price"] *= factor
        shares.append(results.market_shares(data.with_frame(frame))[0])
    finite = (np.log(shares[0]) - np.log(shares[1])) / (np.log(1.001) - np.log(0.999))
    assert elasticity == pytest.approx(finite, rel=1e-6)
    path = tmp_path / "lc.json"
    results.save(path)
    loaded = EstimationResults.load(path, data=data)
    np.testing.assert_allclose(loaded.class_membership(data), results.class_membership())


def test_bad_membership_and_routes_are_named():
    data, _ = simulate(7104, num_people=30, num_t=3)
    frame = data.frame.copy()
    frame.loc[frame.index[0], "income"] += 1.0
    varying = data.with_frame(frame)
    model = LatentClassLogit(VARIABLES, membership=["income"])
    with pytest.raises(ChoiceDataError, match="'income' varies within decision maker 0"):
        model.fit(varying, method="ml")
    with pytest.raises(ValueError, match="maximum likelihood only"):
        model.fit(data, method="nuts")
    with pytest.raises(ChoiceDataError, match="'wealth' is not a column"):
        LatentClassLogit(VARIABLES, membership=["wealth"]).fit(data, method="ml")
