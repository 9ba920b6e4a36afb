"""Arbitrary-precision reference for the LogNormal strength marginal (mpmath).

``S = E[sigmoid(-beta |d|)]``, ``beta = exp(loc + scale eps)``, by tanh-sinh quadrature at 30
digits over windows around the mode of the integrand (found by mpmath's root finder), so deep
tails keep their digits; ``log P = log S`` for ``d <= 0`` and ``log1p(-S)`` for ``d > 0``.

Run ``python tests/mixlogit/reference/lognormal_reference.py`` to regenerate
``tests/mixlogit/data/lognormal_reference.json``.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import mpmath as mp

GRID_D = [-1e3, -30.0, -3.0, -1.0, -0.1, 0.0, 0.1, 1.0, 3.0, 30.0, 1e3]
GRID_LOC = [-2.3, -1.0, 0.0]
GRID_SCALE = [0.05, 0.3, 0.6, 0.74, 0.76, 1.0, 1.5, 2.0]
OUT = Path(__file__).resolve().parents[1] / "data" / "lognormal_reference.json"


def small_side(d, loc, scale):
    """S = E[sigmoid(-beta |d|)] at 30 digits."""
    mp.mp.dps = 30
    d, loc, scale = mp.mpf(d), mp.mpf(loc), mp.mpf(scale)
    if d == 0:
        return mp.mpf(1) / 2
    a = abs(d)

    def log_f(e):
        return -e * e / 2 - mp.log1p(mp.exp(mp.exp(loc + scale * e) * a))

    def dlog_f(e):
        z = mp.exp(loc + scale * e) * a
        return -e - scale * z / (1 + mp.exp(-z))

    knee = -(mp.log(a) + loc) / scale
    mode = mp.findroot(dlog_f, (min(knee, 0) - 1 - scale, mp.mpf(0)), solver="anderson")
    f = lambda e: mp.exp(log_f(e)) / mp.sqrt(2 * mp.pi)  # noqa: E731
    pts = [mode + j for j in (-40, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 40)]
    return mp.quad(f, [-mp.inf, *pts]) + mp.quad(f, [pts[-1], pts[-1] + 200])


def log_p(args):
    d, loc, scale = args
    s = small_side(d, loc, scale)
    value = mp.log1p(-s) if d > 0 else mp.log(s)
    return {
        "d": d,
        "loc": loc,
        "scale": scale,
        "log_p": mp.nstr(value, 25),
        "p": mp.nstr(mp.exp(value), 25),
    }


def main() -> None:
    grid = [(d, loc, s) for d in GRID_D for loc in GRID_LOC for s in GRID_SCALE]
    with multiprocessing.Pool(2) as pool:
        points = pool.map(log_p, grid)
    OUT.write_text(json.dumps({"dps": 30, "points": points}, indent=0))
    print(f"wrote {len(points)} points to {OUT}")


if __name__ == "__main__":
    main()
