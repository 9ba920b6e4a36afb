"""Per-person variational guides of the hierarchical model (SVI's ``local_guide``).

* :func:`noncentred_local_guide` (both backends): mean-field on the model's own non-centred
  draws, ``z_n ~ Normal`` and the gamma draw ``u_n`` LogNormal or Gamma, mapped to the model's
  standardised site ``u_std`` through the sampled shape.
* :func:`centred_local_guide` (NumPyro): Normal / LogNormal / Gamma laws in *coefficient* space
  mapped through the sampled population parameters.

``local_guide="marginal"`` needs neither: the person coefficients are integrated out of the
likelihood (:func:`mixlogit.bayes.model.simulated_model`) and drawn afterwards by
:mod:`mixlogit.bayes.resampling`. Each builder returns ``(guide, sample_local)``:
``guide(glob, batch, batch_idx=None)`` runs inside the full guide after the global part, and
``sample_local(params, glob, key, num)`` draws ``num`` person draws ``z (num, P, Kz)``,
``u (num, P, Kg)`` from the fitted parameters (NumPy arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixlogit.bayes.model import log_gamma_moments
from mixlogit.spec import ModelSpec

__all__ = ["centred_local_guide", "noncentred_local_guide", "u_std_law"]

POSITIVE_GUIDES = ("lognormal", "gamma")


def u_std_law(b: Any, positive_guide: str, first: Any, second: Any, log_shape: Any):
    """Guide law of the model site ``u_std`` when ``u ~ LogNormal(first, second)``
    (``positive_guide="lognormal"``; ``u_std`` is then normal) or ``u ~ Gamma(first, second)``
    (concentration, rate), pushed through ``u_std = (log u - digamma(k)) / sqrt(trigamma(k))``."""
    mean, sd = log_gamma_moments(b.ops, log_shape)
    if positive_guide == "lognormal":
        return b.Normal((first - mean) / sd, second / sd)
    return b.LogAffineGamma(first, second, -mean / sd, 1.0 / sd)


def _positive_params(b: Any, prefix: str, size: tuple[int, int], positive_guide: str):
    """The two param sites of the gamma draws' guide, started at a narrow law."""
    if positive_guide == "lognormal":
        return (
            b.param(f"{prefix}_loc", b.zeros(size), b.real),
            b.param(f"{prefix}_scale", b.filled(size, 0.3), b.positive),
        )
    return (
        b.param(f"{prefix}_concentration", b.filled(size, 5.0), b.positive),
        b.param(f"{prefix}_rate", b.filled(size, 5.0), b.positive),
    )


def noncentred_local_guide(b: Any, spec: ModelSpec, num_panels: int, positive_guide: str):
    """Mean-field guide on ``z`` and ``u_std`` (params ``z_loc``, ``z_scale`` and ``u_loc``,
    ``u_scale`` or ``u_concentration``, ``u_rate``, one row per decision-maker)."""
    kz, kg = len(spec.z_random), len(spec.gamma_random)

    def guide(glob, batch, batch_idx=None):
        with b.person_plate(batch, batch_idx, num_panels) as idx:
            if kz:
                loc = b.param("z_loc", b.zeros((num_panels, kz)), b.real)
                scale = b.param("z_scale", b.filled((num_panels, kz), 0.3), b.positive)
                b.sample("z", b.Normal(loc[idx], scale[idx]).to_event(1))
            if kg:
                first, second = _positive_params(b, "u", (num_panels, kg), positive_guide)
                law = u_std_law(b, positive_guide, first[idx], second[idx], glob["log_shape"])
                b.sample("u_std", law.to_event(1))

    def sample_local(params: dict, glob: dict, key, num: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(key)
        out = {}
        if kz:
            eps = rng.standard_normal((num, num_panels, kz))
            out["z"] = params["z_loc"] + params["z_scale"] * eps
        if kg:
            if positive_guide == "lognormal":
                eps = rng.standard_normal((num, num_panels, kg))
                out["u"] = np.exp(params["u_loc"] + params["u_scale"] * eps)
            else:
                draws = rng.gamma(params["u_concentration"], size=(num, num_panels, kg))
                out["u"] = draws / params["u_rate"]
        return out

    return guide, sample_local


def centred_local_guide(b: Any, spec: ModelSpec, num_panels: int, positive_guide: str):
    """Per-person guide in coefficient space (NumPyro), shifted to the model's non-centred
    draws through the sampled population parameters.

    For a normal-driven coefficient the guide is ``b_n ~ Normal(b_loc_n, b_scale_n)`` on
    ``mu + sigma * z_n`` (the coefficient itself for normals, its log for lognormals), hence
    ``z_n = (b_n - mu) / sigma`` (whitened by ``L_corr`` for correlated coefficients). For a
    gamma coefficient the guide is a LogNormal or Gamma law on ``|beta_n|`` and
    ``u_n = |beta_n| * shape / mean``. Centring the guide keeps it accurate when people's
    choices pin their coefficients down, where a mean-field guide on ``z_n`` shrinks the
    population SDs towards zero.
    """
    import jax
    import jax.numpy as jnp

    kz, kg = len(spec.z_random), len(spec.gamma_random)
    random = tuple(spec.random)
    z_mu_index = np.asarray([random.index(n) for n in spec.z_random], int)
    g_mu_index = np.asarray([random.index(n) for n in spec.gamma_random], int)
    corr_cols = np.asarray([spec.z_random.index(n) for n in spec.correlated], int)

    def z_from_coefficient_space(coefficient, glob):
        w = (coefficient - glob["mu"][..., z_mu_index]) / glob["sigma"]
        if corr_cols.size:
            wc = jnp.moveaxis(w[..., corr_cols], -1, 0)  # (Kc, ...)
            flat = wc.reshape(wc.shape[0], -1)
            zc = jax.scipy.linalg.solve_triangular(glob["L_corr"], flat, lower=True)
            w = w.at[..., corr_cols].set(jnp.moveaxis(zc.reshape(wc.shape), 0, -1))
        return w

    def guide(glob, batch, batch_idx=None):
        if kz:
            b_loc = b.param("b_loc", b.zeros((num_panels, kz)), b.real)
            b_scale = b.param("b_scale", b.filled((num_panels, kz), 0.3), b.positive)
        if kg:
            first, second = _positive_params(b, "g", (num_panels, kg), positive_guide)
        with b.person_plate(batch, batch_idx, num_panels) as idx:
            if kz:
                sigma = glob["sigma"]
                if corr_cols.size:
                    # loc exactly mapped; scale mapped per column (ignores the rotation)
                    loc = z_from_coefficient_space(b_loc[idx], glob)
                else:
                    loc = (b_loc[idx] - glob["mu"][z_mu_index]) / sigma
                b.sample("z", b.Normal(loc, b_scale[idx] / sigma).to_event(1))
            if kg:
                # u = |beta| * shape / mean with log(shape / mean) = log_shape - mu
                log_ratio = glob["log_shape"] - glob["mu"][g_mu_index]
                if positive_guide == "lognormal":
                    args = (first[idx] + log_ratio, second[idx])
                else:
                    args = (first[idx], second[idx] * jnp.exp(-log_ratio))
                law = u_std_law(b, positive_guide, *args, glob["log_shape"])
                b.sample("u_std", law.to_event(1))

    def sample_local(params: dict, glob: dict, key, num: int) -> dict[str, np.ndarray]:
        """Person draws for each of the ``num`` global draws ``glob`` (leading dim num)."""
        rng = np.random.default_rng(key)
        out = {}
        g = {k: np.asarray(v)[:, None] for k, v in glob.items()}  # broadcast over persons
        if kz:
            coefficient = params["b_loc"] + params["b_scale"] * rng.standard_normal(
                (num, num_panels, kz)
            )
            if corr_cols.size:
                per_draw = {k: np.asarray(v) for k, v in glob.items()}
                out["z"] = np.asarray(jax.vmap(z_from_coefficient_space)(coefficient, per_draw))
            else:
                out["z"] = (coefficient - g["mu"][..., z_mu_index]) / g["sigma"]
        if kg:
            log_ratio = g["log_shape"] - g["mu"][..., g_mu_index]
            if positive_guide == "lognormal":
                eps = rng.standard_normal((num, num_panels, kg))
                out["u"] = np.exp(params["g_loc"] + params["g_scale"] * eps + log_ratio)
            else:
                magnitude = rng.gamma(params["g_concentration"], size=(num, num_panels, kg))
                out["u"] = magnitude / params["g_rate"] * np.exp(log_ratio)
        return out

    return guide, sample_local
