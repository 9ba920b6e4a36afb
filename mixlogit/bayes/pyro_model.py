"""Pyro (PyTorch, float64) versions of the models in :mod:`mixlogit.bayes.numpyro_model`.

Same sites, priors and parameterisation as the NumPyro models, so that posteriors from the two
backends are directly comparable; the per-draw post-processing is shared (JAX). Chains of NUTS
run one after another (Pyro's multi-chain mode forks processes).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from mixlogit.bayes._math import person_coefficients, situation_logp
from mixlogit.bayes.spec import BayesPriors, BayesSpec, PanelArrays

__all__ = [
    "TORCH_NS",
    "StandardisedLogGamma",
    "hierarchical_model",
    "latent_class_model",
    "quadrature_model",
    "simulated_model",
]

DTYPE = torch.float64


def _clip(x, lo, hi):
    return torch.clamp(x, min=lo, max=hi)


TORCH_NS = SimpleNamespace(
    exp=torch.exp,
    log=torch.log,
    where=lambda c, a, b: torch.where(c, a, torch.as_tensor(b, dtype=DTYPE)),
    sqrt=torch.sqrt,
    clip=_clip,
    ndtr=torch.special.ndtr,
    ndtri=torch.special.ndtri,
    stack=lambda xs, axis: torch.stack(torch.broadcast_tensors(*xs), axis),
    log_softmax=lambda x: torch.log_softmax(x, -1),
    take_along_last=lambda a, i: torch.gather(
        a, -1, torch.as_tensor(i).expand(a.shape[:-1]).unsqueeze(-1)
    ).squeeze(-1),
    inf=float("inf"),
)


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=DTYPE)


def loggamma_moments(log_shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``digamma(k)`` and SD ``sqrt(trigamma(k))`` of ``log u``, ``u ~ Gamma(k, 1)``."""
    k = torch.exp(log_shape)
    return torch.digamma(k), torch.sqrt(torch.polygamma(1, k))


def gamma_from_standardised(log_shape: torch.Tensor, u_std: torch.Tensor) -> torch.Tensor:
    """``u = exp(digamma(k) + sqrt(trigamma(k)) * u_std)`` (see the NumPyro twin)."""
    m, s = loggamma_moments(log_shape)
    return torch.exp(m + s * u_std)


class StandardisedLogGamma(dist.TorchDistribution):
    """``(log u - digamma(k)) / sqrt(trigamma(k))`` for ``u ~ Gamma(k, 1)``: mean 0, variance
    1 for every shape (the non-centred gamma draw; see
    :class:`mixlogit.bayes.numpyro_model.StandardisedLogGamma`)."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, concentration: torch.Tensor, validate_args=None):
        self.concentration = torch.as_tensor(concentration, dtype=DTYPE)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    def _moments(self):
        return loggamma_moments(torch.log(self.concentration))

    def expand(self, batch_shape, _instance=None):
        return StandardisedLogGamma(self.concentration.expand(batch_shape))

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            u = torch.distributions.Gamma(self.concentration.expand(shape), 1.0).sample()
            m, s = self._moments()
            # Gamma draws of tiny shapes underflow to 0: keep the log finite
            return (torch.log(u.clamp_min(torch.finfo(DTYPE).tiny)) - m) / s

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        k = self.concentration
        m, s = self._moments()
        v = m + s * value
        return torch.log(s) + k * v - torch.exp(v) - torch.lgamma(k)


def _correlate(spec: BayesSpec, z: torch.Tensor, L: torch.Tensor | None) -> torch.Tensor:
    if L is None:
        return z
    cols = [spec.z_random_names.index(n) for n in spec.correlated]
    zc = torch.einsum("ij,...j->...i", L, z[..., cols])
    z = z.clone()
    z[..., cols] = zc
    return z


def coefficients(spec: BayesSpec, params: dict, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    zc = _correlate(spec, z, params.get("L_corr"))
    empty = torch.zeros(0, dtype=DTYPE)
    return person_coefficients(
        TORCH_NS,
        spec,
        params.get("beta_fixed", empty),
        params.get("mu", empty),
        params.get("sigma", empty),
        params.get("log_shape", empty),
        zc,
        u,
    )


def _person_loglik(batch: dict, beta: torch.Tensor) -> torch.Tensor:
    V = torch.einsum("btjk,bk->btj", batch["X"], beta)
    lp = situation_logp(TORCH_NS, V, batch["chosen"], batch["available"])
    return (batch["weights"] * lp).sum(-1)


def _nodes_loglik(batch: dict, beta_nodes: torch.Tensor) -> torch.Tensor:
    V = torch.einsum("btjk,qk->btqj", batch["X"], beta_nodes)
    lp = situation_logp(TORCH_NS, V, batch["chosen"].unsqueeze(-1), batch["available"].unsqueeze(2))
    return torch.einsum("bt,btq->bq", batch["weights"], lp)


def _sample_globals(spec: BayesSpec, priors: BayesPriors) -> dict[str, torch.Tensor]:
    params: dict[str, torch.Tensor] = {}
    if spec.fixed_index:
        loc, scale = priors.location_scale(spec, "fixed")
        params["beta_fixed"] = pyro.sample(
            "beta_fixed", dist.Normal(_t(loc), _t(scale)).to_event(1)
        )
    if spec.random_index:
        loc, scale = priors.location_scale(spec, "random")
        params["mu"] = pyro.sample("mu", dist.Normal(_t(loc), _t(scale)).to_event(1))
    z_coefs = [c for c in spec.random_coefficients if c.distribution != "gamma"]
    if z_coefs:
        sd_scale = [
            priors.log_sd_scale if c.distribution == "lognormal" else priors.sd_scale
            for c in z_coefs
        ]
        params["sigma"] = pyro.sample("sigma", dist.HalfNormal(_t(sd_scale)).to_event(1))
    if spec.gamma_names:
        kg = len(spec.gamma_names)
        params["log_shape"] = pyro.sample(
            "log_shape",
            dist.Normal(_t(priors.gamma_log_shape_loc), _t(priors.gamma_log_shape_scale))
            .expand([kg])
            .to_event(1),
        )
    if spec.correlated:
        params["L_corr"] = pyro.sample(
            "L_corr", dist.LKJCholesky(len(spec.correlated), _t(priors.lkj_concentration))
        )
    return params


def _plate(batch: dict, batch_idx, num_panels: int):
    B = batch["X"].shape[0]
    idx = torch.arange(B) if batch_idx is None else torch.as_tensor(batch_idx)
    # Pyro scales the person-level terms by num_panels / B when B < num_panels.
    return pyro.plate("person", num_panels, subsample=idx)


def hierarchical_model(batch, batch_idx=None, *, num_panels, spec, priors) -> None:
    """Hierarchical mixed logit, non-centred person draws ``z``, ``u_std`` (see the NumPyro
    twin)."""
    params = _sample_globals(spec, priors)
    B = batch["X"].shape[0]
    kz, kg = len(spec.z_random_names), len(spec.gamma_names)
    with _plate(batch, batch_idx, num_panels):
        if kz:
            z = pyro.sample("z", dist.Normal(_t(0.0), _t(1.0)).expand([kz]).to_event(1)).reshape(
                B, kz
            )
        else:
            z = torch.zeros(B, 0, dtype=DTYPE)
        if kg:
            u_std = pyro.sample(
                "u_std", StandardisedLogGamma(torch.exp(params["log_shape"])).to_event(1)
            ).reshape(B, kg)
            u = gamma_from_standardised(params["log_shape"], u_std)
        else:
            u = torch.zeros(B, 0, dtype=DTYPE)
        beta = coefficients(spec, params, z, u).expand(B, len(spec.coefficients))
        pyro.factor("loglik", _person_loglik(batch, beta))


def quadrature_model(
    batch, batch_idx=None, *, num_panels, spec, priors, nodes, log_weights
) -> None:
    """Mixed logit with person coefficients integrated by Gauss-Hermite quadrature."""
    params = _sample_globals(spec, priors)
    nodes_t = _t(nodes)
    beta_nodes = coefficients(spec, params, nodes_t, torch.zeros(len(nodes), 0, dtype=DTYPE))
    ll = torch.logsumexp(_nodes_loglik(batch, beta_nodes) + _t(log_weights), -1)
    with _plate(batch, batch_idx, num_panels):
        pyro.factor("loglik", ll)


def simulated_model(batch, batch_idx=None, *, num_panels, spec, priors, z_draws) -> None:
    """Person coefficients integrated out by simulation: ``z_draws (R, Kz)`` common normals,
    ``R`` fresh reparameterised Gamma(k, 1) draws per gamma coefficient (see the NumPyro
    twin)."""
    params = _sample_globals(spec, priors)
    z_t = _t(z_draws)
    R = z_t.shape[0]
    if spec.gamma_names:
        shape = torch.exp(params["log_shape"])
        u = torch.distributions.Gamma(shape, torch.ones_like(shape)).rsample((R,))
    else:
        u = torch.zeros(R, 0, dtype=DTYPE)
    beta_nodes = coefficients(spec, params, z_t, u)
    ll = torch.logsumexp(_nodes_loglik(batch, beta_nodes), -1) - np.log(R)
    with _plate(batch, batch_idx, num_panels):
        pyro.factor("loglik", ll)


def latent_class_model(
    batch, batch_idx=None, *, num_panels, spec, priors, num_classes, order_by
) -> None:
    """Latent-class logit with the class indicator summed out (see the NumPyro twin)."""
    share = pyro.sample(
        "class_share",
        dist.Dirichlet(torch.full((num_classes,), priors.class_share_concentration, dtype=DTYPE)),
    )
    K = len(spec.coefficients)
    loc = np.asarray([priors.location.get(n, 0.0) for n in spec.names])
    scale = np.asarray([priors.scale.get(n, priors.fixed_scale) for n in spec.names])
    others = [k for k in range(K) if k != order_by]
    ordered = pyro.sample(
        "beta_ordered",
        dist.ImproperUniform(constraints.ordered_vector, (), event_shape=(num_classes,)),
    )
    pyro.factor(
        "beta_ordered_prior",
        dist.Normal(_t(loc[order_by]), _t(scale[order_by])).log_prob(ordered).sum(-1),
    )
    columns: list[Any] = [None] * K
    columns[order_by] = ordered
    if others:
        rest = pyro.sample(
            "beta_rest",
            dist.Normal(_t(loc[others]), _t(scale[others]))
            .expand([num_classes, len(others)])
            .to_event(2),
        )
        for j, k in enumerate(others):
            columns[k] = rest[..., j]
    beta_class = torch.stack(columns, -1)
    pyro.deterministic("beta_class", beta_class)
    ll_class = _nodes_loglik(batch, beta_class)
    ll = torch.logsumexp(ll_class + torch.log(share), -1)
    with _plate(batch, batch_idx, num_panels):
        pyro.factor("loglik", ll)


# --------------------------------------------------------------------------------------------
def _model_fn(kind: str, spec: BayesSpec, priors: BayesPriors, P: int, extra: dict):
    from functools import partial

    if kind == "hierarchical" and "z_draws" in extra:
        return partial(
            simulated_model, num_panels=P, spec=spec, priors=priors, z_draws=extra["z_draws"]
        )
    if kind in ("hierarchical", "mnl"):
        return partial(hierarchical_model, num_panels=P, spec=spec, priors=priors)
    if kind == "quadrature":
        return partial(
            quadrature_model,
            num_panels=P,
            spec=spec,
            priors=priors,
            nodes=extra["nodes"],
            log_weights=extra["log_weights"],
        )
    return partial(
        latent_class_model,
        num_panels=P,
        spec=spec,
        priors=priors,
        num_classes=extra["num_classes"],
        order_by=extra["order_by"],
    )


def _torch_batch(data: PanelArrays) -> dict[str, torch.Tensor]:
    return {
        "X": _t(data.X),
        "chosen": torch.as_tensor(data.chosen, dtype=torch.long),
        "available": torch.as_tensor(data.available),
        "weights": _t(data.weights),
    }


def _to_numpy(value: torch.Tensor) -> np.ndarray:
    return value.detach().cpu().numpy()


def _postprocess_site(name: str, value: np.ndarray, spec: BayesSpec, P: int) -> np.ndarray:
    # z/u come back with the plate dimension; make shapes (..., P, k) like NumPyro.
    if name == "z":
        return value.reshape(*value.shape[: value.ndim - 2], P, len(spec.z_random_names))
    if name in ("u", "u_std"):
        return value.reshape(*value.shape[: value.ndim - 2], P, len(spec.gamma_names))
    return value


def run_nuts(
    kind: str, spec: BayesSpec, priors: BayesPriors, data: PanelArrays, extra: dict, opts: dict
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """NUTS with Pyro: ``opts['num_chains']`` chains one after another."""
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_uniform

    model = _model_fn(kind, spec, priors, data.num_panels, extra)
    batch = _torch_batch(data)
    per_chain: list[dict[str, np.ndarray]] = []
    diverging = []
    for chain in range(opts["num_chains"]):
        pyro.set_rng_seed(opts["seed"] + 1000 * chain)
        pyro.clear_param_store()
        kernel = NUTS(
            model,
            target_accept_prob=opts["target_accept"],
            max_tree_depth=opts["max_tree_depth"],
            init_strategy=init_to_uniform(radius=1.0),
            jit_compile=True,
            ignore_jit_warnings=True,
        )
        mcmc = MCMC(
            kernel,
            num_samples=opts["num_samples"],
            warmup_steps=opts["num_warmup"],
            num_chains=1,
            disable_progbar=not opts["progress_bar"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mcmc.run(batch)
        samples = {k: _to_numpy(v) for k, v in mcmc.get_samples().items()}
        if kind == "latent_class":
            samples["beta_class"] = _latent_class_beta(samples, spec, extra["order_by"])
        samples = {k: _postprocess_site(k, v, spec, data.num_panels) for k, v in samples.items()}
        if "u_std" in samples:  # the Gamma(k, 1) draws used by the shared post-processing
            log_shape = torch.as_tensor(samples["log_shape"], dtype=DTYPE)[..., None, :]
            u_std = torch.as_tensor(samples["u_std"], dtype=DTYPE)
            samples["u"] = _to_numpy(gamma_from_standardised(log_shape, u_std))
        per_chain.append(samples)
        div = np.zeros(opts["num_samples"], dtype=bool)
        idx = mcmc.diagnostics().get("divergences", {}).get("chain 0", [])
        div[np.asarray(idx, dtype=int)] = True
        diverging.append(div)
    samples = {k: np.stack([c[k] for c in per_chain]) for k in per_chain[0]}
    return samples, {"diverging": np.stack(diverging)}


def _latent_class_beta(samples: dict, spec: BayesSpec, order_by: int) -> np.ndarray:
    ordered = samples["beta_ordered"]
    K = len(spec.names)
    others = [k for k in range(K) if k != order_by]
    cols = [None] * K
    cols[order_by] = ordered
    for j, k in enumerate(others):
        cols[k] = samples["beta_rest"][..., j]
    return np.stack(cols, -1)


def run_svi(
    kind: str, spec: BayesSpec, priors: BayesPriors, data: PanelArrays, extra: dict, opts: dict
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """SVI with an AutoNormal guide on the population sites and per-person Normal (z) and
    LogNormal or Gamma (gamma person draws u) guides, persons subsampled by ``batch_size``."""
    from pyro import poutine
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
    from pyro.infer.autoguide.initialization import init_to_feasible

    P = data.num_panels
    B = opts["batch_size"]
    kz, kg = len(spec.z_random_names), len(spec.gamma_names)
    pyro.set_rng_seed(opts["seed"])
    pyro.clear_param_store()
    model = _model_fn(kind, spec, priors, P, extra)
    marginal = kind == "hierarchical" and "z_draws" in extra
    if opts["local_guide"] == "centred" and kind == "hierarchical":
        raise ValueError("local_guide='centred' is only available with backend='numpyro'")
    local_sites = ["z", "u_std"] if kind == "hierarchical" and not marginal else []
    if marginal:
        global_guide = AutoMultivariateNormal(model, init_loc_fn=init_to_feasible, init_scale=0.05)
    else:
        global_guide = AutoNormal(
            poutine.block(model, hide=local_sites), init_loc_fn=init_to_feasible, init_scale=0.05
        )
    positive = opts["positive_guide"]

    def local_guide(batch, batch_idx=None, glob=None):
        with _plate(batch, batch_idx, P) as idx:
            if kz:
                loc = pyro.param("z_loc", torch.zeros(P, kz, dtype=DTYPE))
                scale = pyro.param(
                    "z_scale", torch.full((P, kz), 0.3, dtype=DTYPE), constraints.positive
                )
                pyro.sample("z", dist.Normal(loc[idx], scale[idx]).to_event(1))
            if kg:
                if positive == "lognormal":
                    loc = pyro.param("u_loc", torch.zeros(P, kg, dtype=DTYPE))
                    scale = pyro.param(
                        "u_scale", torch.full((P, kg), 0.3, dtype=DTYPE), constraints.positive
                    )
                    m, s = loggamma_moments(glob["log_shape"])
                    law = dist.Normal((loc[idx] - m) / s, scale[idx] / s)
                else:
                    conc = pyro.param(
                        "u_concentration",
                        torch.full((P, kg), 5.0, dtype=DTYPE),
                        constraints.positive,
                    )
                    rate = pyro.param(
                        "u_rate", torch.full((P, kg), 5.0, dtype=DTYPE), constraints.positive
                    )
                    m, s = loggamma_moments(glob["log_shape"])
                    law = dist.TransformedDistribution(
                        dist.Gamma(conc[idx], rate[idx]),
                        [
                            torch.distributions.transforms.ExpTransform().inv,
                            torch.distributions.transforms.AffineTransform(-m / s, 1.0 / s),
                        ],
                    )
                # u_loc/u_scale or u_concentration/u_rate describe u; the model's site is
                # the standardised log u_std
                pyro.sample("u_std", law.to_event(1))

    def guide(batch, batch_idx=None):
        glob = global_guide(batch, batch_idx)
        if local_sites:
            local_guide(batch, batch_idx, glob)

    # Adam with the step size decaying exponentially to lr * lr_decay (as with NumPyro);
    # ClippedAdam's clipping is switched off
    per_step = opts["lr_decay"] ** (1.0 / opts["num_steps"])
    optim = pyro.optim.ClippedAdam(
        {"lr": opts["learning_rate"], "lrd": per_step, "clip_norm": 1e300}
    )
    svi = SVI(model, guide, optim, Trace_ELBO())
    rng = np.random.default_rng(opts["seed"])
    full_batch = _torch_batch(data) if B >= P else None
    losses = np.empty(opts["num_steps"])
    for step in range(opts["num_steps"]):
        if full_batch is not None:
            losses[step] = svi.step(full_batch, None)
        else:
            persons = np.sort(rng.choice(P, B, replace=False))
            losses[step] = svi.step(_torch_batch(data.take(persons)), torch.as_tensor(persons))
    num = opts["num_posterior_draws"]
    samples: dict[str, np.ndarray] = {}
    probe = _torch_batch(data.take(np.arange(min(P, 2))))
    with torch.no_grad():
        draws = [
            poutine.trace(global_guide).get_trace(probe, torch.arange(min(P, 2)))
            for _ in range(num)
        ]
    names = [
        n
        for n, site in draws[0].nodes.items()
        if site["type"] == "sample" and not n.endswith("_unconstrained") and n in _GLOBAL_SITES
    ]
    for n in names:
        samples[n] = np.stack([_to_numpy(d.nodes[n]["value"]) for d in draws])[None]
    if kind == "latent_class":
        samples["beta_class"] = _latent_class_beta(samples, spec, extra["order_by"])
    if local_sites and opts["person_level"]:
        store = pyro.get_param_store()
        gen = torch.Generator().manual_seed(opts["seed"] + 7)
        with torch.no_grad():
            if kz:
                loc, scale = store["z_loc"], store["z_scale"]
                eps = torch.randn((num, P, kz), generator=gen, dtype=DTYPE)
                samples["z"] = _to_numpy(loc + scale * eps)[None]
            if kg:
                if positive == "lognormal":
                    loc, scale = store["u_loc"], store["u_scale"]
                    eps = torch.randn((num, P, kg), generator=gen, dtype=DTYPE)
                    samples["u"] = _to_numpy(torch.exp(loc + scale * eps))[None]
                else:
                    g = dist.Gamma(store["u_concentration"], store["u_rate"])
                    samples["u"] = _to_numpy(g.sample((num,)))[None]
    if marginal and opts["person_level"]:
        import jax

        from mixlogit.bayes.inference import _conditional_person_draws

        glob = {k: v[0] for k, v in samples.items()}
        batch_j = {
            "X": jax.numpy.asarray(data.X),
            "chosen": jax.numpy.asarray(data.chosen),
            "available": jax.numpy.asarray(data.available),
            "weights": jax.numpy.asarray(data.weights),
        }
        key = jax.random.PRNGKey(opts["seed"] + 7)
        z, u = _conditional_person_draws(spec, glob, batch_j, key, opts["svi_draws"])
        samples["z"], samples["u"] = z[None], u[None]
    return samples, losses


_GLOBAL_SITES = (
    "beta_fixed",
    "mu",
    "sigma",
    "log_shape",
    "L_corr",
    "class_share",
    "beta_ordered",
    "beta_rest",
)
