"""Backend-independent constants of the strength marginals (pure NumPy, cached).

* ``alternating_series_weights(n)``: weights ``w_j`` of Cohen, Rodriguez Villegas and Zagier
  (2000, Algorithm 1) such that ``sum_j w_j a_j`` approximates ``sum_{j>=0} (-1)^j a_j``. When
  ``a_j`` are the moments of a positive measure on [0, 1] the relative error is at most
  ``2 / (3 + sqrt 8)^n``, whatever the measure: the bound that makes the Gamma marginal uniformly
  accurate from ``d = 0`` to the far tail.
* ``standard_normal_quadrature(n)``: Gauss-Hermite nodes and log-weights for E[f(eps)],
  eps ~ N(0, 1).
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Default number of series terms by floating-point width (relative error bound 2 / 5.83^n:
#: 2e-18 at 24 terms, 1e-9 at 12), chosen with margin for the gradients, whose error carries an
#: extra factor of order n^2 (see tests/mixlogit/test_marginals_accuracy.py). Float32 keeps 12:
#: at 10 the fused gradients' worst relative error on a float32 grid rose from 9e-6 to 2.4e-5.
DEFAULT_NUM_TERMS = {64: 24, 32: 12}


def default_num_terms(bits: int) -> int:
    """Series length giving full precision for a float of ``bits`` bits (16 and 32 -> 12)."""
    return DEFAULT_NUM_TERMS[64] if bits >= 64 else DEFAULT_NUM_TERMS[32]


@functools.lru_cache(maxsize=64)
def alternating_series_weights(num_terms: int) -> np.ndarray:
    """Signed weights ``w`` (float64, shape ``(num_terms,)``) with ``sum_j (-1)^j a_j ~ w @ a``.

    Cohen, Rodriguez Villegas & Zagier (2000), "Convergence acceleration of alternating series",
    Algorithm 1, written with the sign of each term folded into its weight.
    """
    if not isinstance(num_terms, int) or num_terms < 1:
        raise ValueError(f"num_terms must be a positive integer, got {num_terms!r}")
    n = num_terms
    d = (3.0 + math.sqrt(8.0)) ** n
    d = (d + 1.0 / d) / 2.0
    b = -1.0
    c = -d
    weights = np.empty(n)
    for k in range(n):
        c = b - c
        weights[k] = c / d
        b = (k + n) * (k - n) * b / ((k + 0.5) * (k + 1))
    weights.setflags(write=False)
    return weights


def alternating_series_error_bound(num_terms: int) -> float:
    """Relative error bound ``2 / (3 + sqrt 8)^n`` of :func:`alternating_series_weights`."""
    return 2.0 / (3.0 + math.sqrt(8.0)) ** num_terms


@functools.lru_cache(maxsize=64)
def standard_normal_quadrature(num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``eps_i`` and log-weights ``log w_i`` with ``sum_i w_i f(eps_i) ~ E[f(eps)]``.

    Gauss-Hermite rule of the standard normal (probabilists' Hermite polynomials); exact for
    polynomials of degree ``2 * num_points - 1``. Float64 arrays of shape ``(num_points,)``;
    the weights sum to one and every log-weight is finite at any ``num_points``.

    The nodes come from :func:`scipy.special.roots_hermitenorm` (Golub-Welsch, asymptotic
    expansions beyond 150 nodes). The weights are not taken from there: the outer ones
    underflow to 0 beyond ~370 nodes (and ``numpy.polynomial.hermite.hermgauss`` returns NaN
    there). They are formed in logs from the Christoffel formula
    ``w_i = 1 / (n psi_{n-1}(eps_i)^2)`` with the orthonormal Hermite polynomials ``psi_k``,
    whose three-term recurrence is rescaled at every step so that no value overflows.
    """
    if not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {num_points!r}")
    from scipy.special import roots_hermitenorm

    n = num_points
    nodes = np.asarray(roots_hermitenorm(n)[0], dtype=np.float64)
    # psi_0 = 1, psi_1 = x, psi_{k+1} = (x psi_k - sqrt(k) psi_{k-1}) / sqrt(k + 1); carry
    # psi_{k-1}, psi_k divided by exp(log_scale) to keep them O(1)
    previous = np.zeros_like(nodes)
    current = np.ones_like(nodes)
    log_scale = np.zeros_like(nodes)
    for k in range(n - 1):
        following = (nodes * current - math.sqrt(k) * previous) / math.sqrt(k + 1)
        previous, current = current, following
        size = np.maximum(np.abs(current), np.abs(previous))
        size = np.where(size > 0, size, 1.0)
        previous, current = previous / size, current / size
        log_scale += np.log(size)
    log_weights = -math.log(n) - 2.0 * (np.log(np.abs(current)) + log_scale)
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(log_weights))):
        raise FloatingPointError(f"the {n}-node Gauss-Hermite rule has non-finite nodes or weights")
    # remove the rounding of the product: the weights sum to one exactly in the mean
    log_weights = log_weights - np.logaddexp.reduce(log_weights)
    nodes.setflags(write=False)
    log_weights.setflags(write=False)
    return nodes, log_weights


@functools.lru_cache(maxsize=64)
def log_abs_logistic_quadrature(num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss nodes ``t_i`` and log-weights for ``E[f(T)]``, ``T = log|L|``, ``L ~ Logistic(0, 1)``.

    ``T`` has density ``2 e^t sigmoid(e^t) sigmoid(-e^t)`` on the real line. The rule is built
    by the discretised Stieltjes procedure (Gautschi 2004, sec. 2.2) on a fine uniform grid,
    where the trapezoid rule is spectrally accurate for this smooth, fast-decaying density,
    followed by Golub-Welsch. Float64 arrays of shape ``(num_points,)``; weights sum to one.
    """
    if not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {num_points!r}")
    t = np.linspace(-70.0, 6.0, 200_001)
    e = np.exp(t)
    density = 2.0 * e * np.exp(-np.logaddexp(0.0, -e) - np.logaddexp(0.0, e))
    mass = density * (t[1] - t[0])
    mass /= mass.sum()
    alpha = np.empty(num_points)
    beta = np.empty(num_points)
    p_prev = np.zeros_like(t)
    p = np.ones_like(t)
    norm_prev = 1.0
    for k in range(num_points):
        norm = np.sum(mass * p * p)
        alpha[k] = np.sum(mass * t * p * p) / norm
        beta[k] = norm / norm_prev if k else 1.0
        p_next = (t - alpha[k]) * p - (beta[k] if k else 0.0) * p_prev
        p_prev, p, norm_prev = p, p_next, norm
        # Rescale to keep the polynomials O(1); the ratios above are scale-free.
        scale = np.sqrt(np.sum(mass * p * p))
        p_prev, p, norm_prev = p_prev / scale, p / scale, norm_prev / scale**2
    jacobi = np.diag(alpha) + np.diag(np.sqrt(beta[1:]), 1) + np.diag(np.sqrt(beta[1:]), -1)
    nodes, vectors = np.linalg.eigh(jacobi)
    log_weights = 2.0 * np.log(np.abs(vectors[0]))
    nodes.setflags(write=False)
    log_weights.setflags(write=False)
    return nodes, log_weights
