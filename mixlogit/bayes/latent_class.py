"""Latent-class logit specification (class indicator summed out exactly), fitted by NUTS/SVI
(:func:`mixlogit.bayes.fit_bayes`) or by maximum likelihood
(:func:`mixlogit.estimation.fit.estimate_latent_class`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mixlogit.estimation.latent_class import LatentClassSpec
from mixlogit.spec import CoefficientSpec, ModelSpec

__all__ = ["LatentClassLogit"]


class LatentClassLogit:
    """Latent-class logit: ``C`` classes, each with its own fixed coefficients.

    The probability of person ``n``'s sequence of choices is
    ``sum_c pi_c prod_t P(y_nt | beta_c)``: the class indicator is enumerated (summed out in
    closed form), never sampled. Class labels are identified by ordering the coefficient
    ``order_by`` increasingly across classes. Priors: ``pi ~ Dirichlet(2, ..., 2)`` and each
    class coefficient ``~ Normal(0, 10)`` (see :class:`~mixlogit.bayes.priors.BayesPriors`).

    Args:
        variables: names of the variables (columns of the choice arrays / ``ChoiceData``
            variables, ``ASC_<alt>`` and ``var@<alt>`` understood by ``ChoiceData``).
        num_classes: number of classes ``C >= 2``.
        order_by: variable whose class coefficients are ordered (default: the first). Pick one
            whose value differs clearly between classes.
        membership: decision-maker columns of the class-membership logit (maximum likelihood
            only): ``log pi_c / pi_0 = share.class<c> + sum_z z.class<c> * z``.

    Example:
        >>> lc = LatentClassLogit(["price", "time"], num_classes=2)
        >>> res = lc.fit(data, method="nuts")  # doctest: +SKIP
        >>> res.class_membership()  # doctest: +SKIP
        >>> ml = lc.fit(data, method="ml")  # classical, with standard errors  # doctest: +SKIP
    """

    def __init__(
        self,
        variables: Sequence[str],
        num_classes: int = 2,
        order_by: str | None = None,
        membership: Sequence[str] = (),
    ) -> None:
        variables = tuple(str(v) for v in variables)
        if not variables:
            raise ValueError("LatentClassLogit needs at least one variable")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        order_by = variables[0] if order_by is None else str(order_by)
        if order_by not in variables:
            raise ValueError(f"order_by {order_by!r} is not one of the variables {variables}")
        self.spec = ModelSpec(tuple(CoefficientSpec(v) for v in variables))
        self.num_classes = num_classes
        self.order_by = order_by
        self.membership = tuple(str(z) for z in membership)
        self.latent = LatentClassSpec(self.spec, num_classes, order_by, self.membership)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.spec.variables

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the maximum-likelihood parameters (see :attr:`latent`)."""
        return self.latent.parameter_names

    def fit(self, data: Any, method: str = "nuts", **kwargs: Any):
        """Fit by NUTS or SVI (``method="nuts"``, the default, or ``"svi"``; keyword arguments
        as :func:`mixlogit.bayes.fit_bayes`) or by maximum likelihood (``method="ml"``;
        keyword arguments as :func:`mixlogit.estimation.fit.estimate_latent_class`:
        ``num_starts``, ``start_seed``, ``init``, ``fix``, ``bounds``, ...)."""
        if method == "ml":
            from mixlogit.estimation.fit import estimate_latent_class

            return estimate_latent_class(self, data, **kwargs)
        if self.membership:
            raise ValueError(
                f"membership covariates {list(self.membership)} are estimated by maximum "
                "likelihood only (method='ml'); the Bayesian latent-class model has constant "
                "shares"
            )
        from mixlogit.bayes.fit import fit_bayes

        return fit_bayes(self, data, method=method, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"class": "LatentClassLogit", **self.latent.to_dict()}

    def __repr__(self) -> str:
        return (
            f"LatentClassLogit(variables={list(self.variables)}, num_classes={self.num_classes}, "
            f"order_by={self.order_by!r}"
            + (f", membership={list(self.membership)})" if self.membership else ")")
        )
