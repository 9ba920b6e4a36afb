"""Models of binary choices with a random preference strength, written once for Pyro and NumPyro.

Every function takes a :class:`mixlogit._ppl.PPL` first; :mod:`mixlogit.torch.models` and
:mod:`mixlogit.jax.models` bind it (:func:`mixlogit._frontend.bind`) and export the same
names (:data:`MODEL_NAMES`):

* :func:`marginal_strength_model`: ``y_i ~ MarginalLogitBernoulli(d_i)``, the strength
  integrated out exactly (Gamma series / LogNormal quadrature).
* :func:`latent_strength_model`: one latent ``beta_i ~ p(beta)`` per observation,
  ``y_i ~ Bernoulli(logits=beta_i d_i)``.
* :func:`gamma_strength_guide`, :func:`lognormal_strength_guide`: mean-field variational
  families for the latent ``beta_i`` (site ``"beta"``), started at the population's mean and
  coefficient of variation.

The population parameters are param sites ``strength_<parameter>`` (``strength_shape``,
``strength_rate`` / ``strength_loc``, ``strength_scale``), the guides' local ones
``beta_<parameter>`` of length ``N``. So SVI on the latent model with either guide, or on the
marginal model with an empty guide, estimates the population by (type-II) maximum likelihood.
All share the signature ``(d, y=None, *, family, init, subsample_size)``: ``d`` (N,) margins,
``y`` (N,) choices in {0, 1} or ``None``, ``family`` a random strength family (name or
:class:`~mixlogit.families.StrengthFamily`), ``init`` starting values (default: the family's),
``subsample_size`` the size of the subsampled observation plate.

:class:`MarginalLogitBernoulliMixin` is what the Pyro and NumPyro marginal-Bernoulli
distributions share (probabilities and the log-probability of both outcomes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixlogit._frontend import bind, ordered_params
from mixlogit._ppl import PPL
from mixlogit.families import (
    FAMILY_NAMES,
    GAMMA,
    LOGNORMAL,
    NUMPY_OPS,
    StrengthFamily,
    get_family,
)

__all__ = [
    "MarginalLogitBernoulliMixin",
    "bind",
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_strength_guide",
    "marginal_strength_model",
    "random_family",
]

#: The public names of both backends' ``models`` modules.
MODEL_NAMES = (
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_strength_guide",
    "marginal_strength_model",
)


def random_family(family: str | StrengthFamily) -> StrengthFamily:
    """The family named ``family``, which must have parameters to estimate (not a point mass).

    Raises:
        ValueError: an unknown or non-learnable family, listing the allowed names.
    """
    allowed = [name for name in FAMILY_NAMES if get_family(name).learnable]
    found = get_family(family)
    if not found.learnable:
        raise ValueError(f"family must be one of {allowed}, got {found.name!r}")
    return found


def _check(ppl: PPL, d, y):
    d = ppl.asarray(d)
    if d.ndim != 1:
        raise ValueError(
            f"d must be a 1-d array of utility differences, got shape {tuple(d.shape)}"
        )
    if y is not None:
        y = ppl.asarray(y, like=d)
        if y.shape != d.shape:
            raise ValueError(f"y has shape {tuple(y.shape)} but d has shape {tuple(d.shape)}")
    return d, y


def _population(ppl: PPL, family: StrengthFamily, init, like) -> dict[str, Any]:
    return {
        name: ppl.param(
            f"strength_{name}",
            lambda v=value: ppl.asarray(v, like=like),
            ppl.constraint(family.constraints[name]),
        )
        for name, value in family.with_defaults(init).items()
    }


def marginal_strength_model(ppl: PPL, d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``y_i | d_i`` with the strength integrated out exactly (Gamma series / LogNormal GH)."""
    family = random_family(family)
    d, y = _check(ppl, d, y)
    params = _population(ppl, family, init, d)
    with ppl.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        y_obs = None if y is None else y[idx]
        return ppl.sample("y", ppl.MarginalLogitBernoulli(family, d[idx], params), obs=y_obs)


def latent_strength_model(ppl: PPL, d, y=None, *, family="gamma", init=None, subsample_size=None):
    """One latent strength per observation: ``beta_i ~ p(beta)``, ``y_i ~ Bernoulli(sigmoid(beta_i d_i))``."""
    family = random_family(family)
    d, y = _check(ppl, d, y)
    params = _population(ppl, family, init, d)
    with ppl.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        beta = ppl.sample("beta", family.distribution(ppl, params))
        y_obs = None if y is None else y[idx]
        return ppl.sample("y", ppl.Bernoulli(logits=beta * d[idx]), obs=y_obs)


def _strength_guide(ppl: PPL, guide: StrengthFamily, d, y, family, init, subsample_size):
    """``q(beta_i)`` of family ``guide`` with local parameters ``beta_<parameter>``, started
    at the mean and coefficient of variation of the population's initial values."""
    family = random_family(family)
    d, _ = _check(ppl, d, y)
    population = family.with_defaults(init)
    mean, cv = family.mean(NUMPY_OPS, population), family.cv(NUMPY_OPS, population)
    local = {
        name: ppl.param(
            f"beta_{name}",
            lambda v=float(value): ppl.full(d.shape, v, like=d),
            ppl.constraint(guide.constraints[name]),
        )
        for name, value in guide.from_mean_cv(NUMPY_OPS, mean, cv).items()
    }
    with ppl.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        ppl.sample("beta", guide.distribution(ppl, {k: v[idx] for k, v in local.items()}))


def gamma_strength_guide(ppl: PPL, d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``q(beta_i) = Gamma(beta_shape_i, beta_rate_i)``, started at the population's moments."""
    _strength_guide(ppl, GAMMA, d, y, family, init, subsample_size)


def lognormal_strength_guide(
    ppl: PPL, d, y=None, *, family="gamma", init=None, subsample_size=None
):
    """``q(beta_i) = LogNormal(beta_loc_i, beta_scale_i)``, started at the population's moments."""
    _strength_guide(ppl, LOGNORMAL, d, y, family, init, subsample_size)


#: Both frameworks' ``Distribution`` has a ``shape()`` method, so a family parameter of that
#: name is stored under another attribute (the Gamma's ``concentration``, as in their Gamma).
_RENAMED = {"shape": "concentration"}


_FAMILY_CLASSES: dict[tuple[type, str], type] = {}


class MarginalLogitBernoulliMixin:
    """``P(y = 1) = E[sigmoid(beta d)]`` for ``beta`` of :attr:`strength_family`, integrated out.

    Backend classes set :attr:`ops`, :attr:`strength_family` (per subclass), store ``d`` and
    each parameter under :meth:`attribute`, the family's options under their names, and
    implement ``_log_marginal_of(d, params, options)`` (the backend's ``logit_marginal``) and
    ``_both_signs(d)`` (``d`` and ``-d`` stacked on a new leading axis).
    """

    ops: Any
    strength_family: StrengthFamily

    @staticmethod
    def attribute(parameter: str) -> str:
        """The attribute holding family parameter ``parameter``."""
        return _RENAMED.get(parameter, parameter)

    @classmethod
    def family_arg_constraints(cls, ppl: PPL) -> dict[str, Any]:
        """``arg_constraints`` of the family's distribution: ``d`` real, then its parameters."""
        family = cls.strength_family
        return {
            "d": ppl.real,
            **{cls.attribute(p): ppl.constraint(family.constraints[p]) for p in family.parameters},
        }

    @staticmethod
    def check_options(family: StrengthFamily, options: Mapping[str, Any]) -> dict[str, Any]:
        """The family's options for a distribution: its ``log_prob`` must be deterministic."""
        options = family.check_options(options)
        if options.get("method", "quadrature") != "quadrature":
            raise ValueError(
                f"a marginal-logit distribution needs a deterministic log_prob; "
                f"method must be 'quadrature', got {options['method']!r}"
            )
        return options

    @classmethod
    def of_family(cls, family, d, params, *, validate_args=None, **options):
        """``y ~ Bernoulli(E[sigmoid(beta d)])`` for ``beta`` of any ``family`` (name or record),
        ``params`` ``{parameter: array}`` broadcastable with ``d``; ``options`` the family's
        (a deterministic ``log_prob`` only: ``method="quadrature"``). Called on a backend's
        base class; returns an instance of its subclass for the family (made when missing)."""
        family = get_family(family)
        ordered_params(family, params)  # exactly the family's names
        sub = _FAMILY_CLASSES.get((cls, family.name))
        if sub is None:
            sub = next((c for c in cls.__subclasses__() if c.strength_family is family), None)
            title = family.name.title().replace("_", "")
            sub = sub or type(f"{title}LogitBernoulli", (cls,), {"strength_family": family})
            _FAMILY_CLASSES[(cls, family.name)] = sub
        dist = sub.__new__(sub)
        dist._setup(d, params, options, validate_args)
        return dist

    @property
    def strength_params(self) -> dict[str, Any]:
        """The family parameters by their family names."""
        return {p: getattr(self, self.attribute(p)) for p in self.strength_family.parameters}

    @property
    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.strength_family.options}

    def _log_marginal(self, d):
        return self._log_marginal_of(d, self.strength_params, self.options)

    @property
    def probs(self):
        """``P(y = 1) = E[sigmoid(beta d)]``."""
        return self.ops.exp(self._log_marginal(self.d))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p = self.probs
        return p * (1 - p)

    def _log_prob(self, value):
        # y = 0 is the choice with margin -d: one kernel call on both signs.
        both = self._log_marginal(self._both_signs(self.d))
        return self.ops.where(value > 0.5, both[0], both[1])
