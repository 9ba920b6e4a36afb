"""Simulate choice data from a (mixed) logit with known parameters, for tests and studies."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mixlogit.data import ChoiceData

__all__ = ["simulate_choices"]


def simulate_choices(
    model,
    params: Mapping[str, float],
    *,
    num_people: int = 500,
    situations_per_person: int = 5,
    num_alternatives: int = 3,
    seed: int = 0,
    variable_scale: Mapping[str, float] | None = None,
) -> ChoiceData:
    """Long-format choice data drawn from ``model`` at parameters ``params``.

    Generic variables (``model.variables`` without ``ASC_``/``@``) are i.i.d. normal with
    standard deviation ``variable_scale[name]`` (default 1; a price-like variable named in
    ``variable_scale`` is drawn from a log-normal so that it is positive). ``ASC_<alt>``
    variables use alternatives ``0 .. num_alternatives-1``. Each person gets one draw of the
    random coefficients, kept over their situations (panel), and Gumbel errors per alternative.

    Returns:
        :class:`ChoiceData` with columns ``person``, ``situation``, ``alt``, ``choice`` and the
        variables.
    """
    rng = np.random.default_rng(seed)
    layout = model.layout
    theta = np.array([params[name] for name in layout.names], dtype=np.float64)
    num_s = num_people * situations_per_person
    person = np.repeat(np.arange(num_people), situations_per_person)
    columns: dict[str, np.ndarray] = {}
    scale = dict(variable_scale or {})
    for name in model.variables:
        if name.startswith("ASC_") or "@" in name:
            continue
        if name in scale:
            columns[name] = np.exp(rng.normal(0.0, 0.5, (num_s, num_alternatives))) * scale[name]
        else:
            columns[name] = rng.normal(0.0, 1.0, (num_s, num_alternatives))
    utility = np.zeros((num_s, num_alternatives))
    for k, name in enumerate(layout.fixed):
        utility += theta[k] * _design(name, columns, num_s, num_alternatives)
    if layout.num_random:
        import jax
        import jax.numpy as jnp

        from mixlogit.likelihood import x64
        from mixlogit.models import prepare_draws

        standard, _ = prepare_draws(model, num_people, 1, "random", seed + 1)
        with x64():
            betas = np.asarray(
                jax.jit(layout.random_coefficients)(jnp.asarray(theta), jnp.asarray(standard[:, 0]))
            )
        for k, name in enumerate(layout.random):
            utility += betas[person, k][:, None] * _design(name, columns, num_s, num_alternatives)
    utility += rng.gumbel(size=utility.shape)
    choice = utility.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "person": np.repeat(person, num_alternatives),
            "situation": np.repeat(np.arange(num_s), num_alternatives),
            "alt": np.tile(np.arange(num_alternatives), num_s),
            "choice": (
                np.tile(np.arange(num_alternatives), num_s) == np.repeat(choice, num_alternatives)
            ).astype(int),
        }
    )
    for name, values in columns.items():
        frame[name] = values.ravel()
    return ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )


def _design(name: str, columns: dict, num_s: int, num_j: int) -> np.ndarray:
    if name.startswith("ASC_"):
        out = np.zeros((num_s, num_j))
        out[:, int(name[4:])] = 1.0
        return out
    if "@" in name:
        column, alt = name.rsplit("@", 1)
        out = np.zeros((num_s, num_j))
        out[:, int(alt)] = columns[column][:, int(alt)]
        return out
    return columns[name]
