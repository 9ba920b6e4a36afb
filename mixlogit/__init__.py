"""mixlogit: logit models with random coefficients, above all a random preference strength.

Choice models (NumPy/JAX): :class:`ChoiceData` (validated long-format data), the
specification :class:`ModelSpec`, the estimators :class:`MultinomialLogit` and
:class:`MixedLogit` (maximum simulated likelihood or converged quadrature; ``method="nuts"``
or ``"svi"`` for the Bayesian fit :func:`fit_bayes`), :class:`NestedLogit`,
:class:`CrossNestedLogit`, :class:`LatentClassLogit`, their results
(:class:`EstimationResults`, :class:`BayesianResults`), :func:`simulate_choices` and the
bundled data sets (``load_*``).

The exact strength marginals ``log E_beta[sigmoid(beta * d)]`` live in two backends with the
same names and semantics:

* :mod:`mixlogit.torch` (PyTorch / Pyro): ``gamma_logit_marginal``, ``lognormal_logit_marginal``,
  ``point_mass_logit_marginal``, strength modules ``GammaStrength``, ``LogNormalStrength``,
  ``FixedStrength`` and Pyro distributions, models and guides.
* :mod:`mixlogit.jax` (JAX / NumPyro): the same functions, pytree strength objects and NumPyro
  distributions, models and guides.

Every export is imported lazily, so ``import mixlogit`` needs neither torch nor JAX.
"""

from __future__ import annotations

from mixlogit._lazy import lazy_exports
from mixlogit._version import __version__

_LAZY_SUBMODULES = ("torch", "jax")

_LAZY_ATTRS: dict[str, str] = {
    "ChoiceArrays": "mixlogit.arrays",
    "ChoiceData": "mixlogit.data",
    "ChoiceDataError": "mixlogit.data",
    "ModelSpec": "mixlogit.spec",
    "RandomCoefficient": "mixlogit.spec",
    "MultinomialLogit": "mixlogit.estimators",
    "MixedLogit": "mixlogit.estimators",
    "NestedLogit": "mixlogit.estimators",
    "CrossNestedLogit": "mixlogit.estimators",
    "ConvergenceWarning": "mixlogit.estimation.optimize",
    "SeparationWarning": "mixlogit.estimation.diagnostics",
    "LocalMaximumWarning": "mixlogit.estimation.diagnostics",
    "SimulationNoiseWarning": "mixlogit.estimation.diagnostics",
    "EstimationResults": "mixlogit.results",
    "Elasticities": "mixlogit.elasticities",
    "likelihood_ratio_test": "mixlogit.model_comparison",
    "WTPMomentWarning": "mixlogit.results",
    "simulate_choices": "mixlogit.simulate",
    "make_draws": "mixlogit.draws",
    "load_electricity": "mixlogit.datasets",
    "load_swissmetro": "mixlogit.datasets",
    "load_car": "mixlogit.datasets",
    "load_modecanada": "mixlogit.datasets",
    "load_heating": "mixlogit.datasets",
    "fit_bayes": "mixlogit.bayes.fit",
    "BayesianResults": "mixlogit.bayes.results",
    "LatentClassLogit": "mixlogit.bayes.latent_class",
    "BayesPriors": "mixlogit.bayes.priors",
}

__getattr__, __dir__ = lazy_exports(
    __name__,
    _LAZY_ATTRS,
    submodules=_LAZY_SUBMODULES,
    deprecated={"BayesSpec": "mixlogit.spec:ModelSpec"},
)

# The backend submodules stay out of ``__all__``: ``from mixlogit import *`` would import them,
# and ``mixlogit.torch`` needs the optional torch (``mixlogit.jax`` would also shadow ``jax``).
__all__ = ["__version__", *sorted(_LAZY_ATTRS)]
