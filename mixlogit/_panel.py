"""Panel strength marginals, written once for every array backend (see :mod:`mixlogit._kernels`).

A panel gives every group ``g`` (an annotator, a respondent) one strength ``beta_g`` shared by
all its choices (Revelt and Train 1998). Observation ``i`` carries a signed utility difference
``d_i`` and a group id ``g(i)``; the group log-likelihood is

    L_g = log E_beta[ prod_{i in g} sigmoid(beta d_i) ]  =  log int exp(h_g(u)) du,
    h_g(u) = log p(u) + sum_{i in g} log sigmoid(e^u d_i),        u = log beta,

with ``p`` the density of ``log beta`` (:class:`LogStrengthPrior`). The kernels below compute
``L_g`` and the posterior of ``beta_g`` by a mapped trapezoid rule, all groups at once:

1. **Centre.** Safeguarded Newton steps on the segment sums of ``h'`` and ``h''`` find a mode
   ``c`` inside a bracket valid for any data (a term's slope ``z sigmoid(-z)``, ``z = e^u d``,
   is at most ``W(1/e)`` for ``d > 0`` and at least ``z`` for ``d < 0``).
2. **Extent.** ``h = C + l``, with ``C`` (prior plus the ``d <= 0`` terms) concave and ``l``
   (the ``d > 0`` terms) increasing and ``<= 0``. Hence ``h(u) <= C(u) + l(c)`` left of ``c``
   and ``h(u) <= C(u)`` right of it: the concave superlevel sets of ``C`` bound every point
   where the integrand exceeds ``exp(-EXTENT_DROP)`` of its value at ``c``, whatever the
   number of modes.
3. **Second mode.** ``h`` may have two (choices with tiny margins, mostly right: the strength
   is near the prior's, every choice a coin flip, or large, in the prior's tail). A coarse
   scout rule over the extent finds the highest other local maximum; Newton steps refine it.
4. **Rule.** A map ``u(s)`` (:class:`_Map`) with uniform steps over a bulk spanning the
   mode(s) and, where the poles of ``sigmoid(e^u d)`` at ``Im u = pi/2`` are near (their
   trapezoid error is ``exp(-pi^2 / step)``), every point within ``exp(-BULK_DROP)`` of the
   peak; steps of at most ``0.6`` posterior widths and at most ``0.3``, narrowed smoothly
   ("dips") around modes and steep sides finer than that, and growing geometrically beyond
   (the Gamma's ``e^{shape u}`` left tail reaches hundreds of units for shape 0.1). The
   ``num_nodes`` nodes are equally spaced in ``s`` across the extent. The trapezoid rule
   converges exponentially for an analytic integrand, and the rule on every other node gives
   an error estimate for free.
5. **Near zero.** When every choice of a group has ``d > 0`` and ``L_g > -log 2``,
   ``L_g = log1p(-S)`` with ``S = E[1 - prod sigmoid]`` on its own rule (see
   :func:`_complement_rule`), so ``L_g`` keeps its relative precision down to ``-1e-300``.

Centres, extents and maps carry no gradient: the rule's value does not depend on them beyond
its error, so autograd through the nodes' integrand gives the derivatives of ``L_g``.

Posterior moments use size-biasing, ``E[beta^m prod sigmoid] = int exp(h + m u) du``, each
tilt on its own rule; quantiles use Sinc indefinite integration of the tilt-0 nodes (Stenger
1993, sec. 4.5), inverted by cubic Hermite steps, outside autodiff.
"""

from __future__ import annotations

import functools
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from mixlogit.families import NUMPY_OPS, get_family

Array = Any
Params = Mapping[str, Array]

#: ``max_z z sigmoid(-z) = W(1/e)`` (at ``z sigmoid(z) = 1``): the largest slope in ``u`` of one
#: ``log sigmoid(e^u d)`` term, which bounds the mode.
MAX_TERM_SLOPE = float(special.lambertw(math.exp(-1.0)).real)
#: Nodes cover every ``u`` where ``h`` is within this of its value at the centre.
EXTENT_DROP = 40.0
#: Bulk step: at most this many posterior widths, and at most POLE_STEP in ``u``.
WIDTH_STEP = 0.6
POLE_STEP = 0.3
#: The bulk spans BULK_WIDTHS curvature widths each side of a mode; beyond it steps grow by
#: ``exp(TAIL_GROWTH)`` per node: ``TAIL_GROWTH < pi / 10`` keeps the map analytic on a strip
#: of half-width 5 in ``s``, so the unit-step rule's own error stays below ``exp(-2 pi 5)``.
BULK_WIDTHS = 2.0
TAIL_GROWTH = 0.25
#: Safeguarded Newton iterations: the first mode, the second, each end of the extent, the
#: map's inverse.
CENTRE_ITERATIONS = 24
PEAK_ITERATIONS = 10
EXTENT_ITERATIONS = 12
MAP_ITERATIONS = 12
#: Nodes of the coarse rule that looks for a second mode and steep sides. A dip in the step
#: (a feature finer than the bulk's step) has edges DIP_EDGE nodes wide (analytic on a strip
#: of half-width pi DIP_EDGE / 2 in s) and keeps DIP_MARGIN bulk steps from the bulk's ends.
SCOUT_NODES = 32
DIP_EDGE = 4.0
DIP_MARGIN = 8.0
#: Where ``e^u |d| >= POLE_REACH`` (the poles of ``sigmoid(e^u d)`` are near the real line)
#: the bulk reaches out until the integrand is down by ``exp(-BULK_DROP)``; the steepest node
#: above that level gets a dip.
POLE_REACH = 0.3
BULK_DROP = 18.0
#: Default number of quadrature nodes per group and Sinc sub-steps per node for quantiles.
DEFAULT_NUM_NODES = 128
QUANTILE_SUBSTEPS = 8


class LogStrengthPrior(NamedTuple):
    """The density of ``u = log beta`` of a random-strength family, as pure functions.

    Attributes:
        log_density: ``f(ops, u, params) -> log p(u)`` (``u`` and params broadcast).
        derivatives: ``f(ops, u, params) -> (d/du, d^2/du^2)`` of ``log p(u)``; the second is
            negative (``log p`` is concave in ``u``).
        mode_bracket: ``f(ops, params, tilt, positive_count, negative_sum) -> (lo, hi)`` with
            ``h' >= 0`` at ``lo`` and ``h' <= 0`` at ``hi`` for the tilted log-integrand
            ``h(u) + tilt u`` of a group with ``positive_count`` choices of ``d > 0`` and
            ``negative_sum = sum |d|`` over its choices of ``d < 0``.
        prior_mode: ``f(ops, params, tilt) -> argmax_u (log p(u) + tilt u)``.
    """

    log_density: Callable[..., Array]
    derivatives: Callable[..., tuple[Array, Array]]
    mode_bracket: Callable[..., tuple[Array, Array]]
    prior_mode: Callable[..., Array]


def _softplus(ops, x):
    return -ops.log_sigmoid(-x)


# --- Gamma(shape, rate): log p(u) = shape log rate - lgamma(shape) + shape u - rate e^u ------


def _gamma_log_density(ops, u, p):
    k, r = p["shape"], p["rate"]
    return k * ops.log(r) - ops.lgamma(k) + k * u - r * ops.exp(u)


def _gamma_derivatives(ops, u, p):
    r_eu = p["rate"] * ops.exp(u)
    return p["shape"] - r_eu, -r_eu


def _gamma_mode_bracket(ops, p, tilt, positive_count, negative_sum):
    # h' >= k + m - e^u (rate + sum|d-|) and h' <= k + m + W(1/e) n+ - rate e^u.
    k, r = p["shape"] + tilt, p["rate"]
    lo = ops.log(k) - ops.log(r + negative_sum)
    hi = ops.log(k + MAX_TERM_SLOPE * positive_count) - ops.log(r)
    return lo, hi


def _gamma_prior_mode(ops, p, tilt):
    return ops.log(p["shape"] + tilt) - ops.log(p["rate"])


GAMMA_LOG_STRENGTH = LogStrengthPrior(
    _gamma_log_density, _gamma_derivatives, _gamma_mode_bracket, _gamma_prior_mode
)


# --- LogNormal(loc, scale): u ~ N(loc, scale^2) ----------------------------------------------


def _lognormal_log_density(ops, u, p):
    z = (u - p["loc"]) / p["scale"]
    return -0.5 * z * z - ops.log(p["scale"]) - 0.5 * math.log(2.0 * math.pi)


def _lognormal_derivatives(ops, u, p):
    s2 = p["scale"] * p["scale"]
    return -(u - p["loc"]) / s2, -1.0 / s2 + 0.0 * u


def _lognormal_mode_bracket(ops, p, tilt, positive_count, negative_sum):
    # With v = centre - u, h' >= v / s^2 - e^{centre - v} sum|d-|, which is >= 0 once
    # v e^v >= s^2 sum|d-| e^centre, e.g. at v = log1p(s^2 sum|d-| e^centre) >= W(.).
    s2 = p["scale"] * p["scale"]
    centre = p["loc"] + tilt * s2
    big = ops.finfo_max(centre)
    log_a = ops.log(ops.clip(s2 * negative_sum, 1.0 / big, big)) + centre
    lo = centre - ops.where(negative_sum > 0, _softplus(ops, log_a), 0.0)
    hi = centre + s2 * MAX_TERM_SLOPE * positive_count
    return lo, hi


def _lognormal_prior_mode(ops, p, tilt):
    return p["loc"] + tilt * p["scale"] * p["scale"]


LOGNORMAL_LOG_STRENGTH = LogStrengthPrior(
    _lognormal_log_density, _lognormal_derivatives, _lognormal_mode_bracket, _lognormal_prior_mode
)


# --- the kernels ---------------------------------------------------------------------------


class PanelPosterior(NamedTuple):
    """Per-group posterior of the strength ``beta_g`` given the group's choices.

    Attributes:
        mean: ``E[beta_g | choices]``, shape ``(G,)``, units of ``beta`` (``1 / d``).
        variance: ``Var[beta_g | choices]``, shape ``(G,)``.
        quantiles: posterior quantiles of ``beta_g`` at the requested probabilities, shape
            ``(G, len(probs))`` (no gradient).
        log_marginal: ``L_g = log E[prod_{i in g} sigmoid(beta d_i)]``, shape ``(G,)``.
    """

    mean: Array
    variance: Array
    quantiles: Array
    log_marginal: Array


def _u_limit(ops, like) -> float:
    """``|u|`` bound keeping ``e^u`` and sums of ``e^u d`` finite (354 in float64, 44 in float32)."""
    return 0.5 * math.log(ops.finfo_max(like))


def _slopes(ops, z):
    """First and second ``u``-derivatives of ``log sigmoid(z)``, ``z = e^u d``:
    ``z sigmoid(-z)`` and ``z sigmoid(-z) (1 - z sigmoid(z))`` (finite for any finite ``z``)."""
    sig = ops.sigmoid(z)
    first = z * (1.0 - sig)
    return first, first * (1.0 - z * sig)


def _bracketed_newton(ops, fn, lo, hi, x, iterations):
    """Root of ``f`` in ``[lo, hi]`` with ``f(lo) >= 0 >= f(hi)``, by Newton steps that fall
    back to bisection whenever a step would leave the bracket, ``f' >= 0``, or the step is not
    half the one before last (Newton crawls by ~1 per step on ``e^u`` terms far from the
    root). A fixed number of iterations keeps the kernel traceable. Returns the point and the
    final bracket."""

    def step(carry):
        x, lo, hi, last, before = carry
        f, df = fn(x)
        right = f > 0
        lo = ops.where(right, x, lo)
        hi = ops.where(right, hi, x)
        descending = df < 0
        move = f / ops.where(descending, df, -1.0)
        newton = x - move
        # A converged step may land on an end of the bracket.
        take = descending & (newton >= lo) & (newton <= hi) & (2.0 * abs(move) <= abs(before))
        taken = ops.where(take, move, x - 0.5 * (lo + hi))
        return x - taken, lo, hi, taken, last

    width = hi - lo + 0.0 * x
    carry = (x, lo + 0.0 * x, hi + 0.0 * x, width, 2.0 * width)
    x, lo, hi, _, _ = ops.fori_loop(iterations, step, carry)
    return x, lo, hi


class _Panel(NamedTuple):
    """Observations with their group ids; gradient-free copies for the rule's construction
    (``concave``: 1 for the ``d <= 0`` choices, whose terms are concave in ``u``, 0 for the
    increasing ``d > 0`` ones); per-group summaries (G,)."""

    d: Array
    group: Array
    num_groups: int
    plain_d: Array
    concave: Array
    abs_max: Array
    count: Array
    positive_count: Array
    negative_sum: Array
    limit: float


def _panel(ops, d, group, num_groups) -> _Panel:
    plain = ops.stop_gradient(d)
    ones = plain * 0.0 + 1.0
    count = ops.segment_sum(ones, group, num_groups)
    return _Panel(
        d=d,
        group=group,
        num_groups=num_groups,
        plain_d=plain,
        concave=ops.where(plain <= 0, ones, 0.0),
        abs_max=ops.where(
            count > 0, ops.segment_max(ops.where(plain > 0, plain, -plain), group, num_groups), 0.0
        ),
        count=count,
        positive_count=ops.segment_sum(ops.where(plain > 0, ones, 0.0), group, num_groups),
        negative_sum=ops.segment_sum(ops.where(plain < 0, -plain, 0.0), group, num_groups),
        limit=_u_limit(ops, d),
    )


def _margins_at(ops, panel: _Panel, u):
    """``z = e^u d`` of every choice at its group's point ``u`` (G,), without gradient; clipped
    to ``sqrt(max float)`` so that products of slopes stay finite on early Newton iterates."""
    big = math.sqrt(ops.finfo_max(panel.plain_d))
    return ops.clip(ops.exp(u[panel.group]) * panel.plain_d, -big, big)


def _by_group(ops, panel: _Panel, x):
    return ops.segment_sum(x, panel.group, panel.num_groups)


def _extent(ops, concave, centre, left_target, right_target, limit: float):
    """``[u_lo, u_hi]``: the superlevel set ``{C(u) >= target}`` of a concave bound ``C`` of
    the log-integrand (``concave(u) -> (C, C')``), with its own target on each side of the
    centre. Bracketed Newton steps from the centre; the outer end of each final bracket is
    kept, so the extent errs on the wide side."""

    def left(u):
        value, slope = concave(u)
        return left_target - value, -slope

    def right(u):
        value, slope = concave(u)
        return value - right_target, slope

    floor = centre * 0.0 - limit
    ceiling = centre * 0.0 + limit
    start = ops.where(centre - 1.0 > floor, centre - 1.0, 0.5 * (floor + centre))
    _, u_lo, _ = _bracketed_newton(ops, left, floor, centre, start, EXTENT_ITERATIONS)
    start = ops.where(centre + 1.0 < ceiling, centre + 1.0, 0.5 * (ceiling + centre))
    _, _, u_hi = _bracketed_newton(ops, right, centre, ceiling, start, EXTENT_ITERATIONS)
    return u_lo, u_hi


class _Dip(NamedTuple):
    """A narrowing of the map's step around ``s = centre`` by ``depth``, over about ``half``
    nodes each side (see :class:`_Map`)."""

    centre: Array
    depth: Array
    half: Array


class _Map(NamedTuple):
    """``u(s) = u_bulk + step (s - e^{-k s} / k + e^{k (s - n)} / k) - dips``, ``k = TAIL_GROWTH``,
    ``n = bulk_nodes``: ``u = u_bulk + step s`` inside the bulk ``[u_bulk, u_bulk + n step]``,
    steps growing by ``e^k`` per node beyond it, and narrowed by each :class:`_Dip` (a mode
    narrower than the bulk's step):

        du/ds = step (1 + e^{-k s} + e^{k (s - n)}) - sum_dips depth D(s - centre),
        D(x) = (tanh((x + W) / t) - tanh((x - W) / t)) / 2 in [0, 1),  W = half, t = DIP_EDGE,

    analytic, and positive when the dips are apart and shallower than ``step``. Each dip's
    integral (log-cosh differences) is odd about its centre and at most ``depth W``.
    """

    u_bulk: Array
    step: Array
    bulk_nodes: Array
    dips: tuple[_Dip, ...]


def _log_cosh(ops, x):
    return _softplus(ops, 2.0 * x) - x - math.log(2.0)


def _map_at(ops, m: _Map, s):
    """``u(s)`` and ``du/ds`` for ``s`` of shape (G,) or (G, K)."""
    extra = s.ndim - m.u_bulk.ndim

    def cast(x):
        return x.reshape(x.shape + (1,) * extra)

    u0, a, n = cast(m.u_bulk), cast(m.step), cast(m.bulk_nodes)
    k, t = TAIL_GROWTH, DIP_EDGE
    left, right = ops.exp(-k * s), ops.exp(k * (s - n))
    u = u0 + a * (s + (right - left) / k)
    du = a * (1.0 + left + right)
    for dip in m.dips:
        centre, depth, half = cast(dip.centre), cast(dip.depth), cast(dip.half)
        x = s - centre
        u = u - depth * 0.5 * t * (_log_cosh(ops, (x + half) / t) - _log_cosh(ops, (x - half) / t))
        du = du - depth * 0.5 * (ops.tanh((x + half) / t) - ops.tanh((x - half) / t))
    return u, du


def _map_inverse(ops, m: _Map, y, below: bool):
    """``s`` with ``u(s) = y``, rounded outwards (``below``: towards ``-inf``) so the nodes
    cover ``y``: bracketed Newton between ``u(0)`` or ``u(n)`` and explicit bounds (each of
    the undipped map's terms alone reaches ``y`` shifted by the dips' largest shift)."""
    a, k = m.step, TAIL_GROWTH
    shift = 0.0 * a
    for dip in m.dips:
        shift = shift + dip.depth * dip.half
    slowest = a  # the smallest step anywhere, at a dip's centre
    for dip in m.dips:
        slowest = ops.where(a - dip.depth < slowest, a - dip.depth, slowest)
    # For s <= 0, u(s) <= u_bulk + step (1 / k + s - e^{-k s} / k) + shift; for s >= 0,
    # u(s) >= u_bulk + step (s - 1 / k) - shift and >= u_bulk + step (e^{k (s - n)} - 1) / k - shift.
    if below:
        gap = ops.where(m.u_bulk - y + a / k + shift > 0, m.u_bulk - y + a / k + shift, 0.0)
        ratio = ops.where(k * gap / a > 1.0, k * gap / a, 1.0)
        lo = -ops.where(gap / a < ops.log(ratio) / k, gap / a, ops.log(ratio) / k)
        lo = ops.where(k * gap / a > 1.0, lo, -gap / a)
        hi = m.bulk_nodes + shift / slowest
    else:
        gap = ops.where(y - m.u_bulk + shift > 0, y - m.u_bulk + shift, 0.0)
        lo = -shift / slowest
        linear = gap / a + 1.0 / k
        exponential = m.bulk_nodes + ops.log1p(k * gap / a) / k
        hi = ops.where(linear < exponential, linear, exponential)

    def residual(s):
        u, du = _map_at(ops, m, s)
        return y - u, -du

    _, lo, hi = _bracketed_newton(ops, residual, lo, hi, 0.5 * (lo + hi), MAP_ITERATIONS)
    return lo if below else hi


class _Rule(NamedTuple):
    """Nodes ``u`` (G, K) and log-weights ``log(ds du/ds)`` at ``s = s_first + j s_step``."""

    u: Array
    log_weights: Array
    map: _Map
    s_first: Array
    s_step: Array


def _width(ops, curvature, span):
    """Curvature width ``1 / sqrt(-h'')`` at a mode, at most ``span`` (a flat or convex mode)."""
    return 1.0 / ops.sqrt(ops.where(curvature < 0, -curvature, 0.0) + 1.0 / (span * span))


def _rule(ops, bulk_lo, bulk_hi, step, u_lo, u_hi, num_nodes, dips=()) -> _Rule:
    """``num_nodes`` nodes equally spaced in ``s`` from ``u_lo`` to ``u_hi``, on the map with
    bulk ``[bulk_lo, bulk_hi]``, bulk step ``step`` and a dip for each ``(u, step there,
    half-width in u)`` in ``dips`` (a mode narrower than the bulk's step; depth 0: none)."""
    converted = []
    for centre, fine, half in dips:
        fine = ops.where(fine < step, fine, step)
        # A plateau over the mode, then the edge.
        converted.append(_Dip((centre - bulk_lo) / step, step - fine, half / fine + DIP_EDGE))
    m = _Map(bulk_lo, step, (bulk_hi - bulk_lo) / step, tuple(converted))
    s_first = _map_inverse(ops, m, u_lo, below=True)
    s_step = (_map_inverse(ops, m, u_hi, below=False) - s_first) / (num_nodes - 1)
    index = ops.const(np.arange(num_nodes, dtype=np.float64), like=bulk_lo)
    u, du = _map_at(ops, m, s_first[:, None] + s_step[:, None] * index)
    return _Rule(u, ops.log(s_step)[:, None] + ops.log(du), m, s_first, s_step)


def _bulk_step(ops, width):
    return ops.where(WIDTH_STEP * width < POLE_STEP, WIDTH_STEP * width, POLE_STEP)


def _node_log_likelihood(ops, panel: _Panel, u, d=None):
    """``sum_{i in g} log sigmoid(e^u d_i)`` at nodes ``u`` (G, K), differentiable in ``d``
    (``panel.d`` unless given)."""
    d = panel.d if d is None else d
    z = ops.exp(u[panel.group]) * d[:, None]
    return ops.segment_sum(ops.log_sigmoid(z), panel.group, panel.num_groups)


def _pick(ops, mask, x):
    """Mean of ``x`` over the ``True`` entries of each row of ``mask`` (0 where none)."""
    weight = ops.where(mask, 1.0, 0.0)
    count = ops.sum(weight, axis=-1)
    return ops.sum(weight * x, axis=-1) / ops.where(count > 0, count, 1.0)


class _Feature(NamedTuple):
    """A part of the integrand that wants steps of ``step`` over ``centre +- half`` (in ``u``);
    ``keep`` False: none."""

    centre: Array
    half: Array
    step: Array
    keep: Array


def _dips(ops, features, coarse):
    """``(centre, step, half)`` dips (:func:`_rule`) for the features finer than ``coarse``.

    Two dips whose reach overlaps and whose depths add up to the bulk step (``du/ds`` could
    turn negative) merge into one over both, at the finer step; a feature as coarse as the
    bulk gets depth 0.
    """
    dips = [
        (f.centre, ops.where(f.keep & (f.step < coarse), f.step, coarse), f.half) for f in features
    ]
    for i in range(len(dips)):
        for j in range(i + 1, len(dips)):
            (ci, si, hi), (cj, sj, hj) = dips[i], dips[j]
            reach = hi / si + hj / sj + 4.0 * DIP_EDGE  # in nodes of the bulk step, at least
            clash = (abs(ci - cj) / coarse < reach) & ((coarse - si) + (coarse - sj) >= coarse)
            lo = ops.where(ci - hi < cj - hj, ci - hi, cj - hj)
            up = ops.where(ci + hi > cj + hj, ci + hi, cj + hj)
            dips[i] = (
                ops.where(clash, 0.5 * (lo + up), ci),
                ops.where(clash & (sj < si), sj, si),
                ops.where(clash, 0.5 * (up - lo), hi),
            )
            dips[j] = (cj, ops.where(clash, coarse, sj), hj)
    return tuple(dips)


def _tilted_rule(ops, prior: LogStrengthPrior, panel: _Panel, params, tilt, num_nodes):
    """Rule and log-terms for ``int exp(h(u) + tilt u) du`` (the moment ``E[beta^tilt ...]``);
    ``tilt`` a float or one per group (G,).

    ``h`` may have two modes (a group whose choices split between a small and a large
    strength). After the first mode, a coarse scout rule over the whole extent looks for the
    highest other local maximum of ``h`` (a narrow one may sit on the first mode's shoulder);
    Newton steps refine it, and the final rule's bulk spans both modes at the finer of their
    two steps.
    """
    plain = {k: ops.stop_gradient(v) for k, v in params.items()}
    limit = panel.limit
    per_node_tilt = tilt[:, None] if hasattr(tilt, "ndim") else tilt  # a float or (G,)
    lo, hi = prior.mode_bracket(ops, plain, tilt, panel.positive_count, panel.negative_sum)
    lo, hi = ops.clip(lo, -limit, limit), ops.clip(hi, -limit, limit)
    start = ops.clip(prior.prior_mode(ops, plain, tilt), -limit, limit)
    start = ops.where((start > lo) & (start < hi), start, 0.5 * (lo + hi))

    def log_integrand(u):
        value = ops.log_sigmoid(_margins_at(ops, panel, u))
        return prior.log_density(ops, u, plain) + tilt * u + _by_group(ops, panel, value)

    def slope(u):
        first, second = _slopes(ops, _margins_at(ops, panel, u))
        p1, p2 = prior.derivatives(ops, u, plain)
        return p1 + tilt + _by_group(ops, panel, first), p2 + _by_group(ops, panel, second)

    def concave(u):
        z = _margins_at(ops, panel, u)
        value = _by_group(ops, panel, ops.log_sigmoid(z) * panel.concave)
        first = _by_group(ops, panel, _slopes(ops, z)[0] * panel.concave)
        p1, _ = prior.derivatives(ops, u, plain)
        return prior.log_density(ops, u, plain) + tilt * u + value, p1 + tilt + first

    centre, _, _ = _bracketed_newton(ops, slope, lo, hi, start, CENTRE_ITERATIONS)
    _, curvature = slope(centre)
    # h = C + l: l (the d > 0 terms) is increasing and <= 0, so h(u) <= C(u) + l(centre)
    # left of the centre and h(u) <= C(u) right of it.
    terms = ops.log_sigmoid(_margins_at(ops, panel, centre)) * (1.0 - panel.concave)
    increasing_at_centre = _by_group(ops, panel, terms)
    concave_at_centre, _ = concave(centre)
    u_lo, u_hi = _extent(
        ops,
        concave,
        centre,
        concave_at_centre - EXTENT_DROP,
        concave_at_centre + increasing_at_centre - EXTENT_DROP,
        limit,
    )
    span = 0.5 * (u_hi - u_lo)
    width = _width(ops, curvature, span)
    half = BULK_WIDTHS * width

    scout = _rule(
        ops, centre - half, centre + half, _bulk_step(ops, width), u_lo, u_hi, SCOUT_NODES
    )
    per_node = {k: v[:, None] for k, v in plain.items()}
    big = math.sqrt(ops.finfo_max(panel.plain_d))
    z = ops.clip(ops.exp(scout.u[panel.group]) * panel.plain_d[:, None], -big, big)
    h = (
        prior.log_density(ops, scout.u, per_node)
        + per_node_tilt * scout.u
        + _by_group(ops, panel, ops.log_sigmoid(z))
    )
    curvature_at = prior.derivatives(ops, scout.u, per_node)[1] + _by_group(
        ops, panel, _slopes(ops, z)[1]
    )
    inner = h[:, 1:-1]
    peak = (inner >= h[:, :-2]) & (inner >= h[:, 2:])
    # Not the first mode's own sample peak (whose neighbours bracket it).
    brackets_centre = (scout.u[:, :-2] <= centre[:, None]) & (scout.u[:, 2:] >= centre[:, None])
    peak = peak & ~brackets_centre
    best = ops.amax(ops.where(peak, inner, -math.inf), axis=-1)
    peak = peak & (inner >= best[:, None])
    h_centre = log_integrand(centre)
    found = best > h_centre - EXTENT_DROP
    other, _, _ = _bracketed_newton(
        ops,
        slope,
        _pick(ops, peak, scout.u[:, :-2]),
        _pick(ops, peak, scout.u[:, 2:]),
        _pick(ops, peak, scout.u[:, 1:-1]),
        PEAK_ITERATIONS,
    )
    other = ops.where(found, other, centre)
    _, other_curvature = slope(other)
    other_width = ops.where(found, _width(ops, other_curvature, span), width)
    # Drop the first mode if the other outweighs it beyond the rule's reach.
    h_other = log_integrand(other)
    first_kept = h_centre > h_other - EXTENT_DROP
    other_half = BULK_WIDTHS * other_width
    big = 2.0 * panel.limit
    modes_lo = ops.where(found, other - other_half, big)
    modes_hi = ops.where(found, other + other_half, -big)
    modes_lo = ops.where(first_kept & (centre - half < modes_lo), centre - half, modes_lo)
    modes_hi = ops.where(first_kept & (centre + half > modes_hi), centre + half, modes_hi)
    # Where sigmoid(e^u d)'s poles are near (e^u |d| >= POLE_REACH) the steps must stay below
    # POLE_STEP until the integrand is down by BULK_DROP, also on a slowly falling shoulder
    # that the modes' widths do not see: the scout's nodes above that level, plus one node.
    h_top = ops.where(found & (h_other > h_centre), h_other, h_centre)
    shoulder = (h >= h_top[:, None] - BULK_DROP) & (
        ops.exp(scout.u) * panel.abs_max[:, None] >= POLE_REACH
    )
    shoulder_lo = -ops.amax(ops.where(shoulder[:, 1:], -scout.u[:, :-1], -big), axis=-1)
    shoulder_hi = ops.amax(ops.where(shoulder[:, :-1], scout.u[:, 1:], -big), axis=-1)
    wide = (shoulder_lo < modes_lo) | (shoulder_hi > modes_hi)
    bulk_lo = ops.where(shoulder_lo < modes_lo, shoulder_lo, modes_lo)
    bulk_hi = ops.where(shoulder_hi > modes_hi, shoulder_hi, modes_hi)
    # The bulk's step: POLE_STEP over a shoulder, else the wider kept mode's. Finer features
    # get dips to their own steps: each kept mode, and the steepest significant scout node (a
    # steep side falls off faster than its mode's width says).
    step, other_step = _bulk_step(ops, width), _bulk_step(ops, other_width)
    widest = ops.where(found & (other_step > step), other_step, step)
    widest = ops.where(first_kept, widest, other_step)
    coarse = ops.where(wide, POLE_STEP + 0.0 * step, widest)
    significant = (h >= h_top[:, None] - BULK_DROP) & (curvature_at < 0)
    local = 1.0 / ops.sqrt(ops.where(significant, -curvature_at, 1.0 / (span * span)[:, None]))
    narrowest = -ops.amax(-local, axis=-1)
    steepest = _pick(ops, local <= narrowest[:, None], scout.u)
    features = [
        _Feature(centre, half, step, first_kept),
        _Feature(other, other_half, other_step, found),
        _Feature(steepest, BULK_WIDTHS * narrowest, _bulk_step(ops, narrowest), narrowest < width),
    ]
    dips = _dips(ops, features, coarse)
    margin = DIP_MARGIN * coarse
    for f in features:
        bulk_lo = ops.where(
            f.keep & (f.centre - f.half - margin < bulk_lo), f.centre - f.half - margin, bulk_lo
        )
        bulk_hi = ops.where(
            f.keep & (f.centre + f.half + margin > bulk_hi), f.centre + f.half + margin, bulk_hi
        )
    rule = _rule(ops, bulk_lo, bulk_hi, coarse, u_lo, u_hi, num_nodes, dips)

    per_node = {k: v[:, None] for k, v in params.items()}
    log_terms = (
        prior.log_density(ops, rule.u, per_node)
        + per_node_tilt * rule.u
        + _node_log_likelihood(ops, panel, rule.u)
        + rule.log_weights
    )
    return rule, log_terms


def _log_one_minus_exp(ops, log_likelihood, tiny):
    """``log(1 - exp(l))`` for ``l <= 0``, with ``l`` kept below ``-tiny`` so that neither the
    value nor its gradient is infinite where ``l`` rounds to 0."""
    safe = ops.where(log_likelihood < -tiny, log_likelihood, -tiny)
    return ops.log(-ops.expm1(safe))


def _complement_rule(ops, prior: LogStrengthPrior, panel: _Panel, params, num_nodes):
    """Log-terms of a rule for ``S = E[1 - prod sigmoid(beta d_i)]``.

    For a group whose choices all have ``d > 0`` and ``L_g`` near 0, ``L_g = log1p(-S)`` keeps
    the relative precision that ``log`` of a sum close to 1 loses. The integrand is
    ``exp(log p(u) + log m(u))``, ``m = 1 - exp(l)``. With ``d_min`` the group's smallest ``d``,
    ``sigmoid(-e^u d_min) <= m <= n sigmoid(-e^u d_min)`` (one failure at least; the union
    bound), so the concave ``C(u) = log p(u) + log sigmoid(-e^u d_min)`` is the log-integrand
    to within ``log n``: its mode and curvature centre the rule (``m`` itself is a difference
    of numbers near 1 there), and its superlevel set bounds the extent.
    """
    plain = {k: ops.stop_gradient(v) for k, v in params.items()}
    limit = panel.limit
    tiny = 4.0 / ops.finfo_max(panel.plain_d)  # the smallest normal number (IEEE formats)
    d_min = -ops.segment_max(-panel.plain_d, panel.group, panel.num_groups)
    # Only groups of d > 0 choices use this rule (an empty group's minimum is +inf).
    d_min = ops.where((panel.count > 0) & (panel.positive_count == panel.count), d_min, 1.0)

    def bound(u):
        z = -ops.exp(u) * d_min
        first, second = _slopes(ops, z)
        p1, p2 = prior.derivatives(ops, u, plain)
        return prior.log_density(ops, u, plain) + ops.log_sigmoid(z), p1 + first, p2 + second

    # The bound is the log-integrand of one choice of margin -d_min.
    lo, hi = prior.mode_bracket(ops, plain, 0.0, 0.0 * d_min, d_min)
    lo, hi = ops.clip(lo, -limit, limit), ops.clip(hi, -limit, limit)
    centre, _, _ = _bracketed_newton(
        ops, lambda u: bound(u)[1:], lo, hi, 0.5 * (lo + hi), CENTRE_ITERATIONS
    )
    bound_at_centre, _, curvature = bound(centre)
    # The log-integrand is within [C, C + log n]: every point above its value at the centre
    # minus EXTENT_DROP has C above C(centre) - log n - EXTENT_DROP.
    target = bound_at_centre - ops.log(ops.where(panel.count > 0, panel.count, 1.0)) - EXTENT_DROP
    u_lo, u_hi = _extent(ops, lambda u: bound(u)[:2], centre, target, target, limit)
    half = BULK_WIDTHS * _width(ops, curvature, 0.5 * (u_hi - u_lo))
    step = _bulk_step(ops, half / BULK_WIDTHS)
    rule = _rule(ops, centre - half, centre + half, step, u_lo, u_hi, num_nodes)
    per_node = {k: v[:, None] for k, v in params.items()}
    log_m = _log_one_minus_exp(ops, _node_log_likelihood(ops, panel, rule.u), tiny)
    return prior.log_density(ops, rule.u, per_node) + log_m + rule.log_weights


def _log_marginal(ops, prior, panel: _Panel, params, num_nodes, log_terms):
    """``L_g`` and its error estimate from the tilt-0 rule's ``log_terms`` (G, K), through the
    complement ``S`` for groups near 0."""
    value = ops.logsumexp(log_terms, axis=-1)
    coarse = ops.logsumexp(log_terms[:, ::2], axis=-1) + math.log(2.0)
    complement = _complement_rule(ops, prior, panel, params, num_nodes)
    use = (panel.positive_count == panel.count) & (panel.count > 0) & (value > -math.log(2.0))
    log_s = ops.where(use, ops.logsumexp(complement, axis=-1), -1.0)
    log_s_coarse = ops.where(use, ops.logsumexp(complement[:, ::2], axis=-1) + math.log(2.0), -1.0)
    value = ops.where(use, ops.log1p(-ops.exp(log_s)), value)
    coarse = ops.where(use, ops.log1p(-ops.exp(log_s_coarse)), coarse)
    empty = panel.count == 0
    value = ops.where(empty, 0.0, value)
    error = ops.where(empty, 0.0, ops.stop_gradient(abs(value - coarse)))
    return value, error


def _replicated(ops, panel: _Panel, params, copies: int):
    """The panel and parameters repeated ``copies`` times as groups ``g + k G`` (to build the
    rules of several tilts in one pass)."""
    g = panel.num_groups

    def repeat(x):
        return ops.concatenate([x] * copies)

    group = ops.concatenate([panel.group + k * g for k in range(copies)])
    fields = {
        name: repeat(getattr(panel, name))
        for name in (
            "d",
            "plain_d",
            "concave",
            "abs_max",
            "count",
            "positive_count",
            "negative_sum",
        )
    }
    copy = panel._replace(group=group, num_groups=copies * g, **fields)
    return copy, {k: repeat(v) for k, v in params.items()}


def panel_log_marginal(
    ops,
    prior: LogStrengthPrior,
    d: Array,
    group: Array,
    params: Params,
    num_groups: int,
    num_nodes: int = DEFAULT_NUM_NODES,
):
    """``L_g = log E[prod_{i in g} sigmoid(beta d_i)]`` for a random strength, and an error
    estimate.

    Args:
        ops: backend primitives.
        prior: the family's :class:`LogStrengthPrior`.
        d: signed utility differences, shape ``(N,)``, floating.
        group: integer group ids in ``[0, num_groups)``, shape ``(N,)``.
        params: ``{name: array of shape (G,)}``.
        num_groups: ``G``.
        num_nodes: quadrature nodes per group (at least 3).

    Returns:
        ``(L, error)``, both of shape ``(G,)``: ``error = |L - L_half|`` with ``L_half`` the rule
        on every other node, an upper estimate of the error of ``L`` (whose own error is
        typically far smaller: the rule converges exponentially). Empty groups give 0.
    """
    panel = _panel(ops, d, group, num_groups)
    _, log_terms = _tilted_rule(ops, prior, panel, params, 0.0, num_nodes)
    return _log_marginal(ops, prior, panel, params, num_nodes, log_terms)


def point_mass_panel_log_marginal(ops, d, group, beta, num_groups):
    """``sum_{i in g} log sigmoid(beta_g d_i)``: one fixed strength per group; ``beta`` (G,)."""
    return ops.segment_sum(ops.log_sigmoid(beta[group] * d), group, num_groups)


@functools.lru_cache(maxsize=16)
def _sinc_matrices(num_nodes: int, substeps: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrices mapping node values ``f_j`` (unit step) to the Sinc interpolant's integral
    from ``-inf`` and to the interpolant itself at ``tau_i = i / substeps`` in ``[0, K - 1]``:
    ``F(tau) = sum_j f_j (1/2 + Si(pi (tau - j)) / pi)``, ``f(tau) = sum_j f_j sinc(tau - j)``.
    Shapes ``(K, M)``, to multiply from the right."""
    tau = np.arange((num_nodes - 1) * substeps + 1) / substeps
    offset = tau[None, :] - np.arange(num_nodes)[:, None]
    integral = 0.5 + special.sici(math.pi * offset)[0] / math.pi
    interpolant = np.sinc(offset)
    for m in (integral, interpolant):
        m.setflags(write=False)
    return integral, interpolant


def _quantiles(ops, rule: _Rule, log_terms, probs, substeps=QUANTILE_SUBSTEPS):
    """Quantiles of ``beta`` (G, P) from one rule's gradient-free log-terms: the posterior CDF
    in ``s`` by Sinc indefinite integration at ``substeps`` points per node, then Newton
    steps on the cubic Hermite interpolant between the two points that bracket each
    probability."""
    num_nodes = log_terms.shape[-1]
    integral, interpolant = _sinc_matrices(num_nodes, substeps)
    # Normalised node masses; per unit node index they are the density's samples.
    mass = ops.exp(log_terms - ops.logsumexp(log_terms, axis=-1)[:, None])
    cdf = ops.matmul(mass, ops.const(integral, like=mass))
    density = ops.matmul(mass, ops.const(interpolant, like=mass)) / substeps  # per sub-step
    num_points = cdf.shape[-1]
    position = ops.const(np.arange(num_points - 1, dtype=np.float64), like=mass)
    columns = ops.const(np.eye(len(probs)), like=mass)
    out = 0.0
    for column, p in enumerate(probs):
        below = ops.sum(ops.where(cdf[:, :-1] < p, 1.0, 0.0), axis=-1)
        index = ops.clip(below - 1.0, 0.0, num_points - 2.0)
        pick = ops.where(position == index[:, None], 1.0, 0.0)
        f0, f1 = ops.sum(pick * cdf[:, :-1], axis=-1), ops.sum(pick * cdf[:, 1:], axis=-1)
        g0, g1 = ops.sum(pick * density[:, :-1], axis=-1), ops.sum(pick * density[:, 1:], axis=-1)
        gap = f1 - f0
        theta = ops.clip((p - f0) / ops.where(gap > 0, gap, 1.0), 0.0, 1.0)
        for _ in range(4):
            t2, t3 = theta * theta, theta * theta * theta
            value = (
                (2.0 * t3 - 3.0 * t2 + 1.0) * f0
                + (t3 - 2.0 * t2 + theta) * g0
                + (3.0 * t2 - 2.0 * t3) * f1
                + (t3 - t2) * g1
            )
            slope = (
                (6.0 * t2 - 6.0 * theta) * (f0 - f1)
                + (3.0 * t2 - 4.0 * theta + 1.0) * g0
                + (3.0 * t2 - 2.0 * theta) * g1
            )
            theta = ops.clip(theta - (value - p) / ops.where(slope > 0, slope, 1.0), 0.0, 1.0)
        u, _ = _map_at(ops, rule.map, rule.s_first + rule.s_step * (index + theta) / substeps)
        out = out + ops.exp(u)[:, None] * columns[column]
    return out


def panel_posterior(
    ops,
    prior: LogStrengthPrior,
    d: Array,
    group: Array,
    params: Params,
    num_groups: int,
    prior_mean: Array,
    prior_variance: Array,
    probs=(0.05, 0.5, 0.95),
    num_nodes: int = DEFAULT_NUM_NODES,
) -> PanelPosterior:
    """Posterior mean, variance and quantiles of each group's ``beta_g`` (see module doc).

    ``mean = exp(L^(1) - L)`` and ``E[beta^2] = exp(L^(2) - L)``, with ``L^(m)`` the integral
    tilted by ``e^{m u}``, each on its own rule. Empty groups get ``prior_mean`` and
    ``prior_variance`` (G,) and the prior's quantiles (same rule). Quantiles carry no gradient.
    """
    panel = _panel(ops, d, group, num_groups)
    # The rules of the tilts 0, 1, 2 in one pass, as groups g, g + G, g + 2 G.
    copies, copied_params = _replicated(ops, panel, params, 3)
    tilts = ops.const(np.repeat([0.0, 1.0, 2.0], num_groups), like=panel.plain_d)
    rule, log_terms = _tilted_rule(ops, prior, copies, copied_params, tilts, num_nodes)
    g = num_groups
    log_norm = ops.logsumexp(log_terms[:g], axis=-1)
    log_z, _ = _log_marginal(ops, prior, panel, params, num_nodes, log_terms[:g])
    mean = ops.exp(ops.logsumexp(log_terms[g : 2 * g], axis=-1) - log_norm)
    second = ops.exp(ops.logsumexp(log_terms[2 * g :], axis=-1) - log_norm)
    first_rule = _Rule(
        rule.u[:g],
        rule.log_weights[:g],
        _Map(
            rule.map.u_bulk[:g],
            rule.map.step[:g],
            rule.map.bulk_nodes[:g],
            tuple(_Dip(*(x[:g] for x in dip)) for dip in rule.map.dips),
        ),
        rule.s_first[:g],
        rule.s_step[:g],
    )
    quantiles = _quantiles(ops, first_rule, ops.stop_gradient(log_terms[:g]), probs)
    empty = panel.count == 0
    return PanelPosterior(
        mean=ops.where(empty, prior_mean, mean),
        variance=ops.where(empty, prior_variance, second - mean * mean),
        quantiles=quantiles,
        log_marginal=log_z,
    )


# --- the front ends, written once for both backends -----------------------------------------

#: The density of ``log beta`` of each random family, by family name; ``None``: a point mass,
#: whose panel marginal is a plain sum.
LOG_STRENGTH_PRIORS: dict[str, LogStrengthPrior | None] = {
    "gamma": GAMMA_LOG_STRENGTH,
    "lognormal": LOGNORMAL_LOG_STRENGTH,
    "point_mass": None,
}


class PanelPlumbing(ABC):
    """What a backend supplies to the panel front ends (:func:`panel_functions`).

    Attributes:
        ops: the backend's kernel primitives.
        array_type: the array type as written in docstrings (``"torch.Tensor"``).
    """

    ops: Any
    array_type: str

    @abstractmethod
    def floats(self, *values) -> tuple[list[Array], Callable[[Array], Array]]:
        """``values`` as arrays of one floating working dtype, shapes unchanged, and the
        function casting a result to the output dtype (half precision works in float32)."""

    @abstractmethod
    def ids(self, group) -> Array:
        """``group`` as an integer array (raising ``TypeError`` for a non-integer dtype)."""

    @abstractmethod
    def concrete(self, x) -> np.ndarray | None:
        """``x``'s values as NumPy, or ``None`` when they are not known (traced under jit)."""


class PanelFunctions(NamedTuple):
    """The public panel functions of one backend."""

    panel_logit_marginal: Callable
    gamma_panel_logit_marginal: Callable
    lognormal_panel_logit_marginal: Callable
    point_mass_panel_logit_marginal: Callable
    panel_strength_posterior: Callable


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _prepare(plumbing: PanelPlumbing, d, group, family, params, num_groups):
    """Checked inputs: ``(family, d (N,), group (N,), {param: (G,)}, G, restore)``.

    Values are checked wherever they are known (not under ``jax.jit``); ``num_groups`` is then
    required, as a static integer.
    """
    family = get_family(family)
    if family.name not in LOG_STRENGTH_PRIORS:
        raise ValueError(
            f"no panel marginal for strength family {family.name!r}; "
            f"available: {sorted(LOG_STRENGTH_PRIORS)}"
        )
    unknown = sorted(set(params) - set(family.parameters))
    missing = [p for p in family.parameters if p not in params]
    if unknown or missing:
        raise ValueError(
            f"{family.name} strength takes parameters {list(family.parameters)}, "
            f"got {sorted(params)}"
        )
    (d_, *values), restore = plumbing.floats(d, *(params[p] for p in family.parameters))
    group_ = plumbing.ids(group)
    if d_.ndim != 1:
        raise ValueError(
            f"d must be 1-D (one utility difference per choice), got shape {tuple(d_.shape)}"
        )
    if group_.ndim != 1 or group_.shape[0] != d_.shape[0]:
        raise ValueError(
            f"group must be 1-D with one id per choice: d has shape {tuple(d_.shape)}, "
            f"group has shape {tuple(group_.shape)}"
        )
    ids = plumbing.concrete(group_)
    if num_groups is None:
        if ids is None:
            raise ValueError("num_groups must be given (a static integer) when group is traced")
        num_groups = int(ids.max()) + 1 if ids.size else 0
    num_groups = _check_count("num_groups", num_groups, 0)
    if ids is not None and ids.size:
        bad = (ids < 0) | (ids >= num_groups)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(
                f"group ids must lie in [0, num_groups={num_groups}); group[{i}] = {ids[i]}"
            )
    margins = plumbing.concrete(d_)
    if margins is not None and not np.isfinite(margins).all():
        i = _first_bad(~np.isfinite(margins))
        raise ValueError(f"d must be finite; d[{i}] = {margins[i]}")
    natural = {}
    # the parameters' values per group where known (not traced), for the spread check
    known_values: dict[str, np.ndarray | None] = {}
    for name, value in zip(family.parameters, values, strict=True):
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != num_groups):
            raise ValueError(
                f"{family.name} parameter {name} must be a scalar or have shape "
                f"(num_groups,) = ({num_groups},), got shape {tuple(value.shape)}"
            )
        known = plumbing.concrete(value)
        if known is not None:
            known = np.atleast_1d(known)
            bad = ~np.isfinite(known)
            if family.constraints[name] == "positive":
                bad |= ~(known > 0)
            if bad.any():
                i = _first_bad(bad)
                where = f"[{i}]" if value.ndim else ""
                word = "positive and finite" if family.constraints[name] == "positive" else "finite"
                raise ValueError(
                    f"{family.name} parameter {name}{where} must be {word}, got {known[i]}"
                )
            known = np.broadcast_to(known, (num_groups,))
        known_values[name] = known
        ones = plumbing.ops.const(np.ones(num_groups), like=d_)
        natural[name] = value * ones
    _check_spread(family, known_values)
    return family, d_, group_, natural, num_groups, restore


#: Smallest strength CV the rule is validated for: narrower priors (a Gamma shape above 1e4, a
#: LogNormal scale below ~0.01) fall between its nodes, and the error estimate grows to O(1).
MIN_STRENGTH_CV = 0.01


def _check_spread(family, concrete: Mapping[str, np.ndarray | None]) -> None:
    """Refuse parameters whose CV is below :data:`MIN_STRENGTH_CV`: the rule would return a
    wrong value there, not an error. A point mass has no spread and its own rule.

    ``concrete`` maps each parameter to its values per group, shape ``(G,)``, as NumPy (those
    :func:`_prepare` has already read for its positivity check, so no second host transfer),
    or to ``None`` when traced under ``jax.jit``.
    """
    if not family.parameters or family.name == "point_mass":
        return
    known = {k: v for k, v in concrete.items() if v is not None}
    if len(known) < len(concrete):
        return  # traced (under jit): nothing to check here

    cv = np.atleast_1d(family.cv(NUMPY_OPS, known))
    bad = ~(cv >= MIN_STRENGTH_CV)
    if bad.any():
        i = _first_bad(bad)
        values = ", ".join(f"{k}={np.atleast_1d(v)[i]:.6g}" for k, v in known.items())
        raise ValueError(
            f"{family.name} strength of group {i} ({values}) has CV {cv[i]:.3g} < "
            f"{MIN_STRENGTH_CV}: the panel rule is not accurate for so narrow a strength "
            "distribution; use strength family 'point_mass' for a common strength"
        )


_NODES_DOC = """num_nodes: quadrature nodes per group (>= 3; the default 128 gives a relative error
            near 1e-13 on unimodal posteriors; a posterior with a narrow mode on the
            shoulder of a broad one may need more, which ``return_error`` reveals)."""

_PANEL_DOC = """``L_g = log E_beta[prod_{{i in g}} sigmoid(beta d_i)]``: one strength per group.

The Revelt-Train panel likelihood of each group (an annotator) whose choices share one
strength ``beta ~ {family}``. Computed by a trapezoid rule in ``log beta``, centred on the
posterior's mode(s) (see :mod:`mixlogit._panel`): deterministic, stable for groups of hundreds
of choices (log space throughout), and differentiable in ``d`` and the parameters.

Args:
    d: signed utility differences ``(N,)`` ({array}), in units of ``1 / beta``.
    group: integer group ids ``(N,)`` in ``[0, num_groups)``, any sizes and order.
{params}    num_groups: ``G`` (default ``max(group) + 1``; required under ``jax.jit``, static).
    {nodes}
    return_error: also return an error estimate.

Returns:
    ``L`` of shape ``(G,)`` (0 for a group without choices), or ``(L, error)`` with ``error``
    ``(G,)`` the difference from the rule on every other node: an upper estimate of the error
    in ``L`` (the rule's own error is typically about the estimate squared).
"""

_PANEL_GENERIC_PARAMS = """    family: a strength family name (``"gamma"``, ``"lognormal"``, ``"point_mass"``) or
        :class:`~mixlogit.families.StrengthFamily`.
    params: ``{parameter: scalar or (G,)}`` in the family's natural parameters
        (per-group values for covariate-conditioned strengths).
"""

_POINT_MASS_PANEL_DOC = """``sum_{{i in g}} log sigmoid(beta_g d_i)``: a fixed strength per group.

Args:
    d: signed utility differences ``(N,)`` ({array}).
    group: integer group ids ``(N,)`` in ``[0, num_groups)``.
    beta: the strength, a scalar or ``(G,)``.
    num_groups: ``G`` (default ``max(group) + 1``).

Returns:
    ``(G,)``; 0 for a group without choices.
"""

_POSTERIOR_DOC = """The posterior of each group's strength ``beta_g`` given its choices.

The individual-level strength of a Revelt-Train panel: ``p(beta_g | d_g)`` is proportional to
``p(beta) prod_{{i in g}} sigmoid(beta d_i)``.

Args:
    d: signed utility differences ``(N,)`` ({array}).
    group: integer group ids ``(N,)`` in ``[0, num_groups)``.
{params}    num_groups: ``G`` (default ``max(group) + 1``; static under ``jax.jit``).
    probs: probabilities of the quantiles, each in ``(0, 1)``.
    {nodes}

Returns:
    :class:`~mixlogit._panel.PanelPosterior` ``(mean, variance, quantiles, log_marginal)``:
    ``(G,)``, ``(G,)``, ``(G, len(probs))`` in units of ``beta``, and ``L_g`` ``(G,)``. Mean,
    variance and ``L_g`` are differentiable; quantiles are not. A group without choices gets
    the prior's moments and quantiles and ``L_g = 0``.
"""


def _with_family(generic: Callable, family: str, options: Mapping[str, Any]) -> Callable:
    """``generic(d, group, family, params, **options)`` as a function of one family, whose
    natural parameters (``shape, rate``; ``loc, scale``; ``beta``) follow ``group`` as
    positional-or-keyword arguments and ``options`` (name: default) are keyword-only."""
    names = get_family(family).parameters
    kind = inspect.Parameter
    signature = inspect.Signature(
        [
            *(kind(n, kind.POSITIONAL_OR_KEYWORD) for n in ("d", "group", *names)),
            *(kind(n, kind.KEYWORD_ONLY, default=v) for n, v in options.items()),
        ]
    )

    def named(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs)
        arguments.apply_defaults()
        values = dict(arguments.arguments)
        params = {n: values.pop(n) for n in names}
        return generic(values.pop("d"), values.pop("group"), family, params, **values)

    named.__signature__ = signature  # type: ignore[attr-defined]
    named.__name__ = f"{family}_{generic.__name__}"
    return named


def panel_functions(plumbing: PanelPlumbing) -> PanelFunctions:
    """The public panel functions of the backend ``plumbing`` describes."""
    ops = plumbing.ops

    def panel_logit_marginal(
        d,
        group,
        family,
        params,
        *,
        num_groups=None,
        num_nodes=DEFAULT_NUM_NODES,
        return_error=False,
    ):
        family, d_, group_, natural, num_groups, restore = _prepare(
            plumbing, d, group, family, params, num_groups
        )
        prior = LOG_STRENGTH_PRIORS[family.name]
        if prior is None:
            value = point_mass_panel_log_marginal(ops, d_, group_, natural["beta"], num_groups)
            error = value * 0.0
        else:
            num_nodes = _check_count("num_nodes", num_nodes, 3)
            value, error = panel_log_marginal(
                ops, prior, d_, group_, natural, num_groups, num_nodes
            )
        return (restore(value), restore(error)) if return_error else restore(value)

    marginal_options = {
        "num_groups": None,
        "num_nodes": DEFAULT_NUM_NODES,
        "return_error": False,
    }
    gamma_panel_logit_marginal = _with_family(panel_logit_marginal, "gamma", marginal_options)
    lognormal_panel_logit_marginal = _with_family(
        panel_logit_marginal, "lognormal", marginal_options
    )
    point_mass_panel_logit_marginal = _with_family(
        panel_logit_marginal, "point_mass", {"num_groups": None}
    )

    def panel_strength_posterior(
        d,
        group,
        family,
        params,
        *,
        num_groups=None,
        probs=(0.05, 0.5, 0.95),
        num_nodes=DEFAULT_NUM_NODES,
    ):
        family, d_, group_, natural, num_groups, restore = _prepare(
            plumbing, d, group, family, params, num_groups
        )
        probs = tuple(float(p) for p in probs)
        bad = [p for p in probs if not 0.0 < p < 1.0]
        if bad:
            raise ValueError(f"probs must lie in (0, 1), got {bad[0]!r}")
        prior = LOG_STRENGTH_PRIORS[family.name]
        if prior is None:
            beta = natural["beta"]
            posterior = PanelPosterior(
                mean=beta,
                variance=beta * 0.0,
                quantiles=beta[:, None] * ops.const(np.ones(len(probs)), like=beta),
                log_marginal=point_mass_panel_log_marginal(ops, d_, group_, beta, num_groups),
            )
        else:
            num_nodes = _check_count("num_nodes", num_nodes, 3)
            posterior = panel_posterior(
                ops,
                prior,
                d_,
                group_,
                natural,
                num_groups,
                prior_mean=family.mean(ops, natural),
                prior_variance=family.variance(ops, natural),
                probs=probs,
                num_nodes=num_nodes,
            )
        return PanelPosterior(*(restore(x) for x in posterior))

    array = plumbing.array_type.rpartition(".")[2].lower()
    generic = _PANEL_GENERIC_PARAMS
    docs: dict[Callable, str] = {
        panel_logit_marginal: _PANEL_DOC.format(
            family="family", array=array, params=generic, nodes=_NODES_DOC
        ),
        gamma_panel_logit_marginal: _PANEL_DOC.format(
            family="Gamma(shape, rate)",
            array=array,
            nodes=_NODES_DOC,
            params="    shape, rate: Gamma shape and rate (> 0), scalars or ``(G,)``.\n",
        ),
        lognormal_panel_logit_marginal: _PANEL_DOC.format(
            family="LogNormal(loc, scale)",
            array=array,
            nodes=_NODES_DOC,
            params="    loc, scale: mean and sd (> 0) of ``log beta``, scalars or ``(G,)``.\n",
        ),
        point_mass_panel_logit_marginal: _POINT_MASS_PANEL_DOC.format(array=array),
        panel_strength_posterior: _POSTERIOR_DOC.format(
            array=array, params=generic, nodes=_NODES_DOC
        ),
    }
    for function, doc in docs.items():
        function.__doc__ = doc
        function.__module__ = type(plumbing).__module__
        function.__qualname__ = function.__name__
    return PanelFunctions(*docs)
