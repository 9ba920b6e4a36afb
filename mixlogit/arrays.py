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

The specification of a model (which column is a fixed or a random coefficient) is a
:class:`mixlogit.spec.ModelSpec`; ``model.spec.variables`` is the ``variables`` argument the
estimators pass to ``to_arrays``, so column ``k`` of ``X`` is coefficient ``k``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mixlogit.spec import RandomCoefficient

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
