"""Bayesian choice models: mixed logit by NUTS/SVI (NumPyro or Pyro), quadrature-marginalised
mixed logit, latent-class logit with the class enumerated, ArviZ output and diagnostics.

Quick start::

    from mixlogit import ModelSpec
    from mixlogit.bayes import fit_bayes
    spec = ModelSpec.build(fixed=["time"], random={"price": "-lognormal", "cl": "normal"})
    res = fit_bayes(spec, data, method="nuts")          # data: ChoiceData or ChoiceArrays
    res.population(); res.individual_coefficients(); res.wtp("cl", "price"); res.loo()

``MixedLogit(...).fit(data, method="nuts" | "svi", backend="numpyro" | "pyro")`` calls
:func:`fit_bayes` with the same specification as the classical fit.

One concept per module: :mod:`~mixlogit.bayes.model` (the models, written once over the
backend protocol of :mod:`~mixlogit.bayes._backend`), :mod:`~mixlogit.bayes.numpyro_model`
and :mod:`~mixlogit.bayes.pyro_model` (the two backend shells), :mod:`~mixlogit.bayes.priors`,
:mod:`~mixlogit.bayes.panel` (data layout), :mod:`~mixlogit.bayes.nuts`,
:mod:`~mixlogit.bayes.svi`, :mod:`~mixlogit.bayes.guides`, :mod:`~mixlogit.bayes.resampling`,
:mod:`~mixlogit.bayes.quadrature`, :mod:`~mixlogit.bayes.postprocess`,
:mod:`~mixlogit.bayes.results` and :mod:`~mixlogit.bayes.fit` (the entry point).
"""

from mixlogit._lazy import lazy_exports

_LAZY_ATTRS = {
    "BayesDiagnosticWarning": "mixlogit.bayes.results",
    "BayesPriors": "mixlogit.bayes.priors",
    "BayesianResults": "mixlogit.bayes.results",
    "LatentClassLogit": "mixlogit.bayes.latent_class",
    "PanelArrays": "mixlogit.bayes.panel",
    "fit_bayes": "mixlogit.bayes.fit",
    "panel_arrays": "mixlogit.bayes.panel",
}

__getattr__, __dir__ = lazy_exports(
    __name__,
    _LAZY_ATTRS,
    deprecated={
        "BayesSpec": "mixlogit.spec:ModelSpec",
        "CoefficientSpec": "mixlogit.spec:CoefficientSpec",
        "spec_from_model": "mixlogit.spec:as_model_spec",
        "population_moments": "mixlogit.mixing:hierarchical_moments",
    },
)

__all__ = sorted(_LAZY_ATTRS)
