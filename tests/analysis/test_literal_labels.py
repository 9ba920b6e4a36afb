"""Names with ``$`` are drawn literally, not as mathtext (issue 14, item 13).

Matplotlib reads text between two unescaped ``$`` as mathtext: ``"$25,000-$49,999"`` was drawn as
math italics without its dollars and ``"$100k+ #1 $"`` failed to parse, which aborted drawing
the figure and :func:`analysis.report`.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import cbook
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from analysis import plots
from analysis._labels import literal
from analysis.margins import subgroup_gains, subgroup_margins
from analysis.reporting import report

matplotlib.use("Agg")

INCOMES = ["$25,000-$49,999", "$100k+ #1 $", "under 25k"]
METHODS = ["dpo", "$mix$ dpo"]


def _normalised(text: str) -> str:
    """Tick labels may be wrapped onto several lines: compare the words only."""
    return " ".join(text.split())


def _drawn(figure: Figure) -> FigureCanvasAgg:
    """Render ``figure`` with Agg (a mathtext parse error would raise here)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas


def _assert_literal(figure: Figure, label: Text, raw: str) -> None:
    """``label`` is drawn as ``raw``: no mathtext, same text, same width as a plain-text twin."""
    text = label.get_text()
    assert text == literal(text.replace(r"\$", "$"))  # every $ escaped
    assert not cbook.is_math_text(text), text
    # what matplotlib draws for a non-math text: the string with its escapes removed
    assert _normalised(text.replace(r"\$", "$")) == _normalised(raw)
    renderer = figure.canvas.get_renderer()
    twin = figure.text(
        0,
        0,
        text.replace(r"\$", "$"),
        fontproperties=label.get_fontproperties(),
        rotation=label.get_rotation(),
        parse_math=False,
    )
    # mathtext would drop the dollars and use a math font: a different size
    np.testing.assert_allclose(
        twin.get_window_extent(renderer).size, label.get_window_extent(renderer).size, rtol=1e-6
    )
    twin.remove()


def _evaluation(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 240
    income = rng.choice(INCOMES, size=n)
    base = rng.normal(size=n)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "pair": np.arange(n),
                    "annotator_id": np.arange(n) // 4,
                    "method": method,
                    "income": income,
                    "margin": base + lift + rng.normal(scale=0.3, size=n),
                }
            )
            for method, lift in zip(METHODS, (0.0, 0.4), strict=True)
        ],
        ignore_index=True,
    )


def test_literal_escapes_every_dollar_and_nothing_else():
    assert literal("$100k+ #1 $") == r"\$100k+ #1 \$"
    assert literal(3) == "3"
    assert literal("no dollars, #1 & 50%") == "no dollars, #1 & 50%"


def test_margin_and_gain_plots_draw_dollar_names_literally():
    evaluation = _evaluation(20261202)
    margins = subgroup_margins(evaluation, "income", num_boot=200, min_count=1)
    figure = plots.plot_subgroup_margins(margins)
    _drawn(figure)
    ticks = figure.axes[0].get_xticklabels()
    assert sorted(_normalised(t.get_text().replace(r"\$", "$")) for t in ticks) == sorted(INCOMES)
    for tick in ticks:
        raw = next(
            r for r in INCOMES if _normalised(r) == _normalised(tick.get_text().replace(r"\$", "$"))
        )
        _assert_literal(figure, tick, raw)
    legend = {t.get_text().replace(r"\$", "$"): t for t in figure.legends[0].get_texts()}
    for method in METHODS:
        _assert_literal(figure, legend[method], method)

    gains = subgroup_gains(evaluation, "income", baseline="dpo", pair_id="pair", num_boot=200)
    figure = plots.plot_subgroup_gains(gains)
    _drawn(figure)
    ticks = figure.axes[0].get_yticklabels()
    assert len(ticks) == len(INCOMES)
    for tick in ticks:
        raw = next(
            r for r in INCOMES if _normalised(r) == _normalised(tick.get_text().replace(r"\$", "$"))
        )
        _assert_literal(figure, tick, raw)
    legend = {t.get_text().replace(r"\$", "$"): t for t in figure.legends[0].get_texts()}
    _assert_literal(figure, legend["$mix$ dpo"], "$mix$ dpo")


def test_forest_and_density_plots_draw_dollar_names_literally():
    summary = pd.DataFrame(
        {
            "subgroup": INCOMES,
            "n": [80, 90, 70],
            "small": [False, False, False],
            "mean_strength": [1.2, 0.8, 1.0],
            "mean_strength_low": [0.9, 0.5, 0.7],
            "mean_strength_high": [1.5, 1.1, 1.3],
        }
    )
    posterior = SimpleNamespace(
        summary=lambda: summary,
        family="gamma",
        by="income ($ per year)",
        interval=0.9,
        min_count=30,
        idata=SimpleNamespace(
            posterior={"mu_log_mean": xr.DataArray(np.zeros((1, 4)), dims=("chain", "draw"))}
        ),
    )
    figure = plots.plot_subgroup_forest(posterior)
    _drawn(figure)
    for tick, (name, n) in zip(
        figure.axes[0].get_yticklabels(), zip(INCOMES, summary["n"], strict=True), strict=True
    ):
        _assert_literal(figure, tick, f"{name} (n={n})")
    _assert_literal(figure, figure.axes[0].yaxis.label, "income ($ per year)")

    figure = plots.plot_strength_densities(
        {"$5 budget$": ("gamma", {"shape": 2.0, "rate": 4.0}), "$$": ("fixed", {"beta": 0.5})}
    )
    _drawn(figure)
    texts = [t.get_text().replace(r"\$", "$") for t in figure.legends[0].get_texts()]
    assert any(t.startswith("$5 budget$: gamma") for t in texts), texts
    assert any(t.startswith("$$: fixed") for t in texts), texts
    for text in figure.legends[0].get_texts():
        assert not cbook.is_math_text(text.get_text())


def test_report_with_dollar_subgroup_names_is_written(tmp_path):
    evaluation = _evaluation(20261203)
    path = report(
        tmp_path / "report.html",
        evaluation=evaluation,
        by=["income"],
        baseline="dpo",
        pair_id="pair",
        cluster="annotator_id",
        num_boot=200,
        min_count=1,
    )
    text = path.read_text()
    # the policies, margins and gains figures were rendered (a mathtext error used to abort)
    assert text.count('src="data:image/svg+xml;base64,') == 3
    # and the tables give the names as they are
    assert all(f"<td>{name}</td>" in text for name in INCOMES)
