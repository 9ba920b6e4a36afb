"""Bayesian choice models: mixed logit by NUTS/SVI (NumPyro or Pyro), quadrature-marginalised
mixed logit, latent-class logit with the class enumerated, ArviZ output and diagnostics.

Quick start::

    from mixlogit.bayes import BayesSpec, fit_bayes
    spec = BayesSpec.build(fixed=["time"], random={"price": ("lognormal", -1), "cl": "normal"})
    res = fit_bayes(spec, data, method="nuts")          # data: ChoiceData or ChoiceArrays
    res.population(); res.individual_coefficients(); res.wtp("price"); res.loo()

``MixedLogit(...).fit(data, method="nuts" | "svi", backend="numpyro" | "pyro")`` calls
:func:`fit_bayes` with the same specification as the classical fit.
"""

from mixlogit.bayes.inference import fit_bayes
from mixlogit.bayes.latent_class import LatentClassLogit
from mixlogit.bayes.results import BayesDiagnosticWarning, BayesianResults, population_moments
from mixlogit.bayes.spec import (
    BayesPriors,
    BayesSpec,
    CoefficientSpec,
    PanelArrays,
    panel_arrays,
    spec_from_model,
)

__all__ = [
    "BayesDiagnosticWarning",
    "BayesPriors",
    "BayesSpec",
    "BayesianResults",
    "CoefficientSpec",
    "LatentClassLogit",
    "PanelArrays",
    "fit_bayes",
    "panel_arrays",
    "population_moments",
    "spec_from_model",
]
