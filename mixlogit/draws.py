"""Uniform draws on (0, 1) for simulated maximum likelihood.

Every generator returns an array of shape ``(num_units, num_draws, dim)``: unit ``n`` (a
decision maker in a panel, or a situation) gets its own ``num_draws`` points in ``dim``
dimensions, strictly inside (0, 1) so that inverse-CDF transforms stay finite.

* ``"halton"``: Halton sequence, one prime per dimension, consecutive blocks of
  ``num_draws`` points per unit after dropping the first ``skip`` points, 0 included (Train
  2009, ch. 9; the same points as xlogit's Halton draws);
  ``"halton-scrambled"`` permutes the digits of each prime with a random permutation
  (Braaten-Weller style random digit scrambling; the permutation fixes digit 0, so base 2,
  the first dimension, is unchanged); ``"halton-shuffled"`` randomly permutes the
  points of each dimension across units and draws (breaks the cross-dimension correlation of
  high primes).
* ``"sobol"``: scrambled Sobol' points (scipy), consecutive blocks per unit.
* ``"mlhs"``: modified Latin hypercube sampling (Hess, Train and Polak 2006).
* ``"random"``: pseudo-random uniforms.

:func:`standardised_draws` maps them through each random coefficient's standardisation
(:func:`mixlogit.mixing.standardise_uniform`) for the simulated likelihood;
:func:`sobol_normals` gives the scrambled Sobol standard normals of the Bayesian route.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm, qmc

from mixlogit._choice_ops import choice_ops
from mixlogit.mixing import standardise_uniform

__all__ = [
    "DRAW_TYPES",
    "first_primes",
    "halton_sequence",
    "make_draws",
    "sobol_normals",
    "standardised_draws",
]

DRAW_TYPES = ("halton", "halton-scrambled", "halton-shuffled", "sobol", "mlhs", "random")

_EPS = 1e-12


def first_primes(count: int) -> np.ndarray:
    """The first ``count`` prime numbers."""
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return np.array(primes, dtype=np.int64)


def check_primes(primes: Sequence[int], dim: int) -> np.ndarray:
    """``primes`` as an int array after checking they are ``dim`` distinct primes.

    Raises:
        ValueError: the wrong count, a repeated base or one that is not a prime.
    """
    bases = [int(p) for p in primes]
    if len(bases) != dim:
        raise ValueError(f"Halton primes: need one per random coefficient ({dim}); got {bases}")
    not_prime = [p for p in bases if p < 2 or any(p % q == 0 for q in range(2, int(p**0.5) + 1))]
    if not_prime:
        raise ValueError(f"Halton primes {not_prime} are not prime numbers")
    if len(set(bases)) != len(bases):
        raise ValueError(f"Halton primes must be distinct (one base per dimension); got {bases}")
    return np.asarray(bases, dtype=np.int64)


def halton_sequence(
    length: int, base: int, *, skip: int = 0, permutation: np.ndarray | None = None
) -> np.ndarray:
    """Radical inverse in ``base`` of the integers ``skip .. skip+length-1`` (float64).

    The sequence starts at index 0 (the point 0), so ``skip`` leading points are dropped as in
    xlogit; ``skip >= 1`` keeps the points inside (0, 1).

    Args:
        permutation: optional permutation of ``range(base)`` applied to every digit (with
            ``permutation[0] == 0`` so that the points stay in (0, 1)).
    """
    indices = np.arange(skip, skip + length, dtype=np.int64)
    result = np.zeros(length)
    factor = 1.0 / base
    while np.any(indices > 0):
        digits = indices % base
        if permutation is not None:
            digits = permutation[digits]
        result += digits * factor
        indices //= base
        factor /= base
    return result


def make_draws(
    num_units: int,
    num_draws: int,
    dim: int,
    kind: str = "halton",
    *,
    seed: int | None = 0,
    skip: int = 100,
    primes: Sequence[int] | None = None,
) -> np.ndarray:
    """Uniform draws of shape ``(num_units, num_draws, dim)`` strictly inside (0, 1).

    Args:
        num_units: decision makers (panel) or situations.
        num_draws: draws per unit.
        dim: number of random coefficients.
        kind: one of :data:`DRAW_TYPES`.
        seed: seed of the randomisation (scrambling, shuffling, MLHS, pseudo-random).
        skip: leading Halton points dropped (they are strongly correlated across primes).
        primes: ``(dim,)`` Halton bases, one per dimension in order (default the first
            ``dim`` primes); distinct primes, as Biogeme, Apollo and xlogit let one choose.
    """
    if skip < 1:
        raise ValueError(f"skip must be >= 1 (the Halton sequence starts at 0), got {skip}")
    if kind not in DRAW_TYPES:
        raise ValueError(f"unknown draw type {kind!r}; choose one of {DRAW_TYPES}")
    if num_units < 1 or num_draws < 1 or dim < 0:
        raise ValueError(
            f"need num_units >= 1, num_draws >= 1, dim >= 0; got {num_units}, {num_draws}, {dim}"
        )
    rng = np.random.default_rng(seed)
    total = num_units * num_draws
    if dim == 0:
        return np.zeros((num_units, num_draws, 0))
    if kind.startswith("halton"):
        bases = first_primes(dim) if primes is None else check_primes(primes, dim)
        columns = []
        for base in bases:
            permutation = None
            if kind == "halton-scrambled":
                permutation = np.concatenate([[0], 1 + rng.permutation(int(base) - 1)])
            column = halton_sequence(total, int(base), skip=skip, permutation=permutation)
            if kind == "halton-shuffled":
                column = rng.permutation(column)
            columns.append(column)
        u = np.stack(columns, axis=-1)
    elif kind == "sobol":
        sampler = qmc.Sobol(d=dim, scramble=True, seed=rng)
        with warnings.catch_warnings():
            # blocks of num_draws points per unit: balance of the whole sequence is not needed
            warnings.filterwarnings(
                "ignore", message="The balance properties", category=UserWarning
            )
            u = sampler.random(total)
    elif kind == "mlhs":
        base = (np.arange(num_draws)[:, None] + rng.random((num_units, 1, dim))) / num_draws
        order = rng.random((num_units, num_draws, dim)).argsort(axis=1)
        u = np.take_along_axis(base, order, axis=1)
        return np.clip(u, _EPS, 1 - _EPS)
    else:
        u = rng.random((total, dim))
    return np.clip(u.reshape(num_units, num_draws, dim), _EPS, 1 - _EPS)


def standardised_draws(
    spec,
    num_units: int,
    num_draws: int,
    kind: str,
    seed: int | None,
    *,
    halton_options: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised draws ``(U, R, Kr)`` of the random coefficients of ``spec`` (a
    :class:`~mixlogit.spec.ModelSpec` or an estimator) and their log weights ``(R,)``
    (``-log R``); ``(1, 1, 0)`` and ``(0,)`` for a model without random coefficients.

    ``halton_options``: ``{"skip": int, "primes": [...]}`` for the Halton types
    (:func:`check_halton_options`)."""
    mixing = list(spec.random.values())
    if not mixing:
        return np.zeros((1, 1, 0)), np.zeros(1)
    options = check_halton_options(halton_options, kind, len(mixing))
    uniforms = make_draws(num_units, num_draws, len(mixing), kind, seed=seed, **options)
    ops = choice_ops("numpy")
    standard = np.stack(
        [standardise_uniform(ops, uniforms[..., k], m.distribution) for k, m in enumerate(mixing)],
        axis=-1,
    )
    return standard, np.full(num_draws, -np.log(num_draws))


def check_halton_options(options: Mapping[str, Any] | None, kind: str, dim: int) -> dict[str, Any]:
    """``{"skip": ..., "primes": ...}`` keyword arguments of :func:`make_draws` from the
    ``halton_options`` of a fit, checked.

    Raises:
        ValueError: an unknown key, options given for draws that are not Halton, a skip
            below 1, or primes that :func:`check_primes` refuses.
    """
    if not options:
        return {}
    unknown = sorted(set(options) - {"skip", "primes"})
    if unknown:
        raise ValueError(f"halton_options: unknown keys {unknown}; expected 'skip' and 'primes'")
    if not kind.startswith("halton"):
        raise ValueError(f"halton_options apply to Halton draws; draws={kind!r}")
    checked: dict[str, Any] = {}
    if "skip" in options:
        skip = int(options["skip"])
        if skip < 1 or skip != options["skip"]:
            raise ValueError(
                f"halton_options['skip'] must be an integer >= 1; got {options['skip']!r}"
            )
        checked["skip"] = skip
    if options.get("primes") is not None:
        checked["primes"] = tuple(int(p) for p in check_primes(options["primes"], dim))
    return checked


def sobol_normals(num: int, dim: int, seed: int) -> np.ndarray:
    """``(num, dim)`` scrambled Sobol points (seeded with ``seed``) mapped to standard normals."""
    with warnings.catch_warnings():
        # balance properties need a power of 2 (the defaults are); other counts still work
        warnings.simplefilter("ignore", UserWarning)
        sobol = qmc.Sobol(d=dim, scramble=True, seed=seed).random(num)
    return norm.ppf(np.clip(sobol, 1e-12, 1 - 1e-12))
