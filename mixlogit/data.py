"""Choice data in long format, with validation that names the offending rows.

A :class:`ChoiceData` holds one row per (choice situation, alternative). Choice sets may differ
between situations (unbalanced): alternatives that are absent from a situation are padding
slots in :meth:`ChoiceData.to_arrays`, never rows the user has to add.

Variable names accepted by :meth:`ChoiceData.to_arrays` (see :mod:`mixlogit.arrays`):
``"col"`` (generic), ``"ASC_<alt>"`` (alternative-specific constant) and ``"col@<alt>"``
(column entering the utility of alternative ``<alt>`` only).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from mixlogit.arrays import ChoiceArrays

__all__ = ["ChoiceData", "ChoiceDataError", "plain_value"]


class ChoiceDataError(ValueError):
    """Invalid choice data; the message names the situation, rows, column or value at fault."""


def plain_value(value):
    """A NumPy scalar as the Python value it holds (anything else unchanged): for messages
    and JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _show(value) -> str:
    """``repr`` of a value with numpy scalars shown as plain Python values."""
    return repr(plain_value(value))


def _check_zero_one(
    frame: pd.DataFrame,
    raw: pd.Series,
    values: np.ndarray,
    what: str,
    allowed: str = "0/1 or boolean",
) -> None:
    """Raise :class:`ChoiceDataError` naming the rows of ``frame`` whose ``values`` (``raw``
    as floats, NaN where not numeric) are neither 0 nor 1, and their values in ``raw``."""
    bad = ~np.isin(values, [0.0, 1.0])
    if bad.any():
        raise ChoiceDataError(
            f"{what} must be {allowed}; rows {_preview(frame.index[bad])} have values "
            f"{_preview(raw[bad].unique())}"
        )


def _preview(values: Sequence, limit: int = 5) -> str:
    values = list(values)
    shown = ", ".join(repr(plain_value(v)) for v in values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"[{shown}]{more}"


class ChoiceData:
    """Validated long-format choice data.

    Args:
        data: one row per situation x alternative.
        choice: column that is 1/True for the chosen alternative, 0/False otherwise; ``None``
            for scenario data without observed choices (forecasting: prediction, market
            shares, elasticities), which the fits and everything conditioned on choices refuse.
        alternative: column with the alternative id (any sortable hashable).
        situation: column with the choice-situation id.
        panel: optional column with the decision-maker id (constant within a situation); the
            mixed logit then draws one coefficient vector per decision maker.
        availability: optional 0/1 column; unavailable alternatives get probability 0.
        weights: optional positive situation weights (constant within a situation).

    Raises:
        ChoiceDataError: with the offending situation ids / row labels / column named.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        choice: str | None,
        alternative: str,
        situation: str,
        panel: str | None = None,
        availability: str | None = None,
        weights: str | None = None,
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        self.choice_column = choice
        self.alternative_column = alternative
        self.situation_column = situation
        self.panel_column = panel
        self.availability_column = availability
        self.weights_column = weights
        roles = {
            "choice": choice,
            "alternative": alternative,
            "situation": situation,
            "panel": panel,
            "availability": availability,
            "weights": weights,
        }
        for role, column in roles.items():
            if column is not None and column not in data.columns:
                raise ChoiceDataError(
                    f"{role} column {column!r} is not in the data; columns are "
                    f"{_preview(data.columns, 12)}"
                )
        for role in ("alternative", "situation", "panel"):
            column = roles[role]
            if column is not None and data[column].isna().any():
                rows = data.index[data[column].isna()]
                raise ChoiceDataError(
                    f"{role} column {column!r} has missing values at rows {_preview(rows)}"
                )
        frame = data.sort_values([situation, alternative], kind="stable")
        self._frame = frame
        self._validate_and_index(frame)

    # ------------------------------------------------------------------ construction helpers
    def with_frame(self, data: pd.DataFrame) -> ChoiceData:
        """The same column roles (choice, alternative, situation, panel, availability,
        weights) on another long-format frame: a scenario with changed attributes, or new
        situations; validated as the constructor validates."""
        return ChoiceData(
            data,
            choice=self.choice_column,
            alternative=self.alternative_column,
            situation=self.situation_column,
            panel=self.panel_column,
            availability=self.availability_column,
            weights=self.weights_column,
        )

    @classmethod
    def from_wide(
        cls,
        data: pd.DataFrame,
        *,
        choice: str,
        alternatives: Sequence[Hashable],
        alternative_columns: Mapping[str, Mapping[Hashable, str]],
        shared: Sequence[str] = (),
        availability: Mapping[Hashable, str] | None = None,
        situation: str | None = None,
        panel: str | None = None,
        weights: str | None = None,
        drop_unchosen: bool = False,
    ) -> ChoiceData:
        """Build from wide format (one row per situation, as Biogeme and Apollo use).

        Args:
            data: one row per choice situation.
            choice: column with the id of the chosen alternative (one of ``alternatives``).
            alternatives: the alternative ids.
            alternative_columns: ``{variable: {alternative: column}}``; an alternative missing
                from the inner mapping gets 0 for that variable (e.g. no headway for car).
            shared: columns describing the situation/decision maker, copied to every
                alternative (use them as ``"income@<alt>"``).
            availability: ``{alternative: column}`` of 0/1 availability; all available if None.
            situation: column with the situation id; the row position is used if None.
            panel: column with the decision-maker id.
            weights: column with situation weights.
            drop_unchosen: drop rows whose choice is not one of ``alternatives`` (e.g. the
                Swissmetro ``CHOICE == 0`` rows) instead of raising.
        """
        alternatives = list(alternatives)
        if choice not in data.columns:
            raise ChoiceDataError(f"choice column {choice!r} is not in the data")
        known = data[choice].isin(alternatives)
        if not known.all():
            if drop_unchosen:
                data = data.loc[known]
            else:
                rows = data.index[~known]
                raise ChoiceDataError(
                    f"choice column {choice!r} has values that are not alternatives "
                    f"{alternatives} at rows {_preview(rows)} (values "
                    f"{_preview(data.loc[rows, choice].unique())}); pass drop_unchosen=True "
                    "to drop them"
                )
        needed = [c for m in alternative_columns.values() for c in m.values()]
        needed += list(shared) + list((availability or {}).values())
        needed += [c for c in (situation, panel, weights) if c is not None]
        missing = [c for c in needed if c not in data.columns]
        if missing:
            raise ChoiceDataError(f"columns {missing} are not in the wide data")
        situation_ids = (
            data[situation].to_numpy() if situation is not None else np.arange(len(data))
        )
        pieces = []
        for alt in alternatives:
            piece = {
                "_situation": situation_ids,
                "_alternative": np.full(len(data), alt, dtype=object),
                "_choice": (data[choice] == alt).to_numpy().astype(np.int64),
            }
            for variable, by_alt in alternative_columns.items():
                column = by_alt.get(alt)
                piece[variable] = data[column].to_numpy() if column is not None else 0.0
            for column in shared:
                piece[column] = data[column].to_numpy()
            if availability is not None and alt in availability:
                piece["_available"] = data[availability[alt]].to_numpy()
            elif availability is not None:
                piece["_available"] = np.ones(len(data), dtype=np.int64)
            if panel is not None:
                piece["_panel"] = data[panel].to_numpy()
            if weights is not None:
                piece["_weight"] = data[weights].to_numpy()
            pieces.append(pd.DataFrame(piece, index=data.index))
        long = pd.concat(pieces, ignore_index=False)
        long["_wide_row"] = long.index
        long = long.reset_index(drop=True)
        try:
            long["_alternative"] = long["_alternative"].astype(type(alternatives[0]))
        except (TypeError, ValueError):
            pass
        return cls(
            long,
            choice="_choice",
            alternative="_alternative",
            situation="_situation",
            panel="_panel" if panel is not None else None,
            availability="_available" if availability is not None else None,
            weights="_weight" if weights is not None else None,
        )

    # ------------------------------------------------------------------ validation
    def _validate_and_index(self, frame: pd.DataFrame) -> None:
        if self.choice_column is not None:
            choice = frame[self.choice_column]
            if not (pd.api.types.is_bool_dtype(choice) or pd.api.types.is_numeric_dtype(choice)):
                raise ChoiceDataError(
                    f"choice column {self.choice_column!r} must be 0/1 or boolean, got dtype "
                    f"{choice.dtype} (values {_preview(choice.unique())})"
                )
            choice_values = choice.to_numpy(dtype=np.float64, na_value=np.nan)
            what = f"choice column {self.choice_column!r}"
            _check_zero_one(frame, choice, choice_values, what)
        situation_codes, situation_ids = pd.factorize(frame[self.situation_column], sort=True)
        alternative_codes, alternative_ids = pd.factorize(frame[self.alternative_column], sort=True)
        duplicated = pd.Series(situation_codes * len(alternative_ids) + alternative_codes)
        duplicated = duplicated.duplicated(keep=False).to_numpy()
        if duplicated.any():
            rows = frame.index[duplicated]
            first = frame.loc[rows[:1]]
            raise ChoiceDataError(
                f"duplicate (situation, alternative) pairs: situation "
                f"{_show(first[self.situation_column].iloc[0])}, alternative "
                f"{_show(first[self.alternative_column].iloc[0])} appears more than once (rows "
                f"{_preview(rows)})"
            )
        num_situations = len(situation_ids)
        if self.availability_column is not None:
            avail_raw = frame[self.availability_column]
            avail_values = pd.to_numeric(avail_raw, errors="coerce").to_numpy(dtype=np.float64)
            what = f"availability column {self.availability_column!r}"
            _check_zero_one(frame, avail_raw, avail_values, what, allowed="0/1")
            available_rows = avail_values == 1.0
        else:
            available_rows = np.ones(len(frame), dtype=bool)
        if self.choice_column is None:
            # scenario data: no choice observed; a placeholder (the first available
            # alternative) keeps the arrays valid for prediction, and nothing reads it
            no_option = np.bincount(
                situation_codes, weights=available_rows, minlength=num_situations
            )
            if (no_option == 0).any():
                sits = situation_ids[no_option == 0]
                raise ChoiceDataError(
                    f"{len(sits)} situation(s) have no available alternative: situations "
                    f"{_preview(sits)}"
                )
            first = pd.Series(available_rows).groupby(situation_codes).idxmax().to_numpy()
            chosen_rows = np.zeros(len(frame), dtype=bool)
            chosen_rows[first] = True
        else:
            chosen_rows = choice_values == 1.0
        chosen_count = np.bincount(situation_codes, weights=chosen_rows, minlength=num_situations)
        if (chosen_count == 0).any():
            sits = situation_ids[chosen_count == 0]
            raise ChoiceDataError(
                f"{len(sits)} situation(s) have no chosen alternative in column "
                f"{self.choice_column!r}: situations {_preview(sits)}"
            )
        if (chosen_count > 1).any():
            sits = situation_ids[chosen_count > 1]
            raise ChoiceDataError(
                f"{len(sits)} situation(s) have more than one chosen alternative in column "
                f"{self.choice_column!r}: situations {_preview(sits)}"
            )
        unavailable_choice = chosen_rows & ~available_rows
        if unavailable_choice.any():
            rows = frame.index[unavailable_choice]
            sits = frame.loc[rows, self.situation_column].unique()
            raise ChoiceDataError(
                f"the chosen alternative is unavailable (column {self.availability_column!r} "
                f"is 0) in situations {_preview(sits)} (rows {_preview(rows)})"
            )
        if self.panel_column is not None:
            per_situation = frame.groupby(situation_codes)[self.panel_column].nunique()
            changing = per_situation.index[per_situation.to_numpy() > 1]
            if len(changing):
                sits = situation_ids[changing]
                raise ChoiceDataError(
                    f"panel id (column {self.panel_column!r}) changes within situations "
                    f"{_preview(sits)}; a situation belongs to one decision maker"
                )
            first_rows = np.unique(situation_codes, return_index=True)[1]
            panel_codes, panel_ids = pd.factorize(
                frame[self.panel_column].to_numpy()[first_rows], sort=True
            )
        else:
            panel_codes = np.arange(num_situations)
            panel_ids = situation_ids
        if self.weights_column is not None:
            weight_raw = frame[self.weights_column]
            if not pd.api.types.is_numeric_dtype(weight_raw):
                raise ChoiceDataError(
                    f"weights column {self.weights_column!r} is not numeric (dtype "
                    f"{weight_raw.dtype})"
                )
            w = weight_raw.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(w) | (w <= 0)
            if bad.any():
                rows = frame.index[bad]
                raise ChoiceDataError(
                    f"weights column {self.weights_column!r} must be finite and > 0; rows "
                    f"{_preview(rows)} have values {_preview(weight_raw[bad].unique())}"
                )
            spread = pd.Series(w).groupby(situation_codes).agg(["min", "max"])
            varying = spread.index[(spread["max"] != spread["min"]).to_numpy()]
            if len(varying):
                raise ChoiceDataError(
                    f"weights (column {self.weights_column!r}) vary within situations "
                    f"{_preview(situation_ids[varying])}; give one weight per situation"
                )
            weights = spread["min"].to_numpy()
        else:
            weights = np.ones(num_situations)

        self._situation_codes = situation_codes
        self._alternative_codes = alternative_codes
        self.situation_ids = np.asarray(situation_ids)
        self.alternatives: tuple = tuple(plain_value(v) for v in alternative_ids)
        self.panel_ids = np.asarray(panel_ids)
        self._panel_codes = np.asarray(panel_codes, dtype=np.int64)
        self._available_rows = available_rows
        self._chosen_rows = chosen_rows
        self.weights = weights
        chosen_slot = np.empty(num_situations, dtype=np.int64)
        chosen_slot[situation_codes[chosen_rows]] = alternative_codes[chosen_rows]
        self._chosen_slot = chosen_slot
        available = np.zeros((num_situations, len(alternative_ids)), dtype=bool)
        available[situation_codes, alternative_codes] = available_rows
        self._available = available

    # ------------------------------------------------------------------ properties
    @property
    def has_choices(self) -> bool:
        """Whether the data hold observed choices (False for ``choice=None`` scenario data)."""
        return self.choice_column is not None

    def require_choices(self, what: str) -> None:
        """Raise :class:`ChoiceDataError` naming ``what`` when the data hold no choices."""
        if not self.has_choices:
            raise ChoiceDataError(
                f"{what} needs observed choices; this ChoiceData was built with choice=None "
                "(scenario data: prediction, market shares and elasticities only)"
            )

    @property
    def frame(self) -> pd.DataFrame:
        """The long data, sorted by (situation, alternative)."""
        return self._frame

    @property
    def num_situations(self) -> int:
        return len(self.situation_ids)

    @property
    def num_alternatives(self) -> int:
        return len(self.alternatives)

    @property
    def num_panels(self) -> int:
        return len(self.panel_ids)

    @property
    def has_panel(self) -> bool:
        return self.panel_column is not None

    def unit_values(
        self, columns: Sequence[str], *, by_panel: bool = True, role: str = "covariate"
    ) -> np.ndarray:
        """``(U, Q)``: one value of each column per decision maker (``panel_ids`` order), or
        per situation (``situation_ids`` order) when ``by_panel`` is False or there is no panel.

        Args:
            role: what the columns are, for the messages (``"membership covariate"``, ...).

        Raises:
            ChoiceDataError: a column that is missing, not numeric, not finite, or that varies
                within a unit (naming the first such unit).
        """
        by_panel = by_panel and self.has_panel
        unit_column = self.panel_column if by_panel else self.situation_column
        ids = self.panel_ids if by_panel else self.situation_ids
        unit_name = "decision maker" if by_panel else "situation"
        frame = self.frame
        values = np.zeros((len(ids), len(columns)))
        for q, column in enumerate(columns):
            if column not in frame.columns:
                raise ChoiceDataError(f"{role} {column!r} is not a column of the data")
            if not pd.api.types.is_numeric_dtype(frame[column]):
                raise ChoiceDataError(f"{role} {column!r} is not numeric")
            raw = frame[column].to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(raw))
            if len(bad):
                unit = frame[unit_column].iloc[bad[0]]
                raise ChoiceDataError(
                    f"{role} {column!r} is not finite for {unit_name} {_show(unit)} (row "
                    f"{_show(frame.index[bad[0]])}: {raw[bad[0]]})"
                )
            grouped = frame.groupby(unit_column, sort=False)[column]
            low, high = grouped.min(), grouped.max()
            varying = low.index[(low != high).to_numpy()]
            if len(varying):
                first = varying[0]
                raise ChoiceDataError(
                    f"{role} {column!r} varies within {unit_name} {_show(first)} (from "
                    f"{low[first]} to {high[first]}); it must describe the "
                    f"{'person' if by_panel else 'situation'}"
                )
            values[:, q] = low.reindex(ids).to_numpy(dtype=np.float64)
        return values

    def __len__(self) -> int:
        return self.num_situations

    def __repr__(self) -> str:
        return (
            f"ChoiceData({self.num_situations} situations, {self.num_alternatives} alternatives "
            f"{_preview(self.alternatives, 8)}, {self.num_panels} "
            f"{'decision makers' if self.has_panel else 'panels (no panel column)'})"
        )

    def asc_names(self, reference: Hashable | None = None) -> list[str]:
        """``ASC_<alt>`` names for every alternative except ``reference`` (default: the first)."""
        reference = self.alternatives[0] if reference is None else reference
        if reference not in self.alternatives:
            raise ChoiceDataError(
                f"reference alternative {reference!r} is not one of {list(self.alternatives)}"
            )
        return [f"ASC_{alt}" for alt in self.alternatives if alt != reference]

    def _alternative_slot(self, label: str, variable: str) -> int:
        for slot, alt in enumerate(self.alternatives):
            if str(alt) == label:
                return slot
        raise ChoiceDataError(
            f"variable {variable!r} refers to alternative {label!r}, which is not one of "
            f"{[str(a) for a in self.alternatives]}"
        )

    # ------------------------------------------------------------------ arrays
    def _numeric_column(self, column: str, variable: str) -> np.ndarray:
        if column not in self._frame.columns:
            raise ChoiceDataError(
                f"variable {variable!r}: column {column!r} is not in the data; columns are "
                f"{_preview(self._frame.columns, 12)}"
            )
        series = self._frame[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            example = (
                f"; e.g. row {_show(bad.index[0])} has {_show(bad.iloc[0])}" if len(bad) else ""
            )
            raise ChoiceDataError(
                f"column {column!r} (variable {variable!r}) is not numeric (dtype "
                f"{series.dtype}){example}"
            )
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values) & self._available_rows
        if bad.any():
            rows = self._frame.index[bad]
            first = rows[0]
            raise ChoiceDataError(
                f"column {column!r} (variable {variable!r}) has non-finite values in available "
                f"alternatives: row {_show(first)} (situation "
                f"{_show(self._frame.loc[first, self.situation_column])}, alternative "
                f"{_show(self._frame.loc[first, self.alternative_column])}) has "
                f"{_show(self._frame.loc[first, column])}; {len(rows)} such rows {_preview(rows)}"
            )
        return values

    def to_arrays(self, variables: Sequence[str], *, check_identified: bool = True) -> ChoiceArrays:
        """Padded arrays for the given variable names (see :mod:`mixlogit.arrays`).

        Args:
            variables: ``"col"``, ``"ASC_<alt>"`` or ``"col@<alt>"`` names, one per coefficient.
            check_identified: raise if a variable does not vary across the alternatives of any
                situation (its coefficient is unidentified) or the variables are collinear.

        Returns:
            :class:`~mixlogit.arrays.ChoiceArrays` with ``X`` of shape ``(S, J, K)``.
        """
        variables = list(variables)
        if len(set(variables)) != len(variables):
            dup = sorted({v for v in variables if variables.count(v) > 1})
            raise ChoiceDataError(f"variables {dup} are listed more than once")
        num_s, num_j = self.num_situations, self.num_alternatives
        X = np.zeros((num_s, num_j, len(variables)))
        s_codes, j_codes = self._situation_codes, self._alternative_codes
        for k, variable in enumerate(variables):
            if not isinstance(variable, str):
                raise ChoiceDataError(f"variable names must be strings, got {variable!r}")
            if variable.startswith("ASC_") and variable not in self._frame.columns:
                slot = self._alternative_slot(variable[4:], variable)
                X[:, slot, k] = 1.0
            elif "@" in variable and variable not in self._frame.columns:
                column, label = variable.rsplit("@", 1)
                slot = self._alternative_slot(label, variable)
                values = self._numeric_column(column, variable)
                rows = j_codes == slot
                X[s_codes[rows], slot, k] = values[rows]
            else:
                X[s_codes, j_codes, k] = self._numeric_column(variable, variable)
        X[~self._available] = 0.0
        if check_identified and variables:
            self._check_identified(X, variables)
        return ChoiceArrays(
            X=X,
            chosen=self._chosen_slot.copy(),
            available=self._available.copy(),
            panel=self._panel_codes.copy(),
            weights=self.weights.astype(np.float64).copy(),
            variable_names=tuple(variables),
            alternatives=self.alternatives,
            num_panels=self.num_panels,
        )

    def _check_identified(self, X: np.ndarray, variables: list[str]) -> None:
        # Logit probabilities only depend on utility differences within a situation, so a
        # variable is identified only through its deviation from the situation mean.
        avail = self._available[..., None]
        counts = self._available.sum(axis=1)[:, None]
        means = (X * avail).sum(axis=1) / counts
        deviations = (X - means[:, None, :]) * avail
        scale = np.abs(deviations).max(axis=(0, 1))
        constant = [variables[k] for k in np.flatnonzero(scale == 0)]
        if constant:
            hint = ""
            if any(not v.startswith("ASC_") and "@" not in v for v in constant):
                hint = (
                    "; a variable that is the same for every alternative of a situation (e.g. "
                    "income) must enter as '<column>@<alternative>'"
                )
            raise ChoiceDataError(
                f"variables {constant} do not vary across the alternatives of any situation, so "
                f"their coefficients are unidentified{hint}"
            )
        flat = (deviations / scale).reshape(-1, len(variables))
        singular = np.linalg.svd(flat, compute_uv=False)
        if singular[-1] <= singular[0] * 1e-10:
            _, _, vt = np.linalg.svd(flat, full_matrices=False)
            null = vt[-1]
            involved = [variables[k] for k in np.flatnonzero(np.abs(null) > 1e-6)]
            raise ChoiceDataError(
                f"variables {involved} are collinear (after removing situation means), so their "
                "coefficients are not identified; drop one of them (e.g. one ASC per model)"
            )
