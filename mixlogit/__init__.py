"""mixlogit: logit models with random coefficients, above all a random preference strength.

The exact strength marginals ``log E_beta[sigmoid(beta * d)]`` live in two backends with the
same names and semantics:

* :mod:`mixlogit.torch` (PyTorch / Pyro): ``gamma_logit_marginal``, ``lognormal_logit_marginal``,
  ``point_mass_logit_marginal``, strength modules ``GammaStrength``, ``LogNormalStrength``,
  ``FixedStrength`` and Pyro distributions, models and guides.
* :mod:`mixlogit.jax` (JAX / NumPyro): the same functions, pytree strength objects and NumPyro
  distributions, models and guides.

The backends are imported lazily so that ``import mixlogit`` needs neither torch nor JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_SUBMODULES = {"torch", "jax"}

# Classical choice-model API (ChoiceData, MultinomialLogit, MixedLogit, datasets) is added to
# _LAZY_ATTRS as {public name: "module path"} so that importing mixlogit stays cheap.
_LAZY_ATTRS: dict[str, str] = {
    "ChoiceArrays": "mixlogit.arrays",
    "RandomCoefficient": "mixlogit.arrays",
    "ChoiceData": "mixlogit.data",
    "ChoiceDataError": "mixlogit.data",
    "MultinomialLogit": "mixlogit.models",
    "MixedLogit": "mixlogit.models",
    "ConvergenceWarning": "mixlogit.models",
    "EstimationResults": "mixlogit.results",
    "simulate_choices": "mixlogit.simulate",
    "make_draws": "mixlogit.draws",
    "load_electricity": "mixlogit.datasets",
    "load_swissmetro": "mixlogit.datasets",
    "load_car": "mixlogit.datasets",
    "load_modecanada": "mixlogit.datasets",
    "load_heating": "mixlogit.datasets",
    "fit_bayes": "mixlogit.bayes",
    "BayesianResults": "mixlogit.bayes",
    "LatentClassLogit": "mixlogit.bayes",
    "BayesSpec": "mixlogit.bayes",
    "BayesPriors": "mixlogit.bayes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_ATTRS:
        module = importlib.import_module(_LAZY_ATTRS[name])
        return getattr(module, name)
    raise AttributeError(f"module 'mixlogit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_SUBMODULES, *_LAZY_ATTRS])


__all__ = ["__version__", *sorted(_LAZY_SUBMODULES), *sorted(_LAZY_ATTRS)]
