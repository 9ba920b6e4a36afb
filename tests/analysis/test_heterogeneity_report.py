"""HTML report: self-contained, states the computed numbers, reads run directories."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.margins import subgroup_gains, subgroup_margins
from analysis.reporting import report


def _evaluation(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 300
    age = rng.choice(["18-24", "25-34", "35-54", "55+"], size=n, p=[0.1, 0.3, 0.4, 0.2])
    base = rng.normal(0.5, 1.0, n) - 0.8 * (age == "55+")
    frames = [
        pd.DataFrame(
            {
                "pair": np.arange(n),
                "annotator_id": np.arange(n) // 3,
                "method": method,
                "age": age,
                "conversation_type": rng.choice(["values", "unguided"], size=n),
                "margin": base + lift * (1 + (age == "55+")) + rng.normal(0, 0.2, n),
            }
        )
        for method, lift in (("dpo", 0.0), ("mixdpo", 0.4))
    ]
    return pd.concat(frames, ignore_index=True)


def _write_run(directory, dataset: str, shapes: list[float]) -> None:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"dataset": dataset}))
    with (directory / "log.jsonl").open("w") as handle:
        for step, shape in enumerate(shapes):
            record = {
                "step": 10 * step,
                "loss": 0.69,
                "strength/mean": shape / 16.7,
                "strength/variance": shape / 16.7**2,
                "strength/cv": 1 / math.sqrt(shape),
                "strength/shape": shape,
                "strength/rate": 16.7,
            }
            handle.write(json.dumps(record) + "\n")


def test_report_is_self_contained_and_states_the_numbers(tmp_path):
    _write_run(tmp_path / "gamma-hetero", "heterogeneous", [2.0, 1.5, 1.1])
    _write_run(tmp_path / "gamma-homo", "homogeneous", [2.0, 4.0, 8.0])
    evaluation = _evaluation()
    csv = tmp_path / "evaluation.csv"
    evaluation.to_csv(csv, index=False)
    path = report(
        tmp_path / "out" / "report.html",
        run_dirs=[tmp_path / "gamma-hetero", tmp_path / "gamma-homo"],
        evaluation=csv,
        baseline="dpo",
        pair_id="pair",
        cluster="annotator_id",
        num_boot=300,
    )
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # trajectories, densities, margins, gains: four embedded PNGs, no external references
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4
    assert not re.search(r'src="(?!data:)', text)
    assert (
        "gamma-hetero</b> (gamma on heterogeneous): mean 0.06587, variance 0.003944, CV 0.953"
        in text
    )
    margins = subgroup_margins(
        evaluation, ["age", "conversation_type"], cluster="annotator_id", num_boot=300, seed=0
    )
    micro = margins.overall.query("method == 'dpo' and attribute == 'age' and kind == 'micro'")
    assert f"micro {micro['mean'].iloc[0]:+.3f} nats [{micro['ci_low'].iloc[0]:+.3f}" in text
    assert "lowest: 55+" in text
    gains = subgroup_gains(
        evaluation,
        ["age", "conversation_type"],
        baseline="dpo",
        pair_id="pair",
        cluster="annotator_id",
        num_boot=300,
        seed=0,
    )
    best = gains.subgroups.loc[gains.subgroups["gain"].idxmax()]
    assert best["subgroup"] == "55+"  # the simulated doubled lift
    assert f"Largest: <b>mixdpo</b> on age = 55+: {best['gain']:+.3f} nats" in text


def test_report_needs_something_to_report(tmp_path):
    with pytest.raises(ValueError, match="nothing to report"):
        report(tmp_path / "empty.html")
    with pytest.raises(ValueError, match="no subgroup column"):
        report(tmp_path / "r.html", evaluation=pd.DataFrame({"margin": [1.0], "x": ["a"]}))


def test_report_of_a_choice_fit_states_population_and_wtp_numbers(tmp_path):
    from mixlogit import ChoiceData, MixedLogit, load_electricity

    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    fit = MixedLogit(random={"loc": "normal", "wk": "normal"}, fixed=["pf", "cl", "tod"]).fit(
        data, num_draws=20, verbose=0
    )
    path = report(
        tmp_path / "choice.html",
        choice_fit=fit,
        price="pf",
        price_units="cents/kWh",
        coefficient_units={"loc": "utility of a local supplier"},
        seed=3,
    )
    text = path.read_text()
    # one histogram per random coefficient and one WTP figure
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3
    population = fit.population_coefficients(num_draws=20_000, seed=3)
    loc = population["loc"]
    assert f"<b>loc</b>: population mean {loc.mean():.4g}, SD {loc.std():.4g}" in text
    wtp = -population["wk"].to_numpy() / population["pf"].to_numpy()
    assert f"WTP wk (= -wk/pf): median {np.median(wtp):.4g}" in text
    assert f"log-likelihood {fit.loglik:.3f}" in text
    with pytest.raises(ValueError, match="price coefficient 'price'"):
        report(tmp_path / "bad.html", choice_fit=fit, price="price")
