"""The specification of a logit model with random coefficients, shared by every route.

A :class:`ModelSpec` says which coefficient is fixed, which is random with which mixing
distribution and sign, and which random coefficients are correlated. The classical
estimators (:class:`~mixlogit.estimators.MixedLogit`, ``MultinomialLogit``) hold one as
``model.spec`` and the Bayesian route (:func:`mixlogit.bayes.fit_bayes`) reads the same
object, so a model is specified and validated once whichever way it is fitted.

Variable names (the columns of :meth:`mixlogit.data.ChoiceData.to_arrays`): ``"price"``
(generic), ``"ASC_<alt>"`` (alternative-specific constant), ``"price@<alt>"`` (enters the
utility of ``<alt>`` only).

Random coefficient ``k`` is ``sign * g(draw)``; the distributions and their two parameters
are tabulated in :mod:`mixlogit.mixing` (classical parameterisation) and
:mod:`mixlogit.bayes.model` (hierarchical parameterisation). ``sign`` only matters for the
positive distributions (lognormal, gamma, truncated normal), where ``sign=-1`` gives a strictly
negative coefficient such as a price.

Heterogeneity in means and variances (Biogeme and Apollo write it in the utility): with
``mean_covariates={"time": ["male"]}`` the location of ``time``'s distribution is
``a + z_n . delta`` for decision maker ``n`` with covariates ``z_n`` (parameters
``time:male``); for lognormal and gamma coefficients this multiplies the coefficient by
``exp(z_n . delta)`` (gamma: the shift is on its log scale). With ``sd_covariates`` the spread
is ``b exp(z_n . gamma)`` (parameters ``ln_sd.time:male``; a correlated coefficient scales its
row of the Cholesky factor, so ``Sigma_n = D_n Sigma D_n``). Covariates describe the decision
maker: constant within a panel, else per situation.

WTP space (Train and Weeks 2005; logitr, Apollo): with ``wtp_space="price"`` the parameters of
every other variable describe its willingness to pay ``w_k`` in units of ``price``, and the
price coefficient ``beta_p`` (fixed or random, e.g. ``"-lognormal"``) is the scale: the
utility is ``beta_p (price - sum_k w_k x_k)``, i.e. ``beta_k = -beta_p w_k``. A random WTP is
then drawn directly from its own distribution instead of being the ratio of two random
coefficients.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CORRELATABLE",
    "DISTRIBUTIONS",
    "NORMAL_BASED",
    "POSITIVE_DISTRIBUTIONS",
    "CoefficientSpec",
    "ModelSpec",
    "RandomCoefficient",
    "as_model_spec",
    "mean_shift_name",
    "parameter_names",
    "parse_random",
    "spread_shift_name",
]

#: Mixing distributions of a random coefficient.
DISTRIBUTIONS = ("normal", "lognormal", "triangular", "uniform", "truncnormal", "gamma")
#: Distributions with positive support before the sign is applied.
POSITIVE_DISTRIBUTIONS = ("lognormal", "truncnormal", "gamma")
#: Distributions that are a function of one standard normal (Gauss-Hermite nodes apply).
NORMAL_BASED = ("normal", "lognormal")
#: Distributions that can share a covariance (through their underlying normals).
CORRELATABLE = NORMAL_BASED


class RandomCoefficient(NamedTuple):
    """Mixing distribution of one random coefficient.

    Attributes:
        distribution: one of :data:`DISTRIBUTIONS`.
        sign: ``+1`` or ``-1``; the coefficient is ``sign * g(draw)``.
    """

    distribution: str
    sign: int = 1


class CoefficientSpec(NamedTuple):
    """One coefficient of the utility (one column of the choice arrays).

    Attributes:
        name: variable name.
        distribution: ``None`` for a fixed coefficient, else one of :data:`DISTRIBUTIONS`.
        sign: +1 or -1.
    """

    name: str
    distribution: str | None = None
    sign: int = 1


def parse_random(name: str, value: str | RandomCoefficient | tuple) -> RandomCoefficient:
    """A :class:`RandomCoefficient` from ``"lognormal"``, ``"-lognormal"`` (negative),
    ``("lognormal", -1)`` or a ``RandomCoefficient``; ``name`` is for the error message."""
    if isinstance(value, RandomCoefficient):
        return value
    if isinstance(value, str):
        return RandomCoefficient(value.lstrip("-+"), -1 if value.startswith("-") else 1)
    if isinstance(value, tuple) and len(value) == 2:
        return RandomCoefficient(str(value[0]), int(value[1]))
    raise ValueError(
        f"random coefficient {name!r}: expected a distribution name, '-<name>' for a negative "
        f"coefficient, (name, sign) or RandomCoefficient; got {value!r}"
    )


def parameter_names(name: str, distribution: str) -> tuple[str, str]:
    """Names of the two classical parameters of a random coefficient, e.g. ``("pf", "sd.pf")``."""
    if distribution == "gamma":
        return f"ln_shape.{name}", f"ln_scale.{name}"
    if distribution in ("triangular", "uniform"):
        return name, f"spread.{name}"
    return name, f"sd.{name}"


def mean_shift_name(name: str, covariate: str) -> str:
    """Parameter of ``covariate`` in the location of random coefficient ``name``: ``name:cov``."""
    return f"{name}:{covariate}"


def spread_shift_name(name: str, covariate: str) -> str:
    """Parameter of ``covariate`` in the log spread of ``name``: ``ln_sd.name:cov``."""
    return f"ln_sd.{name}:{covariate}"


def _covariate_pairs(
    covariates: Mapping[str, Sequence[str]] | None, what: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{coefficient: [covariates]}`` as hashable pairs, checked for strings and repeats."""
    pairs = []
    for name, columns in (covariates or {}).items():
        if isinstance(columns, str):
            columns = [columns]
        columns = tuple(str(c) for c in columns)
        if not columns:
            continue
        if len(set(columns)) != len(columns):
            raise ValueError(f"{what} of {name!r} listed twice: {list(columns)}")
        pairs.append((str(name), columns))
    return tuple(pairs)


def _deprecated_property(old: str, new: str, convert=None):
    def getter(self):
        warnings.warn(
            f"ModelSpec.{old} is deprecated; use ModelSpec.{new}", DeprecationWarning, stacklevel=2
        )
        value = getattr(self, new)
        return value if convert is None else convert(value)

    return property(getter, doc=f"Deprecated alias of :attr:`{new}`.")


@dataclass(frozen=True)
class ModelSpec:
    """Which coefficients are fixed or random, in the column order of the choice arrays.

    Build one with :meth:`build`; the estimators do (``MixedLogit(...).spec``).

    Attributes:
        coefficients: one :class:`CoefficientSpec` per column of ``X``.
        correlated: random normal / lognormal coefficients whose underlying normals share a
            full covariance (at least two; empty for independent coefficients).
        mean_covariates: ``((coefficient, (covariate, ...)), ...)``: decision-maker covariates
            that shift the location of a random coefficient (see the module docstring).
        sd_covariates: the same for its log spread (not for gamma coefficients).
        wtp_space: ``None`` (preference space) or the cost variable of a WTP-space model (see
            the module docstring).
    """

    coefficients: tuple[CoefficientSpec, ...]
    correlated: tuple[str, ...] = ()
    mean_covariates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sd_covariates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    wtp_space: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", tuple(self.coefficients))
        object.__setattr__(self, "correlated", tuple(self.correlated))
        for attribute, what in (
            ("mean_covariates", "mean covariates"),
            ("sd_covariates", "sd covariates"),
        ):
            value = getattr(self, attribute)
            pairs = _covariate_pairs(dict(value) if not isinstance(value, Mapping) else value, what)
            object.__setattr__(self, attribute, pairs)
        names = [c.name for c in self.coefficients]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate coefficient names in specification: {names}")
        for c in self.coefficients:
            if c.distribution is not None and c.distribution not in DISTRIBUTIONS:
                raise ValueError(
                    f"coefficient {c.name!r}: unknown mixing distribution {c.distribution!r}; "
                    f"expected one of {DISTRIBUTIONS}"
                )
            if c.sign not in (1, -1):
                raise ValueError(f"coefficient {c.name!r}: sign must be +1 or -1, got {c.sign!r}")
        for name in self.correlated:
            self._check_correlatable(name)
        if len(self.correlated) == 1:
            raise ValueError("correlated needs at least two coefficients")
        if len(set(self.correlated)) != len(self.correlated):
            raise ValueError(f"correlated coefficients listed twice: {list(self.correlated)}")
        self._check_covariates()
        if self.wtp_space is not None:
            if self.wtp_space not in names:
                raise ValueError(
                    f"wtp_space={self.wtp_space!r} is not a variable of the model ({names}); "
                    "name the cost variable whose coefficient scales the WTPs"
                )
            if len(names) < 2:
                raise ValueError("a WTP-space model needs a cost variable and at least one other")

    def _check_covariates(self) -> None:
        distributions = {c.name: c.distribution for c in self.coefficients}
        for attribute, what in (("mean_covariates", "mean"), ("sd_covariates", "sd")):
            for name, _ in getattr(self, attribute):
                if name not in distributions:
                    raise ValueError(
                        f"{what} covariates given for {name!r}, which is not a coefficient of "
                        f"the model ({list(distributions)})"
                    )
                if distributions[name] is None:
                    raise ValueError(
                        f"{what} covariates given for {name!r}, which has a fixed coefficient; "
                        "a fixed coefficient's interaction with a covariate is a variable of "
                        f"its own (a column {name}*<covariate>)"
                    )
                if what == "sd" and distributions[name] == "gamma":
                    raise ValueError(
                        f"sd covariates given for {name!r}, a gamma coefficient: its spread is "
                        "its shape, which also moves its mean; use mean covariates (its log "
                        "scale) or a lognormal coefficient"
                    )

    def _check_correlatable(self, name: str) -> None:
        distributions = {c.name: c.distribution for c in self.coefficients}
        if distributions.get(name) is None:
            raise ValueError(f"correlated coefficient {name!r} is not a random coefficient")
        if distributions[name] not in CORRELATABLE:
            raise ValueError(
                f"correlated coefficient {name!r} has distribution {distributions[name]!r}; "
                "only normal and lognormal coefficients can be correlated (through their "
                "underlying normals)"
            )

    @classmethod
    def build(
        cls,
        fixed: Sequence[str] = (),
        random: Mapping[str, str | RandomCoefficient | tuple] | None = None,
        correlated: Sequence[str] | bool = (),
        mean_covariates: Mapping[str, Sequence[str]] | None = None,
        sd_covariates: Mapping[str, Sequence[str]] | None = None,
        wtp_space: str | None = None,
    ) -> ModelSpec:
        """Specification from names: fixed ones first, then random ones, in the order given.

        Args:
            fixed: variables with a fixed coefficient.
            random: ``{variable: distribution}``, see :func:`parse_random`.
            correlated: names of random normal/lognormal coefficients to correlate, or
                ``True`` for all of them (``False``/empty: independent; a single name
                correlates nothing).
            mean_covariates: ``{random coefficient: [covariate columns]}`` shifting its
                location by ``z_n . delta`` (heterogeneity in means).
            sd_covariates: ``{random coefficient: [covariate columns]}`` scaling its spread by
                ``exp(z_n . gamma)`` (heterogeneity in variances).
            wtp_space: the cost variable of a WTP-space model: the other variables'
                parameters are then their WTPs in units of the cost (``beta_k = -beta_p w_k``).

        Example: ``ModelSpec.build(["time"], {"price": "-lognormal", "cl": "normal"})``.
        """
        fixed = tuple(str(n) for n in fixed)
        if len(set(fixed)) != len(fixed):
            raise ValueError(f"fixed variables listed twice: {list(fixed)}")
        random = {str(n): parse_random(str(n), v) for n, v in (random or {}).items()}
        overlap = sorted(set(fixed) & set(random))
        if overlap:
            raise ValueError(f"variables {overlap} are both fixed and random")
        coefficients = [CoefficientSpec(n) for n in fixed]
        coefficients += [CoefficientSpec(n, r.distribution, r.sign) for n, r in random.items()]
        if correlated is True:
            chosen = tuple(n for n, r in random.items() if r.distribution in CORRELATABLE)
        elif correlated is False or correlated is None:
            chosen = ()
        else:
            chosen = tuple(str(n) for n in correlated)
        if len(chosen) == 1:
            cls(tuple(coefficients))._check_correlatable(chosen[0])
            chosen = ()  # one coefficient: nothing to correlate
        # in column order, whatever order the mappings were given in
        order = [c.name for c in coefficients]

        def ordered(mapping):
            pairs = _covariate_pairs(mapping, "covariates")
            return tuple(sorted(pairs, key=lambda p: order.index(p[0]) if p[0] in order else -1))

        return cls(
            tuple(coefficients),
            chosen,
            ordered(mean_covariates),
            ordered(sd_covariates),
            None if wtp_space is None else str(wtp_space),
        )

    # ------------------------------------------------------------------ names
    @property
    def variables(self) -> tuple[str, ...]:
        """Every coefficient's variable, in column order."""
        return tuple(c.name for c in self.coefficients)

    @property
    def fixed(self) -> tuple[str, ...]:
        """Variables with a fixed coefficient."""
        return tuple(c.name for c in self.coefficients if c.distribution is None)

    @property
    def random(self) -> dict[str, RandomCoefficient]:
        """``{variable: RandomCoefficient}`` of the random coefficients, in column order."""
        return {
            c.name: RandomCoefficient(c.distribution, c.sign)
            for c in self.coefficients
            if c.distribution is not None
        }

    @property
    def fixed_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is None)

    @property
    def random_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is not None)

    @property
    def random_coefficients(self) -> tuple[CoefficientSpec, ...]:
        return tuple(self.coefficients[i] for i in self.random_index)

    @property
    def z_random(self) -> tuple[str, ...]:
        """Random coefficients driven by a standard-normal person draw (all but gamma)."""
        return tuple(c.name for c in self.random_coefficients if c.distribution != "gamma")

    @property
    def gamma_random(self) -> tuple[str, ...]:
        """Random coefficients with a gamma mixing distribution."""
        return tuple(c.name for c in self.random_coefficients if c.distribution == "gamma")

    @property
    def has_random(self) -> bool:
        return bool(self.random_index)

    @property
    def covariates(self) -> tuple[str, ...]:
        """Decision-maker covariates of the mixing distribution (mean ones first, then sd
        ones, each once): the columns of the ``(U, Q)`` covariate matrix."""
        names: list[str] = []
        for _, columns in (*self.mean_covariates, *self.sd_covariates):
            names += [c for c in columns if c not in names]
        return tuple(names)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Classical parameter vector: fixed coefficients, first parameter of each random one,
        second parameter of each independent one, then the Cholesky factor of the correlated
        block row by row (``chol.<row>.<col>``), the mean shifts (``<v>:<covariate>``) and the
        log-spread shifts (``ln_sd.<v>:<covariate>``)."""
        random = self.random
        names = list(self.fixed)
        names += [parameter_names(n, r.distribution)[0] for n, r in random.items()]
        names += [
            parameter_names(n, r.distribution)[1]
            for n, r in random.items()
            if n not in self.correlated
        ]
        for i, row in enumerate(self.correlated):
            names += [f"chol.{row}.{col}" for col in self.correlated[: i + 1]]
        for name, columns in self.mean_covariates:
            names += [mean_shift_name(name, c) for c in columns]
        for name, columns in self.sd_covariates:
            names += [spread_shift_name(name, c) for c in columns]
        return tuple(names)

    # Old BayesSpec names, kept for one release.
    names = _deprecated_property("names", "variables")
    fixed_names = _deprecated_property("fixed_names", "fixed")
    random_names = _deprecated_property("random_names", "random", tuple)
    z_random_names = _deprecated_property("z_random_names", "z_random")
    gamma_names = _deprecated_property("gamma_names", "gamma_random")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """``{"fixed": [...], "random": {name: [distribution, sign]}, "correlated": [...]}``,
        plus ``mean_covariates`` / ``sd_covariates`` ``{name: [covariates]}`` when there are
        any (requires the fixed-first column order that :meth:`build` gives)."""
        content: dict[str, Any] = {
            "fixed": list(self.fixed),
            "random": {n: [r.distribution, r.sign] for n, r in self.random.items()},
            "correlated": list(self.correlated),
        }
        for attribute in ("mean_covariates", "sd_covariates"):
            if getattr(self, attribute):
                content[attribute] = {n: list(c) for n, c in getattr(self, attribute)}
        if self.wtp_space is not None:
            content["wtp_space"] = self.wtp_space
        return content

    @classmethod
    def from_dict(cls, content: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict` (extra keys such as ``"class"`` are ignored)."""
        random = {n: RandomCoefficient(v[0], int(v[1])) for n, v in content["random"].items()}
        return cls.build(
            content["fixed"],
            random,
            content.get("correlated") or (),
            content.get("mean_covariates"),
            content.get("sd_covariates"),
            content.get("wtp_space"),
        )

    def describe(self) -> str:
        """``fixed=[...], random={...}, correlated=[...]`` with ``-`` marking negative signs."""
        random = {n: ("-" if r.sign < 0 else "") + r.distribution for n, r in self.random.items()}
        text = f"fixed={list(self.fixed)}, random={random}, correlated={list(self.correlated)}"
        for attribute in ("mean_covariates", "sd_covariates"):
            if getattr(self, attribute):
                text += f", {attribute}={ {n: list(c) for n, c in getattr(self, attribute)} }"
        if self.wtp_space is not None:
            text += f", wtp_space={self.wtp_space!r}"
        return text

    def __repr__(self) -> str:
        return f"ModelSpec({self.describe()})"


def as_model_spec(model: Any) -> ModelSpec:
    """The :class:`ModelSpec` of ``model``: a ``ModelSpec``, anything holding one as ``.spec``
    (the estimators, :class:`~mixlogit.bayes.LatentClassLogit`), or an object with
    ``variables``, ``coefficients`` (``None`` or an object with ``distribution`` and ``sign``
    per variable) and ``correlated``.

    Raises:
        TypeError: ``model`` has none of these.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(getattr(model, "spec", None), ModelSpec):
        return model.spec
    try:
        variables = tuple(model.variables)
    except AttributeError as err:
        raise TypeError(
            f"cannot read a model specification from {type(model).__name__}: it has no "
            "'spec' or 'variables' attribute (expected MixedLogit, MultinomialLogit, "
            "LatentClassLogit or ModelSpec)"
        ) from err
    mixing = tuple(getattr(model, "coefficients", (None,) * len(variables)))
    if len(mixing) != len(variables):
        raise ValueError("model.coefficients is not aligned with model.variables")
    coefficients = tuple(
        CoefficientSpec(str(name))
        if rc is None
        else CoefficientSpec(str(name), str(rc.distribution), int(rc.sign))
        for name, rc in zip(variables, mixing, strict=True)
    )
    correlated = getattr(model, "correlated", ()) or ()
    if correlated is True:
        correlated = [c.name for c in coefficients if c.distribution in CORRELATABLE]
    return ModelSpec(coefficients, tuple(str(c) for c in correlated))
