"""The strength marginals, written once for every array backend.

Each function takes an ``ops`` object (:class:`mixlogit.torch._ops.TorchOps`,
:class:`mixlogit.jax._ops.JaxOps` or the NumPy ``NUMPY_OPS``, all built on
:class:`mixlogit._array_ops.NamespaceOps`) that supplies the primitives of :class:`ArrayOps`, so the
mathematics below is shared verbatim by the PyTorch and JAX front ends. Inputs are already
broadcast to a common shape and floating dtype by the front ends.

Notation: ``P(d) = E[sigmoid(beta * d)]`` for a random strength ``beta > 0``; every function
returns ``log P`` (or posterior moments of ``beta``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from mixlogit._series import (
    alternating_series_weights,
    log_abs_logistic_quadrature,
    standard_normal_quadrature,
)

Array = Any


class ArrayOps(Protocol):
    """The primitives a backend provides to the shared kernels."""

    def const(self, value: np.ndarray | float, like: Array) -> Array: ...
    def exp(self, x: Array) -> Array: ...
    def expm1(self, x: Array) -> Array: ...
    def log(self, x: Array) -> Array: ...
    def log1p(self, x: Array) -> Array: ...
    def log_sigmoid(self, x: Array) -> Array: ...
    def where(self, cond: Array, x: Array, y: Array | float) -> Array: ...
    def softplus(self, x: Array) -> Array: ...
    def minimum(self, x: Array, bound: float) -> Array: ...
    def clip(self, x: Array, lower: float, upper: float) -> Array: ...
    def isinf(self, x: Array) -> Array: ...
    def sum(self, x: Array, axis: int) -> Array: ...
    def logsumexp(self, x: Array, axis: int) -> Array: ...
    def amax(self, x: Array, axis: int) -> Array: ...
    def sigmoid(self, x: Array) -> Array: ...
    def tanh(self, x: Array) -> Array: ...
    def concatenate(self, xs, axis: int = 0) -> Array: ...
    def elementwise(self, fn: Callable[..., Array], inputs: tuple[Array, ...]) -> Array:
        """``fn(*inputs)`` for an elementwise ``fn``; torch evaluates it over cache-sized
        chunks, differentiated by its autograd as usual."""
        ...

    def fori_loop(self, num_iterations: int, body, carry):
        """``carry = body(carry)`` repeated ``num_iterations`` times (a compiled loop in JAX)."""
        ...

    def finfo_max(self, like: Array) -> float: ...
    def float_bits(self, like: Array) -> int: ...
    def sqrt(self, x: Array) -> Array: ...
    def stop_gradient(self, x: Array) -> Array: ...
    def erfc(self, x: Array) -> Array: ...
    def log_ndtr(self, x: Array) -> Array: ...
    def sinh(self, x: Array) -> Array: ...
    def cosh(self, x: Array) -> Array: ...
    def asinh(self, x: Array) -> Array: ...
    def lgamma(self, x: Array) -> Array: ...
    def matmul(self, x: Array, y: Array) -> Array: ...
    def segment_sum(self, x: Array, segment_ids: Array, num_segments: int) -> Array:
        """Sums of the rows of ``x`` (axis 0) by ``segment_ids``: shape ``(num_segments, ...)``."""
        ...

    def segment_max(self, x: Array, segment_ids: Array, num_segments: int) -> Array:
        """Maxima of the entries of a 1-D ``x`` by ``segment_ids`` (``-inf`` for an empty one)."""
        ...

    def with_gradients(
        self,
        value: Callable[..., Array],
        value_and_grads: Callable[..., tuple[Array, tuple[Array, ...]]],
        inputs: tuple[Array, ...],
    ) -> Array:
        """``value(*inputs)``, differentiated by the backend as if its gradients in ``inputs``
        were those that ``value_and_grads(*inputs) -> (value, (grad per input, ...))`` returns
        (each grad of the value's shape; the inputs broadcast to it). The gradients must be
        differentiable code of the backend, so that second derivatives are theirs."""
        ...


def _gamma_series(
    ops: ArrayOps, d: Array, shape: Array, rate: Array, num_terms: int, gradients: bool
) -> tuple[Array, tuple[Array, Array, Array] | None]:
    """``log P`` of :func:`gamma_log_marginal` and, with ``gradients``, its three derivatives.

    The derivatives reuse the value's series terms ``t_j = w_j (1 + j u)^-k`` (``T = sum t_j``,
    ``L_j = log(1 + j u)``), differentiating ``log S = -k log(1 + a) + log T``:

        d log S / dk = -log(1 + a) - sum_j t_j L_j / T
        d log S / da = -k / (1 + a) * (1 + sum_j t_j j / (1 + j u) / T / (1 + a))

    (``du/da = 1 / (1 + a)^2``), then the chain rule through ``a = |d| / rate`` and, for
    ``d > 0``, ``log P = log(1 - S)``: ``d log P = -S / (1 - S) d log S``. Every array has the
    broadcast shape of ``(d, shape, rate)``; the gradient expressions are differentiable code
    themselves (second derivatives by autodiff stay correct) and see only finite inputs.
    """
    weights = alternating_series_weights(num_terms)
    positive = d > 0
    # Both signs share S(|d|/rate). Writing |d| as -d on d <= 0 (rather than abs) keeps the
    # derivative at d = 0 equal to its two-sided limit, shape / (2 rate) for log P.
    # d = +-inf is the exact limit S = 0, set below; a finite stand-in for |d| keeps inf out of
    # d(|d| / rate) / d rate, whose product with the zero gradient there would be NaN.
    a = ops.where(positive, d, -d)
    a = ops.where(ops.isinf(d), 1.0, a) / rate
    infinite = ops.isinf(d) | ops.isinf(a)
    a_max = ops.finfo_max(d) / (4.0 * num_terms)
    clipped = a > a_max  # a no longer moves with d or rate there
    a = ops.minimum(a, a_max)
    u = a / (1.0 + a)
    # One term at a time on arrays of the batch's shape: a (batch, num_terms) array of terms
    # makes every operation a pass over num_terms times the batch in memory, four times
    # slower on CPU; an unrolled loop is one fused kernel under XLA. t_0 = w_0 (L_0 = 0).
    series = u * 0.0 + float(weights[0])
    weighted_log_ratio = u * 0.0  # sum_j t_j L_j
    tilted_sum = u * 0.0  # sum_j t_j j / (1 + j u)
    minus_shape = -shape
    for j in range(1, num_terms):
        log_ratio = ops.log1p(j * u)
        term = float(weights[j]) * ops.exp(minus_shape * log_ratio)
        series = series + term
        if gradients:
            weighted_log_ratio = weighted_log_ratio + term * log_ratio
            tilted_sum = tilted_sum + term / (u + 1.0 / j)  # j / (1 + j u) = 1 / (u + 1/j)
    log_s = -shape * ops.log1p(a) + ops.log(series)
    log_s = ops.where(infinite, -math.inf, log_s)
    small_side = ops.exp(log_s)
    log_p = ops.where(positive, ops.log1p(-small_side), log_s)
    if not gradients:
        return log_p, None

    dlogs_dshape = -ops.log1p(a) - weighted_log_ratio / series
    tilted = tilted_sum / series
    dlogs_da = -shape / (1.0 + a) * (1.0 + tilted / (1.0 + a))
    # S <= 1/2 for d > 0, so 1 - S never cancels; S = 0 at d = +inf gives 0, not NaN.
    dlogp_dlogs = ops.where(positive, -small_side / (1.0 - small_side), 1.0)
    dlogp_da = ops.where(infinite | clipped, 0.0, dlogp_dlogs * dlogs_da)
    dlogp_dd = ops.where(positive, dlogp_da, -dlogp_da) / rate
    dlogp_drate = -dlogp_da * a / rate
    dlogp_dshape = ops.where(infinite, 0.0, dlogp_dlogs * dlogs_dshape)
    return log_p, (dlogp_dd, dlogp_dshape, dlogp_drate)


def gamma_log_marginal(ops: ArrayOps, d: Array, shape: Array, rate: Array, num_terms: int) -> Array:
    """``log E[sigmoid(beta d)]`` for ``beta ~ Gamma(shape, rate)``, exact to the working precision.

    With ``a = |d| / rate`` and the Gamma Laplace transform ``E[exp(-t beta)] = (1 + t/rate)^-shape``,

        S(a) = E[sigmoid(-beta |d|)] = sum_{n>=1} (-1)^(n+1) (1 + n a)^(-shape)
             = (1 + a)^(-shape) * sum_{j>=0} (-1)^j r_j,   r_j = (1 + j a / (1 + a))^(-shape),

    (a Lerch transcendent). ``r_j`` are moments of a positive measure on (0, 1), so the
    CRVZ-accelerated partial sum has relative error below ``2 / 5.83^num_terms`` uniformly in
    ``(d, shape, rate)``: no division by ``d``, nothing special at ``d = 0``. The prefactor is
    kept in log space so the negative tail stays accurate far below the float underflow, and
    ``P = 1 - S`` uses ``log1p`` for ``d > 0``.

    Inputs broadcast together; the result has their broadcast shape. This is the value alone,
    differentiated by the backend's autodiff through the series (stored and replayed);
    :func:`gamma_log_marginal_fused` gives the same value with the one-pass gradients of
    :func:`gamma_log_marginal_and_grads`.
    """
    return _gamma_series(ops, d, shape, rate, num_terms, gradients=False)[0]


def gamma_log_marginal_and_grads(
    ops: ArrayOps, d: Array, shape: Array, rate: Array, num_terms: int
) -> tuple[Array, Array, Array, Array]:
    """``(log P, dlogP/dd, dlogP/dshape, dlogP/drate)`` of :func:`gamma_log_marginal` in one
    pass over the series terms, each of the broadcast shape of the inputs.

    ``log P`` is the same computation as :func:`gamma_log_marginal` (identical values). The
    derivatives are those of that computation: ``shape / (2 rate)`` for ``d`` at ``d = 0``
    (two-sided), 0 at ``d = +-inf`` and 0 for ``d`` and ``rate`` where ``|d| / rate`` is
    clipped to keep the series finite.
    """
    log_p, grads = _gamma_series(ops, d, shape, rate, num_terms, gradients=True)
    assert grads is not None
    return (log_p, *grads)


def gamma_log_marginal_fused(
    ops: ArrayOps, d: Array, shape: Array, rate: Array, num_terms: int
) -> Array:
    """:func:`gamma_log_marginal` whose derivatives are the precomputed ones of
    :func:`gamma_log_marginal_and_grads` (``ops.with_gradients``): reverse mode costs one pass
    over the series instead of autodiff's stored and replayed one (half the time in torch;
    XLA's autodiff of the unrolled loop is about as fast as the fused pass). Without
    differentiation the value alone is computed. Inputs broadcast together (shape of the
    result)."""

    def value(d, shape, rate):
        return gamma_log_marginal(ops, d, shape, rate, num_terms)

    def value_and_grads(d, shape, rate):
        log_p, *grads = gamma_log_marginal_and_grads(ops, d, shape, rate, num_terms)
        return log_p, tuple(grads)

    return ops.with_gradients(value, value_and_grads, (d, shape, rate))


def _lognormal_tail_centre(ops: ArrayOps, log_c: Array, scale: Array, iterations: int = 12):
    """Mode and curvature scale of ``h(e) = -e^2/2 - softplus(exp(log_c + scale e))``.

    ``exp(h)`` is the integrand of ``S = E[sigmoid(-beta |d|)]`` (``log_c = loc + log|d|``).
    ``h'' <= -1``, so the mode is unique; it lies in ``[min(knee, 0) - 1 - scale, 0]`` where
    ``knee = -log_c / scale`` (there ``h' > 0`` at the left end and ``h' <= 0`` at 0). Newton
    steps safeguarded by bisection inside that bracket, a fixed number of times so the
    kernel stays traceable.
    """

    def derivatives(e):
        log_z = log_c + scale * e
        z = ops.exp(log_z)
        sig = ops.exp(ops.log_sigmoid(z))
        # z^2 sigma(z) sigma(-z) in log space: z may be huge on the first iterations.
        curv = ops.exp(2.0 * log_z + ops.log_sigmoid(z) + ops.log_sigmoid(-z))
        g1 = -e - scale * z * sig
        g2 = -1.0 - scale * scale * (z * sig + curv)
        return g1, g2

    knee = -log_c / scale
    lo = ops.where(knee < 0.0, knee, 0.0) - 1.0 - scale
    hi = lo * 0.0
    # Start from the asymptotic root of e = -scale z (sigmoid(z) ~ 1): e = knee + log(-e/scale)/scale.
    guess = knee + ops.log(ops.clip(-knee / scale, 1.0, math.inf)) / scale
    e = ops.clip(guess, -math.inf, 0.0)
    e = ops.where(e > lo, e, (lo + hi) / 2.0)
    for _ in range(iterations):
        g1, g2 = derivatives(e)
        lo = ops.where(g1 > 0.0, e, lo)
        hi = ops.where(g1 > 0.0, hi, e)
        step = e - g1 / g2
        inside = (step >= lo) & (step <= hi)  # a converged step may land on an end
        e = ops.where(inside, step, (lo + hi) / 2.0)
    _, g2 = derivatives(e)
    return e, 1.0 / ops.sqrt(-g2)


def _log_ndtr(ops: ArrayOps, z: Array) -> Array:
    """``log Phi(z)`` to full relative precision on both sides. Library ``log_ndtr`` is exact
    on the left but loses digits on the right in some versions, where ``log Phi(z) ~ -Phi(-z)``;
    there ``log1p(-erfc(z / sqrt 2) / 2)`` is used."""
    negative = z < 0
    z_neg = ops.where(negative, z, -1.0)  # each branch sees only its own half-line
    z_pos = ops.where(negative, 1.0, z)
    right = ops.log1p(-ops.erfc(z_pos / math.sqrt(2.0)) / 2.0)
    return ops.where(negative, ops.log_ndtr(z_neg), right)


#: Regimes of the LogNormal quadrature (see lognormal_log_marginal_quadrature).
LOGISTIC_DOMAIN_MIN_SCALE = 0.65
BULK_KNEE = (-3.0, 4.0)
TAIL_KNEE_WIDE = -10.0


def lognormal_log_marginal_quadrature(
    ops: ArrayOps, d: Array, loc: Array, scale: Array, num_points: int
) -> Array:
    """``log E[sigmoid(beta d)]``, ``beta = exp(loc + scale eps)``, by Gaussian quadrature.

    As for the Gamma, work with the small side ``S = E[sigmoid(-beta |d|)] <= 1/2`` and set
    ``P = S`` (``d <= 0``) or ``1 - S`` (``d > 0``, via ``log1p``). The sigmoid switches off
    at the knee ``eps* = -(loc + log|d|) / scale``; three regimes keep ``num_points`` nodes
    accurate (absolute error of ``P`` below 1e-6 at 16 nodes for ``scale <= 2``):

    * knee in the bulk of N(0, 1) and ``scale > 0.65``: the integrand in ``eps`` is a step of
      width ``1 / scale`` (poles ``pi / (2 scale)`` off the real axis) that Gauss-Hermite
      resolves slowly. Swap the roles of the two random variables instead:
      ``S = E_T[Phi((T - loc - log|d|) / scale)] / 2`` with ``T = log|L|``, ``L`` logistic,
      and a Gauss rule for the density of ``T`` (the integrand is now entire);
    * knee far in the left tail (``S`` tiny): adaptive Gauss-Hermite centred at the
      integrand's mode and scaled by its curvature (Liu & Pierce 1994), so ``log S`` keeps
      its relative accuracy deep into the tail;
    * otherwise (small scale, or the knee beyond the right of the bulk, ``d`` near 0): plain
      Gauss-Hermite in ``eps``, which is exact at ``d = 0`` with the right derivative, and at
      ``scale = 0`` (the point mass ``beta = exp(loc)``, with its gradients; d/d scale = 0).

    ``beta |d|`` is formed in logs, so ``|d|`` up to ``finfo.max`` and any ``loc`` keep their
    accuracy; ``d = +-inf`` gives the exact limits with zero gradients.

    Regime choices, centres and widths carry no gradient: the rule's value does not depend
    on them beyond its own error.
    """
    nodes, log_weights = standard_normal_quadrature(num_points)
    x = ops.const(nodes, like=d)
    log_w = ops.const(log_weights, like=d)
    positive = d > 0
    infinite = ops.isinf(d)
    # |d| with the two-sided derivative at 0, as for the Gamma. d = +-inf is the exact limit
    # (S = 0), set at the end; a finite stand-in keeps every node finite so gradients there are 0.
    a = ops.where(positive, d, -d)
    a = ops.where(infinite, 1.0, a)
    # log|d| exactly (-inf at d = 0): the regimes and the tail centre need loc + log|d| itself,
    # also for |d| beyond sqrt(finfo.max) or with loc so large that loc + log|d| of a clipped
    # |d| would pick the tail rule at d = 0.
    nonzero = a > 0
    log_a = ops.log(ops.where(nonzero, a, 1.0))
    log_c = ops.stop_gradient(ops.where(nonzero, loc + log_a, -math.inf))
    plain_scale = ops.stop_gradient(scale)
    knee = -log_c / plain_scale
    wide = plain_scale > LOGISTIC_DOMAIN_MIN_SCALE
    # scale = 0 is the point mass beta = exp(loc): the plain rule is exact there (its integrand
    # is constant in eps, and its derivatives in loc and scale are the point mass's).
    in_tail = (knee < ops.where(wide, TAIL_KNEE_WIDE, BULK_KNEE[0])) & (plain_scale > 0.0)
    use_logistic = wide & ~in_tail & (knee < BULK_KNEE[1])

    centre, width = _lognormal_tail_centre(ops, log_c, plain_scale)
    centre = ops.stop_gradient(ops.where(in_tail, centre, 0.0))
    width = ops.stop_gradient(ops.where(in_tail, width, 1.0))
    eps = centre[..., None] + width[..., None] * x
    log_beta = loc[..., None] + scale[..., None] * eps
    # z = beta |d| as exp(log beta + log|d|): beta and the product can overflow or underflow
    # (|d| beyond sqrt(finfo.max), large |loc|) where z itself does not. At d = 0 it is the
    # product, which keeps the derivative in d (E[beta] / 2 for log P); beta is capped there
    # (in logs, so its gradient stays finite) so that an overflowing beta gives z = 0, the
    # exact value, rather than inf * 0. Each branch sees safe inputs where it is not used, so
    # its gradient there is 0 and never inf * 0.
    nonzero_ = nonzero[..., None]
    log_max = math.log(ops.finfo_max(d)) - 1.0
    z_logs = ops.exp(ops.where(nonzero_, log_beta + log_a[..., None], 0.0))
    z_zero = ops.exp(ops.minimum(log_beta, log_max)) * ops.where(nonzero, 0.0, a)[..., None]
    z = ops.where(nonzero_, z_logs, z_zero)
    log_integrand = ops.log_sigmoid(-z) - 0.5 * eps * eps
    # Importance weights of the shifted rule against N(0, 1): phi(eps) / phi_{centre,width}(eps).
    log_terms = log_w + log_integrand + 0.5 * x * x + ops.log(width)[..., None]
    log_s_eps = ops.logsumexp(log_terms, axis=-1)

    # Three times the nodes here: this rule serves the scales near 1, hardest for both domains.
    t_nodes, t_log_weights = log_abs_logistic_quadrature(3 * num_points)
    t = ops.const(t_nodes, like=d)
    # Where this rule is not used its inputs are replaced by harmless ones: its value is
    # discarded, but a NaN or inf in its gradient would survive the multiplication by the
    # zero the ``where`` below passes back (at small scale, (t - loc - log|d|) / scale is
    # huge and the derivative of log Phi there overflows).
    log_a_t = ops.where(use_logistic, log_a, 0.0)
    loc_t = ops.where(use_logistic, loc, 0.0)
    scale_t = ops.where(use_logistic, scale, 1.0)
    z_t = (t - (loc_t + log_a_t)[..., None]) / scale_t[..., None]
    log_s_t = ops.logsumexp(ops.const(t_log_weights, like=d) + _log_ndtr(ops, z_t), axis=-1)
    log_s_t = log_s_t - math.log(2.0)

    log_s = ops.where(use_logistic, log_s_t, log_s_eps)
    log_s = ops.where(infinite, -math.inf, log_s)
    return ops.where(positive, ops.log1p(-ops.exp(log_s)), log_s)


def lognormal_log_marginal_mc(
    ops: ArrayOps, d: Array, loc: Array, scale: Array, noise: Array
) -> Array:
    """Reparameterised Monte Carlo estimate ``log (1/K) sum_k sigmoid(beta_k d)``.

    ``noise`` holds standard-normal draws with the sample axis first, shape ``(K, *batch)``
    (or ``(K,)`` to share draws across the batch); ``beta_k = exp(loc + scale noise_k)``.
    Unbiased for ``P(d)`` (not for its log), as in MixDPO.
    """
    num_samples = noise.shape[0]
    beta = ops.exp(loc + scale * noise)
    return ops.logsumexp(ops.log_sigmoid(beta * d), axis=0) - math.log(num_samples)


def point_mass_log_marginal(ops: ArrayOps, d: Array, beta: Array) -> Array:
    """``log sigmoid(beta d)``: a strength fixed at ``beta`` (plain DPO / plain logit)."""
    return ops.log_sigmoid(beta * d)


def gamma_conditional_moments(
    ops: ArrayOps, signed_d: Array, shape: Array, rate: Array, num_terms: int
) -> tuple[Array, Array]:
    """Mean and variance of ``beta`` given the choice, for ``beta ~ Gamma(shape, rate)``.

    ``signed_d`` is ``d`` for an observed choice ``y = 1`` and ``-d`` for ``y = 0``. Size-biasing
    a Gamma raises its shape: ``E[beta^m f(beta)] = (shape)_m / rate^m E_{shape+m}[f]``, so the
    posterior moments are ratios of the exact marginal at shapes ``k, k+1, k+2``: no sampling
    and no quadrature error.
    """
    log_p0 = gamma_log_marginal_fused(ops, signed_d, shape, rate, num_terms)
    log_p1 = gamma_log_marginal_fused(ops, signed_d, shape + 1.0, rate, num_terms)
    log_p2 = gamma_log_marginal_fused(ops, signed_d, shape + 2.0, rate, num_terms)
    mean = shape / rate * ops.exp(log_p1 - log_p0)
    second = shape * (shape + 1.0) / (rate * rate) * ops.exp(log_p2 - log_p0)
    return mean, _variance(ops, second, mean)


def _variance(ops: ArrayOps, second: Array, mean: Array) -> Array:
    """``E[beta^2] - mean^2`` clamped at 0. Both terms carry the relative error of the
    log-marginals (a few eps), so when the posterior CV is below about sqrt(eps) (e.g. float32
    and a LogNormal scale 1e-3, a Gamma shape 1e6) the difference is rounding noise of
    either sign; 0 is then the nearest admissible variance. (The form
    ``mean^2 expm1(log E[beta^2] - 2 log mean)`` was tried: no more accurate, as the error is
    in the log-marginals themselves, and it still needs the clamp.)"""
    return ops.clip(second - mean * mean, 0.0, math.inf)


def lognormal_conditional_moments(
    ops: ArrayOps, signed_d: Array, loc: Array, scale: Array, num_points: int
) -> tuple[Array, Array]:
    """Mean and variance of ``beta`` given the choice, ``beta ~ LogNormal(loc, scale)``.

    Exponential tilting of the normal: ``E[beta^m f(beta)] = exp(m loc + m^2 scale^2 / 2)
    E_{loc + m scale^2}[f]``, so the moments are ratios of Gauss-Hermite marginals.
    """
    s2 = scale * scale
    log_p0 = lognormal_log_marginal_quadrature(ops, signed_d, loc, scale, num_points)
    log_p1 = lognormal_log_marginal_quadrature(ops, signed_d, loc + s2, scale, num_points)
    log_p2 = lognormal_log_marginal_quadrature(ops, signed_d, loc + 2.0 * s2, scale, num_points)
    mean = ops.exp(loc + 0.5 * s2 + log_p1 - log_p0)
    second = ops.exp(2.0 * loc + 2.0 * s2 + log_p2 - log_p0)
    return mean, _variance(ops, second, mean)
