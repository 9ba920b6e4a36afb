"""Classical estimation drivers: one concept per module, like :mod:`mixlogit.bayes`.

* :mod:`~mixlogit.estimation.problem`: a model's arrays, draws and jitted likelihood
  functions (:func:`build_problem`).
* :mod:`~mixlogit.estimation.start`: the MNL fit by Newton's method (the default MNL
  optimiser) and MNL starting values (:func:`mnl_newton`).
* :mod:`~mixlogit.estimation.optimize`: the scipy optimiser, the Hessian by differences of the
  exact gradient, classical and cluster-robust covariances.
* :mod:`~mixlogit.estimation.sharding`: the decision makers split between devices
  (``devices=``, ``jax.shard_map``).
* :mod:`~mixlogit.estimation.simulated`: maximum simulated likelihood and its
  simulation-noise diagnostic (:func:`check_simulation_noise`).
* :mod:`~mixlogit.estimation.multistart`: the optimiser from several starts (``num_starts``).
* :mod:`~mixlogit.estimation.quadrature`: maximum likelihood with a converged quadrature rule.
* :mod:`~mixlogit.estimation.diagnostics`: the separation, local-maximum and simulation-noise
  diagnostics (:class:`SeparationWarning`, :class:`LocalMaximumWarning`,
  :class:`SimulationNoiseWarning`).
* :mod:`~mixlogit.estimation.fit`: :func:`estimate`, from the specification to the
  :class:`~mixlogit.results.EstimationResults`.

The estimators (:class:`mixlogit.MixedLogit`, ``MultinomialLogit``) call :func:`estimate`;
nothing here imports them. The exports are lazy: :mod:`mixlogit.results` builds problems
(``problem``) while ``fit`` builds results, and importing one submodule must not import the
others.
"""

from mixlogit._lazy import lazy_exports, names_by_module

_LAZY_ATTRS = names_by_module(
    {
        "mixlogit.estimation.optimize": ("ConvergenceWarning",),
        "mixlogit.estimation.diagnostics": (
            "LocalMaximumWarning",
            "SeparationWarning",
            "SimulationNoiseWarning",
        ),
        "mixlogit.estimation.problem": ("Problem", "build_problem"),
        "mixlogit.estimation.fit": ("estimate",),
        "mixlogit.estimation.simulated": ("check_simulation_noise",),
        "mixlogit.estimation.start": ("mnl_newton",),
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_ATTRS)
__all__ = sorted(_LAZY_ATTRS)
