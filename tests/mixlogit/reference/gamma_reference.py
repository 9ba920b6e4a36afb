"""Arbitrary-precision reference for the Gamma strength marginal (mpmath), independent of the
alternating series used by the library.

``P(d) = E[sigmoid(beta d)]``, ``beta ~ Gamma(k, rate)``. With ``a = |d| / rate`` and
``S = E[sigmoid(-beta |d|)]`` (so ``P = S`` for ``d <= 0`` and ``1 - S`` for ``d > 0``),
tilting the Gamma by ``exp(-beta |d|)`` gives

    S = (1 + a)^-k * I,   I = E_{t ~ Gamma(k, 1)}[sigmoid(t u)],   u = a / (1 + a),

whose integrand lies in [1/2, 1), so ``I`` is computed by tanh-sinh quadrature without
cancellation however deep the tail. Derivatives are integrals too:
``dI/du = E[t sigma'(t u)]`` and ``dI/dk = E[sigmoid(t u) (log t - digamma(k))]``.

Run ``python tests/mixlogit/reference/gamma_reference.py`` to regenerate
``tests/mixlogit/data/gamma_reference.json`` (about a minute on 2 cores).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import mpmath as mp
import numpy as np

DPS = 32
SHAPES = [0.02, 0.1, 0.5, 1.0, 2.0, 7.5, 50.0, 1000.0]
RATES = [1e-3, 1.0, 16.7, 1e3]
A_VALUES = [0.0, 1e-10, 1e-6, 1e-3, 0.05, 0.5, 1.0, 3.0, 20.0, 300.0, 1e5]
OUT = Path(__file__).resolve().parents[1] / "data" / "gamma_reference.json"


def _f32(x: float) -> float:
    """Inputs are float32-representable so float32 and float64 runs see the same numbers."""
    return float(np.float32(x))


def gamma_expectations(k, u):
    """``(I, dI/du, dI/dk)`` for ``t ~ Gamma(k, 1)`` at working precision."""
    k = mp.mpf(k)
    u = mp.mpf(u)
    sig = lambda t: 1 / (1 + mp.exp(-t * u))  # noqa: E731
    dig = mp.digamma(k)

    def integrands(t):
        s = sig(t)
        return s, t * s * (1 - s), s * (mp.log(t) - dig)

    results = []
    for which in range(3):
        if k < 1:
            # t = s^(1/k) removes the t^(k-1) endpoint singularity: dt t^(k-1) = ds / k.
            def f(s, which=which):
                if s == 0:
                    return mp.mpf(0) if which else mp.mpf(1) / 2
                t = s ** (1 / k)
                return mp.exp(-t) * integrands(t)[which]

            # Beyond t_max the Gamma(k, 1) density is below exp(-150) of its peak.
            t_max = k + 80 * mp.sqrt(k) + 200
            pts = [0, mp.mpf(1e-30) ** k, mp.mpf(1e-6) ** k, 1, mp.mpf(60) ** k, t_max**k]
            val = mp.quad(f, pts, maxdegree=10) / mp.gamma(k + 1)
        else:
            # t = e^x: a smooth bump of width 1/sqrt(k) around x = log k.
            log_norm = mp.loggamma(k)

            def f(x, which=which, log_norm=log_norm):
                t = mp.exp(x)
                return mp.exp(k * x - t - log_norm) * integrands(t)[which]

            centre = mp.log(k)
            width = 1 / mp.sqrt(k)
            offsets = (-60, -25, -10, -4, -1.5, 0, 1.5, 4, 10, 25)
            t_max = k + 80 * mp.sqrt(k) + 200  # an infinite upper end makes exp(e^x) explode
            top = mp.log(t_max)
            inner = [centre + j * width for j in offsets if centre + j * width < top - width]
            pts = [-mp.inf, *inner, top]
            val = mp.quad(f, pts, maxdegree=10)
        results.append(val)
    return results


def reference_point(args):
    k, a = args
    mp.mp.dps = DPS
    k = mp.mpf(k)
    a = mp.mpf(a)
    if a == 0:
        log_s = mp.log(mp.mpf(1) / 2)
        return {"log_s": log_s, "dlogs_da": -k / 2, "dlogs_dk": mp.mpf(0)}
    u = a / (1 + a)
    i0, i_u, i_k = gamma_expectations(k, u)
    log_s = -k * mp.log1p(a) + mp.log(i0)
    dlogs_da = -k / (1 + a) + i_u / i0 / (1 + a) ** 2
    dlogs_dk = -mp.log1p(a) + i_k / i0
    return {"log_s": log_s, "dlogs_da": dlogs_da, "dlogs_dk": dlogs_dk}


def build_points():
    """Grid rows: inputs (float32-exact) and the reference log P and its three gradients."""
    mp.mp.dps = DPS
    pairs = []
    rows = []
    for k in SHAPES:
        for rate in RATES:
            for a in A_VALUES:
                for sign in [1.0] if a == 0 else [1.0, -1.0]:
                    k32, rate32 = _f32(k), _f32(rate)
                    d32 = _f32(sign * a * rate32)
                    a_exact = abs(mp.mpf(d32)) / mp.mpf(rate32)
                    rows.append((k32, rate32, d32))
                    pairs.append((k32, a_exact))
    return rows, pairs


def main() -> None:
    rows, pairs = build_points()
    unique = sorted(set(pairs))
    with multiprocessing.Pool(2) as pool:
        refs = dict(zip(unique, pool.map(reference_point, unique), strict=True))
    mp.mp.dps = DPS
    out = []
    for (k, rate, d), key in zip(rows, pairs, strict=True):
        r = refs[key]
        rate_m, d_m = mp.mpf(rate), mp.mpf(d)
        log_s, da, dk = r["log_s"], r["dlogs_da"], r["dlogs_dk"]
        if d > 0:
            s = mp.exp(log_s)
            log_p = mp.log1p(-s)
            factor = -s / (1 - s)  # d log(1 - S) = -S/(1-S) d log S
            sign = 1
        else:
            log_p = log_s
            factor = mp.mpf(1)
            sign = -1  # a = -d / rate on d <= 0 (the derivative at d = 0 is the two-sided one)
        grad_d = factor * da * sign / rate_m
        grad_rate = factor * da * (-abs(d_m) / rate_m**2)
        grad_shape = factor * dk
        out.append(
            {
                "d": d,
                "shape": k,
                "rate": rate,
                "log_p": mp.nstr(log_p, 25),
                "grad_d": mp.nstr(grad_d, 25),
                "grad_shape": mp.nstr(grad_shape, 25),
                "grad_rate": mp.nstr(grad_rate, 25),
            }
        )
    OUT.write_text(json.dumps({"dps": DPS, "points": out}, indent=0))
    print(f"wrote {len(out)} points to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
