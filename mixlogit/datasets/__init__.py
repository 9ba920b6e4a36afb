"""Classic discrete-choice data sets shipped with mixlogit (provenance in ``README.md`` here).

Every loader returns a fresh :class:`pandas.DataFrame` read from a gzipped file inside the
package; nothing is downloaded.

* :func:`load_electricity`: Train's electricity supplier stated-preference panel, long format
  (17,232 rows = 4,308 situations x 4 alternatives, 361 people).
* :func:`load_swissmetro`: Swissmetro stated-preference survey, wide format (10,728 rows).
* :func:`swissmetro_choice_data`: the same as Biogeme's examples b01-b05 prepare it
  (6,768 situations, times and costs / 100), as :class:`~mixlogit.ChoiceData`.
* :func:`load_car`: McFadden & Train (2000) car choice, wide format (4,654 rows, 6 alternatives).
* :func:`load_modecanada`: ModeCanada intercity mode choice, long format (15,520 rows).
* :func:`load_heating`: Train's California heating-system choice, wide format (900 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from mixlogit.data import ChoiceData

__all__ = [
    "ELECTRICITY_LABELS",
    "ELECTRICITY_UNITS",
    "load_car",
    "load_electricity",
    "load_heating",
    "load_modecanada",
    "load_swissmetro",
    "swissmetro_choice_data",
]


def _read(file_name: str, **read_csv_kwargs) -> pd.DataFrame:
    with resources.files(__name__).joinpath(file_name).open("rb") as handle:
        return pd.read_csv(handle, compression="gzip", **read_csv_kwargs)


#: Words for the electricity variables, for figure and table labels (codes stay the names).
ELECTRICITY_LABELS: dict[str, str] = {
    "pf": "fixed price",
    "cl": "contract length",
    "loc": "local supplier",
    "wk": "well-known supplier",
    "tod": "time-of-day rates",
    "seas": "seasonal rates",
}

#: What one unit of each electricity coefficient is (``pf`` in cents/kWh, ``cl`` in years,
#: the others 0/1 dummies).
ELECTRICITY_UNITS: dict[str, str] = {
    "pf": "utility per cent/kWh",
    "cl": "utility per year of contract",
    "loc": "utility of a local supplier",
    "wk": "utility of a well-known supplier",
    "tod": "utility of time-of-day rates",
    "seas": "utility of seasonal rates",
}


def load_electricity() -> pd.DataFrame:
    """Electricity supplier choice (Train), long format, one row per situation x alternative.

    Columns: ``choice`` (bool, True for the chosen supplier), ``id`` (person, 1..361), ``alt``
    (1..4), ``pf`` (fixed price, cents/kWh), ``cl`` (contract length, years), ``loc`` (local
    supplier), ``wk`` (well-known supplier), ``tod`` (time-of-day rates), ``seas`` (seasonal
    rates), ``chid`` (choice situation, 1..4308). :data:`ELECTRICITY_LABELS` and
    :data:`ELECTRICITY_UNITS` give the variables in words for figures.
    """
    return _read("electricity.csv.gz")


def load_swissmetro() -> pd.DataFrame:
    """Swissmetro stated-preference survey (Bierlaire et al. 2001), wide format.

    One row per situation; alternatives 1 = train, 2 = Swissmetro, 3 = car; ``CHOICE`` is the
    chosen alternative (0 = unknown, usually dropped), ``*_AV`` availability, ``*_TT`` travel
    time (minutes), ``*_CO`` cost (CHF), ``*_HE`` headway (minutes), ``ID`` the respondent.
    """
    return _read("swissmetro.dat.gz", sep="\t")


def swissmetro_choice_data(
    rows: int | None = None,
    seed: int = 0,
    *,
    panel: bool = False,
    covariates: Sequence[str] = (),
) -> ChoiceData:
    """Swissmetro as Biogeme's examples b01-b05 prepare it, as :class:`~mixlogit.ChoiceData`.

    Situations with ``PURPOSE`` in {1, 3} and a known ``CHOICE`` (6,768); alternatives 1 =
    train, 2 = Swissmetro, 3 = car with their availabilities; variables ``time`` (``*_TT``,
    hundreds of minutes) and ``cost`` (``*_CO``, hundreds of CHF; train and Swissmetro cost 0
    for annual-pass holders, ``GA == 1``).

    Args:
        rows: a random subset of that many situations (``seed``), or all.
        panel: group situations by respondent (``ID``, 752 people).
        covariates: columns of the respondent copied to every alternative (``MALE``,
            ``FIRST``, ``GA``, ``AGE``, ``INCOME``, ...: mixing or membership covariates).
    """
    from mixlogit.data import ChoiceData

    frame = load_swissmetro()
    frame = frame.loc[frame.PURPOSE.isin([1, 3]) & (frame.CHOICE != 0)].copy()
    if rows is not None:
        frame = frame.sample(rows, random_state=seed)
    frame["TRAIN_COST"] = frame.TRAIN_CO * (frame.GA == 0) / 100.0
    frame["SM_COST"] = frame.SM_CO * (frame.GA == 0) / 100.0
    frame["CAR_COST"] = frame.CAR_CO / 100.0
    for mode in ("TRAIN", "SM", "CAR"):
        frame[f"{mode}_TIME"] = frame[f"{mode}_TT"] / 100.0
    return ChoiceData.from_wide(
        frame,
        choice="CHOICE",
        alternatives=[1, 2, 3],
        alternative_columns={
            "time": {1: "TRAIN_TIME", 2: "SM_TIME", 3: "CAR_TIME"},
            "cost": {1: "TRAIN_COST", 2: "SM_COST", 3: "CAR_COST"},
        },
        availability={1: "TRAIN_AV", 2: "SM_AV", 3: "CAR_AV"},
        shared=list(covariates),
        panel="ID" if panel else None,
    )


def load_car() -> pd.DataFrame:
    """Car choice stated preferences (McFadden & Train 2000), wide format, 6 alternatives.

    ``choice`` is ``"choice1"`` .. ``"choice6"``; per-alternative columns end in the alternative
    number (``price1`` .. ``price6``, ``range*``, ``acc*``, ``speed*``, ``pollution*``, ``size*``,
    ``space*``, ``cost*``, ``station*``, ``type*``, ``fuel*``).
    """
    return _read("car.csv.gz").drop(columns=["rownames"])


def load_modecanada() -> pd.DataFrame:
    """ModeCanada intercity travel (Forinash & Koppelman 1993), long format, unbalanced sets.

    Columns: ``case`` (situation), ``alt`` (train, car, bus, air), ``choice`` (0/1), ``dist``,
    ``cost``, ``ivt`` (in-vehicle time), ``ovt`` (out-of-vehicle time), ``freq``, ``income``,
    ``urban``, ``noalt`` (number of alternatives available in the situation).
    """
    return _read("ModeCanada.csv.gz").drop(columns=["Unnamed: 0"])


def load_heating() -> pd.DataFrame:
    """Heating-system choice in California houses (Train), wide format, 5 alternatives.

    ``depvar`` is the chosen system (gc, gr, ec, er, hp); ``ic.<alt>`` installation cost and
    ``oc.<alt>`` annual operating cost; ``income``, ``agehed``, ``rooms``, ``region``.
    """
    return _read("heating_data.csv.gz")
