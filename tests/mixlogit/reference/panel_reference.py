"""Arbitrary-precision reference for the panel strength marginal (mpmath), independent of the
library's mode-centred trapezoid rule.

For a group of choices with signed margins ``d_i`` and one strength ``beta`` from the prior,

    L = log int exp(h(u)) du,   h(u) = log p(u) + sum_i log sigmoid(e^u d_i),   u = log beta,

with ``p`` the density of ``log beta`` (Gamma: ``k log r - lgamma(k) + k u - r e^u``; LogNormal:
``N(loc, scale^2)``). A float64 scan of ``h`` on a fine grid finds the region where
``h > max h - CUT`` (and the same for ``h + u`` and ``h + 2 u``, the integrands of the
posterior's first two moments) and splits it into pieces on which ``h`` varies by at most ``MAX_RISE``
and which are at most ``MAX_PIECE`` long wherever ``e^u |d|`` or ``e^u rate`` is not small
(the poles of ``sigmoid(e^u d)`` at ``Im u = pi / 2``, the growth of ``exp(-rate e^u)`` off
the real line); each piece gets ``GL_NODES``-point
Gauss-Legendre in mpmath at ``DPS`` digits. The same nodes give the posterior mean and variance
of ``beta`` and, by central differences of ``L`` in mpmath, the derivatives in each parameter
(the parameters) and, as a posterior expectation, along a random unit direction ``v`` in ``d``;
posterior quantiles come from root-finding the piecewise CDF. For the groups of up to 34
choices the script also recomputes ``L`` on pieces split in two with more nodes, and the
derivative along ``v`` by central differences; the largest relative differences are stored
in the JSON.

Run ``python tests/mixlogit/reference/panel_reference.py`` to regenerate
``tests/mixlogit/data/panel_reference.json`` (several minutes on 2 cores).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path

import mpmath as mp
import numpy as np

DPS = 30
SEED = 20260601
CUT = 60.0  # exp(-60) ~ 1e-26 of the peak
MAX_RISE = 2.0
MAX_PIECE = 1.0
GL_NODES = 20
FD_STEP = mp.mpf("1e-10")
PROBS = (0.05, 0.5, 0.95)
SIZES = (1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 256)
OUT = Path(__file__).resolve().parents[1] / "data" / "panel_reference.json"


# --- the groups ----------------------------------------------------------------------------


def _simulated(rng, family: str, size: int) -> dict:
    """A group from the model itself: parameters across the required ranges, ``beta`` from the
    prior, choices from ``sigmoid(beta |d|)``."""
    if family == "gamma":
        shape = 10 ** rng.uniform(-1, 2)
        mean = 10 ** rng.uniform(-2, 2)
        params = {"shape": shape, "rate": shape / mean}
        beta = rng.gamma(shape, 1.0 / params["rate"])
    else:
        params = {
            "loc": rng.uniform(math.log(0.01), math.log(100)),
            "scale": 10 ** rng.uniform(math.log10(0.05), math.log10(3)),
        }
        beta = math.exp(params["loc"] + params["scale"] * rng.normal())
    magnitude = 10 ** rng.uniform(-3, math.log10(50), size)
    magnitude[rng.uniform(size=size) < 0.1] = 50.0
    chosen = rng.uniform(size=size) < 1.0 / (1.0 + np.exp(-beta * magnitude))
    return {
        "kind": "simulated",
        "family": family,
        "params": params,
        "d": np.where(chosen, magnitude, -magnitude),
    }


def _edge_groups(rng) -> list[dict]:
    """Corners of the parameter ranges and extreme groups."""
    groups = []

    def add(kind, family, params, d):
        groups.append(
            {"kind": kind, "family": family, "params": params, "d": np.asarray(d, dtype=np.float64)}
        )

    mixed = rng.choice([-1.0, 1.0], 40) * 10 ** rng.uniform(-3, math.log10(50), 40)
    for shape in (0.1, 100.0):
        for mean in (0.01, 100.0):
            add("corner", "gamma", {"shape": shape, "rate": shape / mean}, mixed)
    for scale in (0.05, 3.0):
        for loc in (math.log(0.01), math.log(100)):
            add("corner", "lognormal", {"loc": loc, "scale": scale}, mixed)
    # L near 0: every choice certain (relative precision of a tiny L).
    add("near_zero", "gamma", {"shape": 100.0, "rate": 1.0}, [50.0])
    add("near_zero", "gamma", {"shape": 20.0, "rate": 0.5}, np.full(10, 30.0))
    add("near_zero", "lognormal", {"loc": math.log(50), "scale": 0.3}, [50.0, 20.0, 40.0])
    # The deep tail: many confident wrong choices.
    add("deep_tail", "gamma", {"shape": 2.0, "rate": 16.7}, np.full(256, -50.0))
    add("deep_tail", "lognormal", {"loc": -2.3, "scale": 0.6}, np.full(256, -50.0))
    # d = 0 and tiny margins, MixDPO's default priors.
    add("small_d", "gamma", {"shape": 2.0, "rate": 16.7}, [0.0, 1e-9, -1e-9, 0.0])
    add("small_d", "lognormal", {"loc": -2.3, "scale": 0.6}, [0.0, -1e-12, 1e-6])
    # All choices one way, a broad prior: a posterior far from the prior.
    add("one_sided", "lognormal", {"loc": math.log(0.01), "scale": 3.0}, np.full(256, 1.0))
    add("one_sided", "gamma", {"shape": 0.1, "rate": 10.0}, np.full(200, 0.5))
    # Tiny margins, mostly right: two modes (a coin-flipping strength near the prior's, or a
    # large one in its tail).
    tiny = np.concatenate([np.full(120, 0.003), np.full(40, -0.003)])
    add("bimodal", "lognormal", {"loc": -2.3, "scale": 2.5}, tiny)
    return groups


def build_groups() -> list[dict]:
    rng = np.random.default_rng(SEED)
    groups = []
    for family in ("gamma", "lognormal"):
        for _ in range(2):
            groups.extend(_simulated(rng, family, size) for size in SIZES)
    return groups + _edge_groups(rng)


# --- the integrals -------------------------------------------------------------------------


def _log_sigmoid(z):
    return -mp.log1p(mp.exp(-z)) if z > 0 else z - mp.log1p(mp.exp(z))


def _log_prior(family, params):
    """``u -> log p(u)`` with the constants computed once."""
    if family == "gamma":
        k, r = params["shape"], params["rate"]
        const = k * mp.log(r) - mp.loggamma(k)
        return lambda u: const + k * u - r * mp.exp(u)
    loc, scale = params["loc"], params["scale"]
    const = -mp.log(scale) - mp.log(2 * mp.pi) / 2
    return lambda u: const - ((u - loc) / scale) ** 2 / 2


def _scan_log_integrand(family, params, d, u, complement):
    """``h`` on a float64 grid (to place the pieces; the integrals are in mpmath), or with
    ``complement`` the log of ``p(u) (1 - prod sigmoid(e^u d_i))``."""
    h = np.zeros_like(u)
    values, counts = np.unique(d, return_counts=True)
    for value, count in zip(values, counts, strict=True):
        h -= count * np.logaddexp(0.0, -np.exp(u) * value)
    if complement:
        with np.errstate(divide="ignore"):
            h = np.log(-np.expm1(h))
    if family == "gamma":
        k, r = params["shape"], params["rate"]
        return h + k * math.log(r) - math.lgamma(k) + k * u - r * np.exp(u)
    z = (u - params["loc"]) / params["scale"]
    return h - z * z / 2


def pieces(family, params, d, scale=1.0, complement=False) -> list[tuple[float, float]]:
    """Consecutive ``[a, b]`` covering ``{h + m u > max (h + m u) - CUT}`` for the tilts
    ``m = 0, 1, 2`` of the posterior moments (only ``m = 0`` with ``complement``); ``scale < 1``
    refines them."""
    u = np.arange(-1000.0, 60.0, 0.005)
    h = _scan_log_integrand(family, params, np.asarray(d), u, complement)
    inside = np.zeros(len(u), dtype=bool)
    for tilt in (0,) if complement else (0, 1, 2):
        inside |= h + tilt * u > (h + tilt * u).max() - CUT
    keep = np.flatnonzero(inside)
    if keep[0] == 0 or keep[-1] == len(u) - 1:
        raise RuntimeError("the scan grid does not contain the integrand")
    u, h = u[keep[0] - 1 : keep[-1] + 2], h[keep[0] - 1 : keep[-1] + 2]
    # Pieces stay short where e^u times a margin (poles of sigmoid(e^u d) at Im u = pi/2) or
    # the Gamma rate (exp(-rate e^u) grows fast off the real line) is not small.
    scale_of_e_u = max(np.abs(d).max() if len(d) else 0.0, params.get("rate", 0.0), 1e-300)
    short = np.exp(u) * scale_of_e_u > 1e-3
    edges = [0]
    for i in range(1, len(u)):
        cap = MAX_PIECE if short[i] else 20.0
        if u[i] - u[edges[-1]] >= cap * scale or abs(h[i] - h[edges[-1]]) >= MAX_RISE * scale:
            edges.append(i)
    if edges[-1] != len(u) - 1:
        edges.append(len(u) - 1)
    return [(float(u[a]), float(u[b])) for a, b in itertools.pairwise(edges)]


@functools.lru_cache(maxsize=8)
def _gauss_legendre(n):
    """Nodes and weights on [-1, 1] at DPS digits."""
    mp.mp.dps = DPS
    nodes, weights = [], []
    for i in range(1, n + 1):
        x = mp.cos(mp.pi * (i - mp.mpf(1) / 4) / (n + mp.mpf(1) / 2))
        for _ in range(100):
            p0, p1 = mp.mpf(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1)
            step = p1 / dp
            x -= step
            if abs(step) < mp.mpf(10) ** (-DPS - 5):
                break
        nodes.append(x)
        weights.append(2 / ((1 - x * x) * dp * dp))
    return tuple(nodes), tuple(weights)


def _nodes(segments, n):
    """``(u_j, w_j)`` of ``n``-point Gauss-Legendre on every piece."""
    x, w = _gauss_legendre(n)
    out = []
    for a, b in segments:
        a, b = mp.mpf(a), mp.mpf(b)
        half, mid = (b - a) / 2, (a + b) / 2
        out.extend((mid + half * xi, half * wi) for xi, wi in zip(x, w, strict=True))
    return out


def _likelihood(u, d, v=None):
    """``sum_i log sigmoid(e^u d_i)`` and, given ``v``, its derivative along ``d + t v``:
    ``sum_i v_i e^u sigmoid(-e^u d_i)``."""
    beta = mp.exp(u)
    total, slope = [], []
    for i, di in enumerate(d):
        z = beta * di
        ls = _log_sigmoid(z)
        total.append(ls)
        if v is not None:
            slope.append(v[i] * beta * mp.exp(ls - z))  # sigmoid(-z) = sigmoid(z) e^{-z}
    return mp.fsum(total), (mp.fsum(slope) if v is not None else None)


def _log_sum(log_terms):
    top = max(log_terms)
    return top + mp.log(mp.fsum(mp.exp(t - top) for t in log_terms))


def group_reference(group, scale=1.0, n=GL_NODES, derivatives=True, finite_difference=False):
    """``L`` with posterior moments; with ``derivatives``, also the parameter derivatives
    (central differences), the derivative along ``group["direction"]`` in ``d`` (posterior
    expectation; with ``finite_difference`` also by central differences) and quantiles."""
    mp.mp.dps = DPS
    family = group["family"]
    params = {k: mp.mpf(v) for k, v in group["params"].items()}
    d = [mp.mpf(float(x)) for x in group["d"]]
    v = [mp.mpf(float(x)) for x in group["direction"]] if derivatives else None
    segments = pieces(family, group["params"], group["d"], scale)
    nodes = _nodes(segments, n)
    evaluated = [_likelihood(u, d, v) for u, _ in nodes]
    like = [e[0] for e in evaluated]
    log_w = [mp.log(w) for _, w in nodes]

    def log_terms(prior_params, likelihood, tilt=0):
        log_prior = _log_prior(family, prior_params)
        return [
            lw + log_prior(u) + ll + tilt * u
            for (u, _), lw, ll in zip(nodes, log_w, likelihood, strict=True)
        ]

    base = log_terms(params, like)
    value = _log_sum(base)
    out = {"log_marginal": value, "pieces": len(segments)}
    # When every choice has d > 0, L = log1p(-S), S = E[1 - prod sigmoid]: S has its own pieces
    # (in the prior's tail), and keeps the relative precision of an L near 0.
    near_zero = len(d) > 0 and all(di > 0 for di in d)
    if near_zero:
        s_nodes = _nodes(pieces(family, group["params"], group["d"], scale, complement=True), n)
        s_evaluated = [_likelihood(u, d, v) for u, _ in s_nodes]
        s_log_w = [
            mp.log(w) + mp.log(-mp.expm1(e[0]))
            for (_, w), e in zip(s_nodes, s_evaluated, strict=True)
        ]

        def log_complement(prior_params):
            log_prior = _log_prior(family, prior_params)
            return _log_sum(
                [lw + log_prior(u) for (u, _), lw in zip(s_nodes, s_log_w, strict=True)]
            )

        log_s = log_complement(params)
        near_zero = log_s < -mp.log(2)
    if near_zero:
        value = mp.log1p(-mp.exp(log_s))
        out["log_marginal"] = value
    mean = mp.exp(_log_sum(log_terms(params, like, 1)) - value)
    centred = [t + 2 * mp.log(abs(mp.exp(u) - mean)) for t, (u, _) in zip(base, nodes, strict=True)]
    out["mean"], out["variance"] = mean, mp.exp(_log_sum(centred) - value)
    if not derivatives:
        return out

    def log_marginal(prior_params):
        if near_zero:
            return mp.log1p(-mp.exp(log_complement(prior_params)))
        return _log_sum(log_terms(prior_params, like))

    grads = {}
    for name, theta in params.items():
        step = FD_STEP * max(1, abs(theta))
        up = log_marginal({**params, name: theta + step})
        down = log_marginal({**params, name: theta - step})
        grads[name] = (up - down) / (2 * step)
    out["grad_params"] = grads
    posterior = [mp.exp(t - value) for t in base]
    if near_zero:
        # dL = -dS / (1 - S), dS = -int p e^l dl: on S's nodes, where the tiny change lives.
        log_prior = _log_prior(family, params)
        out["grad_direction"] = mp.fsum(
            w * mp.exp(log_prior(u) + e[0] - value) * e[1]
            for (u, w), e in zip(s_nodes, s_evaluated, strict=True)
        )
    else:
        out["grad_direction"] = mp.fsum(w * e[1] for w, e in zip(posterior, evaluated, strict=True))
    if finite_difference:
        shifted = []
        for sign in (1, -1):
            d_shift = [di + sign * FD_STEP * vi for di, vi in zip(d, v, strict=True)]
            if near_zero:
                log_prior = _log_prior(family, params)
                terms = [
                    mp.log(w) + log_prior(u) + mp.log(-mp.expm1(_likelihood(u, d_shift)[0]))
                    for u, w in s_nodes
                ]
                shifted.append(mp.log1p(-mp.exp(_log_sum(terms))))
            else:
                terms = log_terms(params, [_likelihood(u, d_shift)[0] for u, _ in nodes])
                shifted.append(_log_sum(terms))
        out["grad_direction_fd"] = (shifted[0] - shifted[1]) / (2 * FD_STEP)
    out["quantiles"] = _quantiles(family, params, d, segments, posterior, value)
    return out


def _quantiles(family, params, d, segments, posterior, log_total):
    """``beta`` at each of PROBS: the piece where the CDF crosses, then Newton steps (inside a
    shrinking bracket, else bisection) on the CDF, Gauss-Legendre from the piece's start."""
    per_piece = [mp.fsum(posterior[i : i + GL_NODES]) for i in range(0, len(posterior), GL_NODES)]
    cumulative = [mp.mpf(0)]
    for mass in per_piece:
        cumulative.append(cumulative[-1] + mass)
    log_prior = _log_prior(family, params)

    def pdf(u):
        return mp.exp(log_prior(u) + _likelihood(u, d)[0] - log_total)

    out = []
    for p in PROBS:
        j = max(i for i in range(len(per_piece)) if cumulative[i] <= p)
        a, b = (mp.mpf(x) for x in segments[j])
        lo, hi = a, b
        u = a + (b - a) * (p - cumulative[j]) / per_piece[j]
        for _ in range(200):
            excess = cumulative[j] + mp.fsum(w * pdf(x) for x, w in _nodes([(a, u)], GL_NODES)) - p
            lo, hi = (u, hi) if excess < 0 else (lo, u)
            step = excess / pdf(u)
            if abs(step) < mp.mpf(10) ** (-DPS + 8) or hi - lo < mp.mpf(10) ** (-DPS + 8):
                u -= step
                break
            # Newton inside the bracket, else bisection.
            u = u - step if lo <= u - step <= hi else (lo + hi) / 2
        out.append(mp.exp(u))
    return out


def _direction(rng_seed, size):
    v = np.random.default_rng(rng_seed).normal(size=size)
    return v / max(np.linalg.norm(v), 1e-300)


def _job(args):
    index, group = args
    t0 = time.time()
    ref = group_reference(group)
    print(
        f"group {index:3d} ({group['family']}, n={len(group['d'])}): {time.time() - t0:.1f}s",
        file=sys.stderr,
    )
    return ref


def _check_job(args):
    """Relative differences of ``L`` (pieces split in two, more nodes) and of the derivative
    along ``v`` (finite differences against the posterior expectation)."""
    _, group = args
    ref = group_reference(group, finite_difference=True)
    fine = group_reference(group, scale=0.5, n=GL_NODES + 8, derivatives=False)
    tiny = mp.mpf(10) ** -300
    value = abs(ref["log_marginal"] - fine["log_marginal"]) / max(abs(fine["log_marginal"]), tiny)
    slope = abs(ref["grad_direction"] - ref["grad_direction_fd"]) / max(
        abs(ref["grad_direction"]), tiny
    )
    return float(value), float(slope)


def main() -> None:
    groups = build_groups()
    for i, group in enumerate(groups):
        group["direction"] = _direction(SEED + i, len(group["d"]))
    with multiprocessing.Pool(2) as pool:
        refs = pool.map(_job, list(enumerate(groups)), chunksize=1)
        checked = [i for i, g in enumerate(groups) if len(g["d"]) <= 34]
        diffs = pool.map(_check_job, [(i, groups[i]) for i in checked], chunksize=1)
    mp.mp.dps = DPS
    out = []
    for group, ref in zip(groups, refs, strict=True):
        out.append(
            {
                "kind": group["kind"],
                "family": group["family"],
                "params": {k: float(v) for k, v in group["params"].items()},
                "d": [float(x) for x in group["d"]],
                "direction": [float(x) for x in group["direction"]],
                "log_marginal": mp.nstr(ref["log_marginal"], 25),
                "grad_params": {k: mp.nstr(v, 20) for k, v in ref["grad_params"].items()},
                "grad_direction": mp.nstr(ref["grad_direction"], 20),
                "mean": mp.nstr(ref["mean"], 20),
                "variance": mp.nstr(ref["variance"], 20),
                "quantiles": [mp.nstr(q, 20) for q in ref["quantiles"]],
            }
        )
    meta = {
        "dps": DPS,
        "probs": list(PROBS),
        "gl_nodes": GL_NODES,
        "check_refined_log_marginal": max(x[0] for x in diffs),
        "check_finite_difference_direction": max(x[1] for x in diffs),
        "checked_groups": len(checked),
    }
    OUT.write_text(json.dumps({**meta, "groups": out}, indent=0))
    print(f"wrote {len(out)} groups to {OUT}; checks {meta}", file=sys.stderr)


if __name__ == "__main__":
    main()
