"""HTML report: self-contained, states the computed numbers, reads run directories."""

from __future__ import annotations

import base64
import html
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis.margins import subgroup_gains, subgroup_margins
from analysis.reporting import report
from mixlogit.datasets import ELECTRICITY_LABELS


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
    # policies, trajectories, densities, margins, gains: five embedded SVGs, nothing external
    assert len(re.findall(r'src="data:image/svg\+xml;base64,', text)) == 5
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
    assert f"<b>mixdpo</b> on age = 55+: {best['gain']:+.3f} nats" in text
    assert f"Largest of the {len(gains.subgroups)} subgroup gains (picked after looking" in text


def _csv_tables(text):
    """``{file name: DataFrame}`` of the report's CSV download links."""
    import base64
    import io

    links = re.findall(r'<a download="([^"]+)" href="data:text/csv;base64,([^"]+)"', text)
    return {name: pd.read_csv(io.BytesIO(base64.b64decode(data))) for name, data in links}


def test_summary_box_states_what_the_tables_hold(tmp_path):
    """The summary box opens the report, and each number it states is the number of the
    table below it (read back from the table's CSV link), once per quantity."""
    _write_run(tmp_path / "gamma-hetero", "heterogeneous", [2.0, 1.5, 1.1])
    _write_run(tmp_path / "gamma-homo", "homogeneous", [2.0, 4.0, 8.0])
    evaluation = _evaluation(seed=20261203)
    evaluation["reference_margin"] = np.tile(np.random.default_rng(4).normal(-1.0, 1.0, 300), 2)
    path = report(
        tmp_path / "report.html",
        run_dirs=[tmp_path / "gamma-hetero", tmp_path / "gamma-homo"],
        evaluation=evaluation,
        baseline="dpo",
        pair_id="pair",
        cluster="annotator_id",
        num_boot=400,
        settings={"policy": "tiny"},
        wall_times={"training": 12.5},
    )
    text = path.read_text()
    box = text[text.index('<div class="summary">') : text.index("</div>", text.index("summary"))]
    assert text.index('<div class="summary">') < text.index("<h2>Policies on held-out pairs")
    tables = _csv_tables(text)
    contrast = tables["contrasts.csv"].iloc[0]
    assert contrast["method"] == "mixdpo" and bool(contrast["detected"])
    claim = (
        f"mixdpo is above dpo: {contrast['gain']:+.3f} nats [{contrast['gain_low']:+.3f}, "
        f"{contrast['gain_high']:+.3f}], Holm-adjusted p = {contrast['p_holm']:.2g}"
    )
    assert claim in box
    assert "1 contrast, Holm-adjusted" in box and "(one of 1 comparisons)" not in box
    policies = tables["policies.csv"].set_index("method")
    gains = policies.loc[["dpo", "mixdpo"], "gain_over_reference"]
    assert f"gains {gains.min():+.3f} to {gains.max():+.3f} nats over the reference" in box
    # the gain over the reference and the accuracy are those of the pairs
    mix = evaluation[evaluation["method"] == "mixdpo"]
    assert policies.loc["mixdpo", "accuracy"] == pytest.approx((mix["margin"] > 0).mean())
    gain = (mix["margin"] - mix["reference_margin"]).mean()
    assert policies.loc["mixdpo", "gain_over_reference"] == pytest.approx(gain)
    # the learned CVs: the heterogeneous run's is the higher (0.953 against 0.354)
    assert "highest on heterogeneous (heterogeneous 0.953, homogeneous 0.354)" in box
    # one value per quantity: the contrast's gain is printed with its interval once
    assert text.count(f"{contrast['gain']:+.3f} nats [{contrast['gain_low']:+.3f}") == 1
    # reproducibility footer
    footer = text[text.index("<footer>") :]
    assert "Settings: num_boot=400" in footer and "policy=tiny" in footer
    assert "training 12.5 s" in footer and "Code: " in footer and "numpy " in footer


#: Report arguments of a paired comparison with dpo by age, annotators resampled whole.
PAIRED_AGE = {
    "by": ["age"],
    "baseline": "dpo",
    "pair_id": "pair",
    "cluster": "annotator_id",
    "num_boot": 200,
}


def test_report_sets_side_by_side_and_png_option(tmp_path):
    evaluation = pd.concat(
        [_evaluation(seed=8).assign(dataset="hetero"), _evaluation(seed=9).assign(dataset="ctl")],
        ignore_index=True,
    )
    evaluation["pair"] += np.where(evaluation["dataset"] == "ctl", 10_000, 0)
    path = report(tmp_path / "sets.html", evaluation=evaluation, figure_format="png", **PAIRED_AGE)
    text = path.read_text()
    assert "Subgroup margins: hetero and ctl side by side (shared axes)" in text
    assert (
        "<h3>Subgroup margins on hetero</h3>" in text and "<h3>Gains over dpo on ctl</h3>" in text
    )
    assert 'src="data:image/svg' not in text and text.count('src="data:image/png') == 5
    assert "No difference" not in text  # the lift of 0.4 is detected on both sets
    tables = _csv_tables(text)
    assert set(tables["contrasts.csv"]["dataset"]) == {"hetero", "ctl"}
    with pytest.raises(ValueError, match="figure_format"):
        report(tmp_path / "x.html", evaluation=evaluation, by=["age"], figure_format="jpg")


def test_report_groups_seed_replicates(tmp_path):
    """Three seeds per method: the policies table averages them, a per-seed table lists them,
    the figure draws each seed's mean beside the policy, and the subgroup sections see one
    seed-averaged row per pair (their numbers equal those of the averaged table)."""
    rng = np.random.default_rng(5150)
    one_run = _evaluation(seed=31)
    evaluation = pd.concat(
        [  # each seed shifts every margin of its runs
            one_run.assign(seed=run_seed, margin=one_run["margin"] + rng.normal(0, 0.3))
            for run_seed in (0, 1, 2)
        ],
        ignore_index=True,
    )
    path = report(tmp_path / "seeds.html", evaluation=evaluation, **PAIRED_AGE)
    text = path.read_text()
    tables = _csv_tables(text)
    per_seed = tables["seed_replicates.csv"]
    assert len(per_seed) == 6 and sorted(set(per_seed["seed"])) == [0, 1, 2]
    policies = tables["policies.csv"].set_index("method")
    for method, rows in evaluation.groupby("method"):
        means = rows.groupby("seed")["margin"].mean()
        assert policies.loc[method, "seeds"] == 3
        assert policies.loc[method, "margin"] == pytest.approx(means.mean(), rel=1e-9)
        assert policies.loc[method, "margin_seed_sd"] == pytest.approx(means.std(), rel=1e-9)
    assert html.escape("Each policy's numbers are averaged over its 3 training seeds") in text
    policy_svg = base64.b64decode(
        re.search(r'alt="policies" src="data:image/svg\+xml;base64,([^"]+)"', text).group(1)
    ).decode()
    assert "single seeds)" in policy_svg
    # the open circles of the margin row are the per-seed means
    from analysis import compare_policies
    from analysis.plots import plot_policy_comparison

    comparison = compare_policies(evaluation, baseline="dpo", pair_id="pair", num_boot=100)
    figure = plot_policy_comparison(comparison)
    drawn = sorted(
        float(y)
        for collection in figure.axes[0].collections
        if hasattr(collection, "get_offsets") and len(collection.get_offsets()) == 3
        for _, y in collection.get_offsets()
    )
    np.testing.assert_allclose(drawn, sorted(comparison.per_seed["margin"]), rtol=1e-12)
    averaged = evaluation.groupby(["method", "pair"], as_index=False).agg(
        margin=("margin", "mean"), age=("age", "first"), annotator_id=("annotator_id", "first")
    )
    margins = subgroup_margins(averaged, ["age"], cluster="annotator_id", num_boot=200, seed=0)
    micro = margins.overall.query("method == 'dpo' and kind == 'micro'").iloc[0]
    assert f"micro {micro['mean']:+.3f} nats [{micro['ci_low']:+.3f}" in text


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
        variable_labels=ELECTRICITY_LABELS,
        seed=3,
    )
    text = path.read_text()
    # one histogram per random coefficient and one WTP figure
    assert len(re.findall(r'src="data:image/svg\+xml;base64,', text)) == 3
    # a normal coefficient's population mean and SD are its estimates, as in the table (one
    # value per quantity per page), and the variables read as words
    estimates = fit.table()["estimate"]
    assert (
        f"<b>local supplier (loc)</b>: population mean {estimates['loc']:.4g}, SD "
        f"{abs(estimates['sd.loc']):.4g}; individual" in text
    )
    population = fit.population_coefficients(num_draws=20_000, seed=3)
    wtp = -population["wk"].to_numpy() / population["pf"].to_numpy()
    interval = fit.wtp("wk", "pf", num_draws=20_000, seed=3, parameter_draws=200)
    assert (
        f"WTP well-known supplier (wk) (= -wk/pf): median {np.median(wtp):.4g} (95 % CI of the "
        f"median [{interval['kr_median_q2.5%']:.4g}, {interval['kr_median_q97.5%']:.4g}]), "
        f"5-95 % of people [{np.quantile(wtp, 0.05):.4g}" in text
    )
    assert interval["median"] == pytest.approx(np.median(wtp), rel=1e-12)  # one set of draws
    # tod is fixed, like the price: its WTP is one number, with a Krinsky-Robb interval
    fixed = fit.wtp("tod", "pf", num_draws=20_000, seed=3)
    assert f"(95 % CI of the median [{fixed['kr_q2.5%']:.4g}, {fixed['kr_q97.5%']:.4g}])" in text
    labelled = _csv_tables(text)["estimates.csv"].set_index("parameter")["label"]
    assert labelled["sd.loc"] == "local supplier: sd" and labelled["cl"] == "contract length"
    figures = [
        base64.b64decode(svg).decode()
        for svg in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)
    ]
    assert any("WTP for well-known supplier" in svg for svg in figures)
    assert any("Individual-level local supplier" in svg for svg in figures)
    assert f"log-likelihood {fit.loglik:.3f}" in text
    # Biogeme's header statistics and the correlation of the estimates, as tables
    tables = _csv_tables(text)
    statistics = tables["estimation_statistics.csv"].set_index("statistic")["value"]
    assert float(statistics["log-likelihood"]) == pytest.approx(fit.loglik, rel=1e-12)
    assert float(statistics["rho2"]) == pytest.approx(fit.rho2, rel=1e-12)
    correlation = tables["correlation_of_estimates.csv"].set_index("parameter")
    np.testing.assert_allclose(correlation.to_numpy(), fit.correlation().to_numpy(), rtol=1e-12)
    assert f"Optimiser message: &ldquo;{fit.message}" in text
    with pytest.raises(ValueError, match="price coefficient 'price'"):
        report(tmp_path / "bad.html", choice_fit=fit, price="price")


def test_diagnostics_box_warns_on_each_failed_check():
    from analysis.reporting import _diagnostics_html

    fine = _diagnostics_html(1.003, 850.0, 0, num_chains=4, pareto_k=0.4)
    assert fine.startswith('<p class="note ok">Diagnostics pass: Max r_hat 1.003')
    bad = _diagnostics_html(1.09, 19.0, 5, num_chains=4, pareto_k=0.93)
    assert bad.startswith('<p class="warn"><b>Warning: these draws have not converged.</b>')
    for problem in ("max r_hat 1.090 &gt; 1.01", "min bulk ESS 19 &lt; 400", "5 divergent",
                    "max Pareto k 0.93 &gt; 0.7"):  # fmt: skip
        assert problem in bad, problem
    assert "Pareto" not in _diagnostics_html(1.0, 900.0, 1, num_chains=2)
    one_chain = _diagnostics_html(float("nan"), 900.0, 0, num_chains=1)
    assert one_chain.startswith('<p class="warn">') and "r_hat not computable" in one_chain


def test_prior_posterior_overlay_says_when_the_prior_was_not_moved():
    from analysis._arviz import az
    from analysis.reporting import _prior_posterior_parts

    rng = np.random.default_rng(20261203)
    idata = az.from_dict(
        posterior={
            "mu_log_cv": rng.normal(-0.5, 1.0, (2, 300)),  # the prior, restated
            "mu_log_mean": rng.normal(0.3, 0.1, (2, 300)),  # a tenth of the prior's SD
        },
        prior={
            "mu_log_cv": rng.normal(-0.5, 1.0, (1, 600)),
            "mu_log_mean": rng.normal(0.0, 1.0, (1, 600)),
        },
    )
    parts = _prior_posterior_parts(idata, ["mu_log_mean", "mu_log_cv", "absent"], "test")
    assert parts[0].startswith('<img alt="prior vs posterior test"')
    text = parts[1]
    assert text.startswith('<p class="warn">')
    assert "<b>mu_log_cv</b>: posterior variance" in text and "barely moved" in text
    mean_line = text.removeprefix('<p class="warn">').split("<br>")[0]
    assert mean_line.startswith("<b>mu_log_mean</b>: posterior variance 1% of the prior")
    assert "the data moved it" in mean_line
    assert _prior_posterior_parts(az.from_dict(posterior={"x": rng.normal(size=(2, 10))}),
                                  ["x"], "none") == []  # fmt: skip


@pytest.mark.slow  # one short NUTS run: about 20 s
def test_report_of_a_bayesian_fit_shows_its_diagnostics(tmp_path, panel_choices):
    from mixlogit import MixedLogit

    _, data = panel_choices(30, seed=77)
    fit = MixedLogit(fixed=["x0"], random={"x1": "normal"}).fit(
        data, method="nuts", num_warmup=60, num_samples=40, num_chains=2, seed=3, diagnose=False
    )
    text = report(tmp_path / "bayes.html", choice_fit=fit).read_text()
    diagnostics = fit.check(warn=False)
    assert "<h3>Posterior diagnostics</h3>" in text
    # 40 draws per chain cannot reach a bulk ESS of 200: the section warns
    assert diagnostics["min_ess_bulk"] < 200
    assert f"min bulk ESS {diagnostics['min_ess_bulk']:.0f} &lt; 200" in text
    assert f"elpd_loo {diagnostics['elpd_loo']:.2f}" in text
