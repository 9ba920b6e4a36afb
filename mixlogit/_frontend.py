"""The torch and JAX front ends of the strength marginals, written once.

:mod:`mixlogit.torch` and :mod:`mixlogit.jax` export the same names (:data:`PUBLIC_NAMES`).
What differs between them is plumbing: how inputs are broadcast to one floating dtype, how a
result is cast back, how Monte Carlo normals are drawn (a ``torch.Generator`` passed as
``generator``, a ``jax.random`` key passed as ``key``) and which PPL they use. A backend states
that in a :class:`FrontEnd`; :func:`marginal_functions` builds the public functions
(``logit_marginal`` and its three named forms) from it, and the strength classes of
:mod:`mixlogit._strength_classes` call its :meth:`FrontEnd.log_marginal` and
:meth:`FrontEnd.conditional_moments`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from mixlogit.families import GAMMA, LOGNORMAL, POINT_MASS, StrengthFamily, get_family

__all__ = [
    "PUBLIC_NAMES",
    "FrontEnd",
    "MarginalFunctions",
    "bind",
    "marginal_functions",
    "ordered_params",
]

Array = Any

#: The public names of both :mod:`mixlogit.torch` and :mod:`mixlogit.jax`.
PUBLIC_NAMES = (
    "ConditionalStrength",
    "FixedStrength",
    "GammaLogitBernoulli",
    "GammaStrength",
    "LogNormalLogitBernoulli",
    "LogNormalStrength",
    "MarginalLogitBernoulli",
    "Strength",
    "StrengthMLE",
    "fit_strength_mle",
    "gamma_logit_marginal",
    "gamma_strength_guide",
    "latent_strength_model",
    "logit_marginal",
    "lognormal_logit_marginal",
    "lognormal_strength_guide",
    "make_strength",
    "marginal_strength_model",
    "point_mass_logit_marginal",
    # panel marginals (one strength per group, mixlogit._panel) and their posteriors
    "PanelPosterior",
    "gamma_panel_logit_marginal",
    "lognormal_panel_logit_marginal",
    "panel_logit_marginal",
    "panel_strength_posterior",
    "point_mass_panel_logit_marginal",
)


def bind(first: Any, function: Callable) -> Callable:
    """``function`` with its first argument fixed to ``first`` (same name, docstring, signature)."""

    @functools.wraps(function)
    def bound(*args, **kwargs):
        return function(first, *args, **kwargs)

    signature = inspect.signature(function)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound


def ordered_params(family: StrengthFamily, params: Mapping[str, Any]) -> list:
    """``params`` in the family's parameter order, which must be exactly its names."""
    if sorted(params) != sorted(family.parameters):
        raise ValueError(
            f"{family.name} strength takes parameters {list(family.parameters)}, "
            f"got {sorted(params)}"
        )
    return [params[p] for p in family.parameters]


class FrontEnd(ABC):
    """What a backend supplies to the shared front ends.

    Attributes:
        ops: the backend's kernel primitives (:class:`mixlogit._kernels.ArrayOps`).
        array_type: the array type as written in signatures (``"torch.Tensor"``).
        ppl_module: the module of the backend's :class:`mixlogit._ppl.PPL`, ``PPL``.
        rng_keyword: the keyword of the Monte Carlo random source (``"generator"``, ``"key"``).
        rng_doc: what it is, for the docstrings.
    """

    ops: Any
    array_type: str
    ppl_module: str
    rng_keyword: str
    rng_doc: str

    @abstractmethod
    def broadcast(self, *values) -> tuple[tuple[Array, ...], Callable[[Array], Array]]:
        """``values`` broadcast to one shape and floating working dtype, and the function that
        casts a result to the output dtype (half precision is computed in float32)."""

    @abstractmethod
    def normal_noise(self, noise: Array | None, d: Array, num_samples: int, rng: Any) -> Array:
        """Standard-normal draws ``(K, *d.shape)`` for ``method="mc"``: ``noise`` checked and
        reshaped, or ``num_samples`` of them drawn with ``rng``."""

    @abstractmethod
    def signed_margin(self, d: Array, y: Array) -> Array:
        """``d`` where ``y = 1`` and ``-d`` where ``y = 0``."""

    @abstractmethod
    def concrete(self, x: Array) -> Any:
        """``x``'s values as NumPy, or ``None`` when they are not known (traced under jit)."""

    def ppl(self) -> Any:
        """The backend's :class:`mixlogit._ppl.PPL` (imported when first asked for)."""
        return importlib.import_module(self.ppl_module).PPL

    @functools.cached_property
    def functions(self) -> MarginalFunctions:
        """The backend's public marginal functions (:func:`marginal_functions`)."""
        return marginal_functions(self)

    def log_marginal(
        self,
        family: str | StrengthFamily,
        d,
        params: Mapping[str, Any],
        *,
        noise: Array | None = None,
        rng: Any = None,
        check_values: bool = False,
        **options,
    ) -> Array:
        """``log E[sigmoid(beta d)]`` (see the public ``logit_marginal``); ``check_values``
        refuses known parameter values outside their constraints (the public functions; the
        strength modules' values are valid by construction)."""
        family = get_family(family)
        options = family.check_options(options)
        (d_, *values), restore = self.broadcast(d, *ordered_params(family, params))
        natural = dict(zip(family.parameters, values, strict=True))
        if check_values:
            family.check_values(natural, self.concrete)
        num_samples = options.pop("num_samples", None)
        if options.get("method") == "mc":
            noise = self.normal_noise(noise, d_, num_samples, rng)
        return restore(family.log_marginal(self.ops, d_, natural, noise=noise, **options))

    def conditional_moments(
        self, family: StrengthFamily, d, y, params: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[Array, Array]:
        """Posterior mean and variance of ``beta`` given choice ``y`` (1 or 0) at margin ``d``."""
        (signed, *values), restore = self.broadcast(self.signed_margin(d, y), *params.values())
        mean, var = family.conditional_moments(
            self.ops, signed, dict(zip(params, values, strict=True)), **options
        )
        return restore(mean), restore(var)


class MarginalFunctions(NamedTuple):
    """The public marginal functions of one backend (see :func:`marginal_functions`)."""

    logit_marginal: Callable
    gamma_logit_marginal: Callable
    lognormal_logit_marginal: Callable
    point_mass_logit_marginal: Callable


_LOGIT_MARGINAL_DOC = """``log E[sigmoid(beta d)]`` for ``beta`` of strength ``family`` with parameters ``params``.

Args:
    family: a name in :data:`mixlogit.families.FAMILY_NAMES` (or alias) or the family.
    d: utility difference, any shape.
    params: ``{{parameter: {array} or number}}``, each broadcastable with ``d``.
    noise, {rng}: standard-normal draws ``(K, *batch)`` or ``(K,)`` for ``method="mc"``;
        drawn with ``{rng}`` (``num_samples`` of them) when omitted.
    options: the family's options (:attr:`~mixlogit.families.StrengthFamily.options`).

Returns:
    ``log P`` with the broadcast shape of the inputs, ``<= 0``.
"""

_GAMMA_DOC = """``log E[sigmoid(beta d)]`` for ``beta ~ Gamma(shape, rate)`` (rate = 1 / scale).

Exact to the working precision for all ``d`` (including ``d = 0`` and the far negative
tail, where the value is returned in log space far below float underflow), by a
CRVZ-accelerated alternating series with ``num_terms`` terms (default: 24 in float64,
12 in float32).

Args:
    d: utility difference, any shape.
    shape: Gamma shape ``k > 0``, broadcastable with ``d``.
    rate: Gamma rate ``> 0`` (mean ``shape / rate``), broadcastable with ``d``.
    num_terms: series length; the relative error is below ``2 / 5.83^num_terms``.

Returns:
    ``log P`` with the broadcast shape of the inputs, ``<= 0``.
"""

_LOGNORMAL_DOC = """``log E[sigmoid(beta d)]`` for ``beta = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.

Args:
    d, loc, scale: broadcastable {array}s or numbers (``scale >= 0``).
    method: ``"quadrature"`` (Gauss-Hermite with ``num_points`` nodes, deterministic) or
        ``"mc"`` (MixDPO's reparameterised estimator, ``log mean_k sigmoid(beta_k d)``).
    num_samples: ``K`` for ``"mc"`` when ``noise`` is not given.
    noise: standard-normal draws of shape ``(K, *batch)`` or ``(K,)`` (shared across the
        batch); drawn with ``{rng}`` when omitted.
    {rng}: {rng_doc}.

Returns:
    ``log P`` of the broadcast batch shape.
"""

_POINT_MASS_DOC = (
    """``log sigmoid(beta d)``: the strength fixed at ``beta`` (plain DPO / plain logit)."""
)


def marginal_functions(front: FrontEnd) -> MarginalFunctions:
    """The public marginal functions of the backend ``front`` describes.

    Their random source is the keyword ``front.rng_keyword``, shown so in their signatures.
    """
    rng_keyword = front.rng_keyword

    def logit_marginal(family, d, params, *, noise=None, **options):
        rng = options.pop(rng_keyword, None)
        return front.log_marginal(
            family, d, params, noise=noise, rng=rng, check_values=True, **options
        )

    def gamma_logit_marginal(d, shape, rate, *, num_terms: int | None = None):
        params = {"shape": shape, "rate": rate}
        return front.log_marginal(GAMMA, d, params, num_terms=num_terms, check_values=True)

    def lognormal_logit_marginal(
        d,
        loc,
        scale,
        *,
        method: str = "quadrature",
        num_points: int = 16,
        num_samples: int = 16,
        noise=None,
        **rng,
    ):
        _only_rng_keyword("lognormal_logit_marginal", rng, rng_keyword)
        options = {"method": method, "num_points": num_points, "num_samples": num_samples}
        params = {"loc": loc, "scale": scale}
        rng = rng.get(rng_keyword)
        return front.log_marginal(
            LOGNORMAL, d, params, noise=noise, rng=rng, check_values=True, **options
        )

    def point_mass_logit_marginal(d, beta):
        return front.log_marginal(POINT_MASS, d, {"beta": beta}, check_values=True)

    array_word = front.array_type.rpartition(".")[2].lower()  # "tensor", "array"
    words = {"array": array_word, "rng": rng_keyword, "rng_doc": front.rng_doc}
    docs = (_LOGIT_MARGINAL_DOC, _GAMMA_DOC, _LOGNORMAL_DOC, _POINT_MASS_DOC)
    functions = (
        logit_marginal,
        gamma_logit_marginal,
        lognormal_logit_marginal,
        point_mass_logit_marginal,
    )
    for function, doc in zip(functions, docs, strict=True):
        function.__doc__ = doc.format(**words)
        function.__module__ = type(front).__module__
        function.__qualname__ = function.__name__
        function.__signature__ = _with_rng_keyword(function, front)
    return MarginalFunctions(*functions)


def _only_rng_keyword(name: str, given: Mapping[str, Any], rng_keyword: str) -> None:
    unexpected = sorted(set(given) - {rng_keyword})
    if unexpected:
        raise TypeError(f"{name}() got an unexpected keyword argument {unexpected[0]!r}")


def _with_rng_keyword(function: Callable, front: FrontEnd) -> inspect.Signature:
    """``function``'s signature with the random source shown as the keyword-only parameter
    ``front.rng_keyword`` after ``noise`` (it is read from ``**rng`` / ``**options``), and the
    backend's array types as annotations."""
    signature = inspect.signature(function)
    parameters = []
    for p in signature.parameters.values():
        if p.name == "noise":
            parameters.append(p.replace(annotation=f"{front.array_type} | None"))
            keyword = inspect.Parameter.KEYWORD_ONLY
            parameters.append(inspect.Parameter(front.rng_keyword, keyword, default=None))
        elif p.name != "rng":
            parameters.append(p)
    return signature.replace(parameters=parameters, return_annotation=front.array_type)
