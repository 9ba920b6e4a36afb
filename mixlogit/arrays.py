"""Dense array view of choice data, shared by every estimation backend.

Contract between the data layer, the classical estimators and the Bayesian backend
---------------------------------------------------------------------------------
``ChoiceData.to_arrays(variables)`` returns a :class:`ChoiceArrays`: situations ``S`` padded to
the largest choice set ``J`` (slots ordered by alternative id), ``K`` explanatory variables.
Padding slots and unavailable alternatives have ``available == False`` and ``X == 0``; a backend
must give them zero probability (set their utility to ``-inf`` before the softmax).

Variable names understood by ``to_arrays`` (and by the model specifications):

* ``"price"``: a generic column of the long data (same coefficient for every alternative).
* ``"ASC_<alt>"``: alternative-specific constant, 1 in the slot of alternative ``<alt>``
  (``str(alt)``), 0 elsewhere.
* ``"price@<alt>"``: alternative-specific variable, the column in the slot of ``<alt>`` and 0
  elsewhere (its coefficient applies to alternative ``<alt>`` only).

Model specification (``mixlogit.models.MixedLogit`` / ``MultinomialLogit``) exposes:

* ``model.variables: tuple[str, ...]``: every coefficient's variable, fixed ones first (in the
  order given) then random ones (in the order given); this is the ``variables`` argument the
  model passes to ``to_arrays``, so column ``k`` of ``X`` is coefficient ``k``.
* ``model.fixed: tuple[str, ...]`` and ``model.random: dict[str, RandomCoefficient]``.
* ``model.coefficients: tuple[RandomCoefficient | None, ...]`` aligned with ``model.variables``
  (``None`` for fixed).
* ``RandomCoefficient.distribution`` in ``{"normal", "lognormal", "gamma", "triangular",
  "uniform", "truncnormal"}`` and ``RandomCoefficient.sign`` in ``{+1, -1}``: the coefficient
  is ``sign * g(draw)`` with ``g`` the positive-support transform (``sign`` only matters for
  lognormal / gamma / truncated normal, which are positive before the sign is applied).
* ``model.correlated: tuple[str, ...]``: the random normal coefficients that share a full
  covariance (Cholesky factor, lower triangular, in this order); empty when independent.

``model.fit(data, method="nuts" | "svi", **kwargs)`` calls
``mixlogit.bayes.fit_bayes(model, data, method=method, **kwargs)`` (imported lazily).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["ChoiceArrays", "RandomCoefficient"]


class ChoiceArrays(NamedTuple):
    """Padded dense arrays of a choice data set.

    Attributes:
        X: ``(S, J, K)`` float64, variable ``k`` of the alternative in slot ``j`` of situation
            ``s`` (0 where padded or unavailable).
        chosen: ``(S,)`` int64, slot index of the chosen alternative.
        available: ``(S, J)`` bool, False for padding slots and unavailable alternatives.
        panel: ``(S,)`` int64 in ``[0, P)``, decision-maker index (``arange(S)`` without panel).
        weights: ``(S,)`` float64 situation weights (ones by default).
        variable_names: length ``K``, names of the columns of ``X`` (after ASC/ASV expansion).
        alternatives: length ``J``, alternative id occupying slot ``j`` (ordered by id).
        num_panels: ``P``.
    """

    X: np.ndarray
    chosen: np.ndarray
    available: np.ndarray
    panel: np.ndarray
    weights: np.ndarray
    variable_names: tuple[str, ...]
    alternatives: tuple
    num_panels: int


class RandomCoefficient(NamedTuple):
    """Mixing distribution of one random coefficient.

    Attributes:
        distribution: one of ``"normal"``, ``"lognormal"``, ``"gamma"``, ``"triangular"``,
            ``"uniform"``, ``"truncnormal"``.
        sign: ``+1`` or ``-1``; the coefficient is ``sign * g(draw)``.
    """

    distribution: str
    sign: int = 1
