"""Multinomial and mixed logit models estimated by (simulated) maximum likelihood in JAX.

Quick start::

    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity

    data = ChoiceData(load_electricity(), choice="choice", alternative="alt",
                      situation="chid", panel="id")
    model = MixedLogit(random={v: "normal" for v in ["pf", "cl", "loc", "wk", "tod", "seas"]})
    results = model.fit(data, num_draws=600)
    print(results.summary())

Estimation runs in float64 inside a ``jax.enable_x64`` context (see :mod:`mixlogit.likelihood`);
the global JAX configuration is left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixlogit.arrays import ChoiceArrays, RandomCoefficient
from mixlogit.data import ChoiceData
from mixlogit.draws import make_draws
from mixlogit.likelihood import ParameterLayout
from mixlogit.mixing import DISTRIBUTIONS, standardise_uniform

__all__ = ["ConvergenceWarning", "MixedLogit", "MultinomialLogit"]

#: default bound on the utilities held at once: S * J * chunk doubles (64 MiB)
DEFAULT_CHUNK_ELEMENTS = 2**23


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before meeting its convergence criteria."""


def _parse_random(spec: str | RandomCoefficient | tuple) -> RandomCoefficient:
    if isinstance(spec, RandomCoefficient):
        coefficient = spec
    elif isinstance(spec, str):
        sign = -1 if spec.startswith("-") else 1
        coefficient = RandomCoefficient(spec.lstrip("-+"), sign)
    elif isinstance(spec, tuple) and len(spec) == 2:
        coefficient = RandomCoefficient(str(spec[0]), int(spec[1]))
    else:
        raise ValueError(
            f"random coefficient spec must be a distribution name, '-<name>' for a negative "
            f"coefficient, (name, sign) or RandomCoefficient; got {spec!r}"
        )
    if coefficient.distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"unknown mixing distribution {coefficient.distribution!r}; choose one of "
            f"{DISTRIBUTIONS}"
        )
    if coefficient.sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {coefficient.sign!r}")
    return coefficient


class MixedLogit:
    """Mixed (random-coefficient) logit.

    Args:
        fixed: variables with a fixed coefficient (``"col"``, ``"ASC_<alt>"``, ``"col@<alt>"``).
        random: ``{variable: distribution}`` where distribution is one of
            :data:`mixlogit.mixing.DISTRIBUTIONS`, ``"-lognormal"`` (etc.) for a strictly
            negative coefficient, or a :class:`~mixlogit.arrays.RandomCoefficient`.
        correlated: ``True`` to correlate all normal/lognormal random coefficients through a
            full Cholesky factor, or the list of those to correlate; ``False`` for independent.
    """

    def __init__(
        self,
        fixed: Sequence[str] = (),
        random: Mapping[str, str | RandomCoefficient | tuple] | None = None,
        correlated: bool | Sequence[str] = False,
    ) -> None:
        self.fixed: tuple[str, ...] = tuple(fixed)
        self.random: dict[str, RandomCoefficient] = {
            name: _parse_random(spec) for name, spec in (random or {}).items()
        }
        overlap = set(self.fixed) & set(self.random)
        if overlap:
            raise ValueError(f"variables {sorted(overlap)} are both fixed and random")
        if len(set(self.fixed)) != len(self.fixed):
            raise ValueError(f"fixed variables listed twice: {self.fixed}")
        if correlated is True:
            chosen = [
                n for n, c in self.random.items() if c.distribution in ("normal", "lognormal")
            ]
        elif correlated is False or correlated is None:
            chosen = []
        else:
            chosen = list(correlated)
        for name in chosen:
            if name not in self.random:
                raise ValueError(f"correlated variable {name!r} is not a random coefficient")
            if self.random[name].distribution not in ("normal", "lognormal"):
                raise ValueError(
                    f"correlated variable {name!r} has distribution "
                    f"{self.random[name].distribution!r}; only normal and lognormal coefficients "
                    "can be correlated (through their underlying normals)"
                )
        if len(chosen) == 1:
            chosen = []  # one variable: nothing to correlate
        self.correlated: tuple[str, ...] = tuple(chosen)

    # ------------------------------------------------------------------ specification
    @property
    def variables(self) -> tuple[str, ...]:
        """Every coefficient's variable: fixed ones first, then random ones."""
        return (*self.fixed, *self.random)

    @property
    def coefficients(self) -> tuple[RandomCoefficient | None, ...]:
        """Mixing of each entry of :attr:`variables` (``None`` for fixed)."""
        return (*([None] * len(self.fixed)), *self.random.values())

    @property
    def layout(self) -> ParameterLayout:
        return ParameterLayout(
            fixed=self.fixed,
            random=tuple(self.random),
            mixing=tuple(self.random.values()),
            correlated=self.correlated,
        )

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.layout.names

    def __repr__(self) -> str:
        random = {k: (("-" if v.sign < 0 else "") + v.distribution) for k, v in self.random.items()}
        return (
            f"{type(self).__name__}(fixed={list(self.fixed)}, random={random}, "
            f"correlated={list(self.correlated)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "fixed": list(self.fixed),
            "random": {k: [v.distribution, v.sign] for k, v in self.random.items()},
            "correlated": list(self.correlated),
        }

    @staticmethod
    def from_dict(spec: Mapping[str, Any]) -> MixedLogit:
        if spec.get("class") == "MultinomialLogit":
            return MultinomialLogit(spec["fixed"])
        return MixedLogit(
            spec["fixed"],
            {k: RandomCoefficient(v[0], int(v[1])) for k, v in spec["random"].items()},
            spec["correlated"] or False,
        )

    # ------------------------------------------------------------------ estimation
    def fit(
        self,
        data: ChoiceData,
        *,
        method: str = "simulation",
        num_draws: int = 1000,
        draws: str = "halton",
        seed: int | None = 0,
        init: Mapping[str, float] | np.ndarray | None = None,
        optimizer: str = "bfgs",
        gtol: float = 1e-6,
        maxiter: int = 2000,
        panel: bool = True,
        chunk_size: int | None = None,
        quadrature_tol: float = 1e-3,
        quadrature_nodes: int | None = None,
        hessian: bool = True,
        verbose: bool | int = False,
        progress: bool = False,
        **kwargs: Any,
    ):
        """Estimate the model.

        Args:
            data: the choice data.
            method: ``"simulation"`` (simulated maximum likelihood), ``"quadrature"``
                (converged Gauss-Hermite/Legendre quadrature, one or two random coefficients),
                or ``"nuts"`` / ``"svi"`` (Bayesian, :mod:`mixlogit.bayes`; ``kwargs`` go there).
            num_draws: simulation draws per decision maker.
            draws: ``"halton"``, ``"halton-scrambled"``, ``"halton-shuffled"``, ``"sobol"``,
                ``"mlhs"`` or ``"random"``.
            seed: seed of randomised draws.
            init: starting values by parameter name or as a full vector; default MNL estimates
                for the means and 0.1 for the spreads.
            optimizer: ``"bfgs"``, ``"l-bfgs-b"`` or ``"newton"`` (trust region, exact Hessian).
            gtol: convergence tolerance on the largest absolute gradient entry.
            maxiter: maximum optimiser iterations.
            panel: use the panel structure of ``data`` (one coefficient draw per decision maker).
            chunk_size: draws processed at once (default bounds memory to ~64 MiB of utilities).
            quadrature_tol: target absolute log-likelihood error of the quadrature rule.
            quadrature_nodes: starting nodes per dimension for quadrature (default 16 / 10).
            hessian: compute the Hessian and standard errors.
            verbose: print an iteration log every ``verbose`` iterations (``True`` = 1).
            progress: show progress bars (optimiser iterations with the current
                log-likelihood and largest gradient entry, then the Hessian's columns).

        Returns:
            :class:`~mixlogit.results.EstimationResults`.
        """
        if method in ("nuts", "svi"):
            try:
                from mixlogit.bayes import fit_bayes
            except ImportError as error:
                raise ImportError(
                    f"method={method!r} needs the Bayesian backend mixlogit.bayes, which could "
                    f"not be imported ({error})"
                ) from error
            return fit_bayes(self, data, method=method, **kwargs)
        if kwargs:
            raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
        if method not in ("simulation", "quadrature"):
            raise ValueError(
                f"method must be 'simulation', 'quadrature', 'nuts' or 'svi'; got {method!r}"
            )
        from mixlogit.estimation import estimate

        return estimate(
            self,
            data,
            method=method,
            num_draws=num_draws,
            draws=draws,
            seed=seed,
            init=init,
            optimizer=optimizer,
            gtol=gtol,
            maxiter=maxiter,
            panel=panel,
            chunk_size=chunk_size,
            quadrature_tol=quadrature_tol,
            quadrature_nodes=quadrature_nodes,
            hessian=hessian,
            verbose=verbose,
            progress=progress,
        )


class MultinomialLogit(MixedLogit):
    """Multinomial logit: every coefficient fixed.

    Args:
        variables: ``"col"``, ``"ASC_<alt>"`` or ``"col@<alt>"`` names.
    """

    def __init__(self, variables: Sequence[str] = (), *, fixed: Sequence[str] = ()) -> None:
        super().__init__(fixed=(*variables, *fixed))

    def __repr__(self) -> str:
        return f"MultinomialLogit({list(self.fixed)})"

    def fit(self, data: ChoiceData, **kwargs: Any):
        """Maximum likelihood; robust SEs are clustered by the panel of ``data`` if it has one.

        Keyword arguments as :meth:`MixedLogit.fit` (draw options are ignored).
        """
        kwargs.setdefault("num_draws", 1)
        return super().fit(data, **kwargs)


def prepare_draws(
    model: MixedLogit, num_units: int, num_draws: int, draws: str, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised draws ``(U, R, Kr)`` and log weights ``(R,)`` for simulation."""
    mixing = list(model.random.values())
    if not mixing:
        return np.zeros((1, 1, 0)), np.zeros(1)
    uniforms = make_draws(num_units, num_draws, len(mixing), draws, seed=seed)
    standard = np.stack(
        [standardise_uniform(uniforms[..., k], m.distribution) for k, m in enumerate(mixing)],
        axis=-1,
    )
    return standard, np.full(num_draws, -np.log(num_draws))


def default_chunk(arrays: ChoiceArrays, num_draws: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    per_draw = arrays.X.shape[0] * max(arrays.X.shape[1], 1)
    max_chunk = max(1, DEFAULT_CHUNK_ELEMENTS // per_draw)
    num_chunks = -(-num_draws // max_chunk)
    return -(-num_draws // num_chunks)
