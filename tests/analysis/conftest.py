"""Fixtures of the analysis tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
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
