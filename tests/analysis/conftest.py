"""Fixtures of the analysis tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def classical_fit():
    """A classical choice fit as :func:`analysis.converters.choice_fit_to_inference_data` reads
    it: three parameters with standard errors 0.2, 0.3, 0.5 (``cov``) and a robust covariance
    of twice ``cov``. A fresh object per test, so a test may add attributes."""
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, -0.02], [0.0, -0.02, 0.25]])
    return SimpleNamespace(
        names=["price", "quality", "sd.quality"],
        params=np.array([-1.0, 0.5, 0.8]),
        cov=cov,
        robust_cov=2 * cov,
        loglik=-100.0,
        method="simulation",
        converged=True,
    )


def _panel_choices(num_people, seed, first_id=101):
    """Three-alternative panel choices, four situations per person, ids from ``first_id``."""
    from mixlogit import ChoiceData
    from mixlogit.simulate import draw_person_coefficients, simulate_choice_arrays
    from mixlogit.spec import ModelSpec

    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal"})
    beta = draw_person_coefficients(spec, num_people, {"x0": 1.0}, {"x1": (0.5, 0.7)}, seed=seed)
    arr = simulate_choice_arrays(beta, 4, 3, spec.variables, seed=seed)
    S, J, _ = arr.X.shape
    frame = pd.DataFrame(
        {
            "sit": np.repeat(np.arange(S), J),
            "alt": np.tile(np.arange(J), S),
            "person": np.repeat(first_id + arr.panel, J),
            "chosen": (np.arange(J)[None, :] == arr.chosen[:, None]).ravel().astype(int),
            "x0": arr.X[..., 0].ravel(),
            "x1": arr.X[..., 1].ravel(),
        }
    )
    data = ChoiceData(frame, choice="chosen", alternative="alt", situation="sit", panel="person")
    return frame, data


@pytest.fixture
def panel_choices():
    """``panel_choices(num_people, seed, first_id=101) -> (frame, ChoiceData)``: simulated
    three-alternative panel choices (fixed ``x0``, normal ``x1``), four situations per person,
    person ids from ``first_id``."""
    return _panel_choices
