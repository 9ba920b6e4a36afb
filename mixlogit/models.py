"""Deprecated alias of :mod:`mixlogit.estimators` (the estimator classes), kept for one release.

``mixlogit.models`` was renamed because "models" means Pyro/NumPyro model functions elsewhere
in the library. Use ``from mixlogit import MixedLogit`` (or :mod:`mixlogit.estimators`).
"""

from mixlogit._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {},
    deprecated={
        "MixedLogit": "mixlogit.estimators:MixedLogit",
        "MultinomialLogit": "mixlogit.estimators:MultinomialLogit",
        "ConvergenceWarning": "mixlogit.estimation.optimize:ConvergenceWarning",
        "prepare_draws": "mixlogit.draws:standardised_draws",
        "default_chunk": "mixlogit.estimation.problem:default_chunk",
        "DEFAULT_CHUNK_ELEMENTS": "mixlogit.estimation.problem:DEFAULT_CHUNK_ELEMENTS",
    },
)
__all__: list[str] = []
