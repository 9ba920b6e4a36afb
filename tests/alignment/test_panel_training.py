"""Annotator-level MixDPO training: config, trainer plumbing, and the identification claim.

The claim (annotator-level MixDPO learns a clearly higher strength CV on heterogeneous panel
data than on its homogeneous control, and with ``strength_covariates=["subgroup"]`` the
subgroup means in the true order) is tested twice, both times on data generated here with
fresh seeds, with group structures that differ from the shipped defaults (three subgroups,
seed 0):

* fast: the annotator-panel objective with the true reward gaps up to a learned scale (the best
  a policy can do), 40 full-batch Adam steps; three subgroups of other families and means;
* slow: the tiny model, one pass at the default strength learning rate with the library's
  defaults (the moving average of the strength, ``MixDPOConfig.strength_average_half_life``;
  the panel memory, ``strength_panel_memory``; and the end-of-training refit of the strength
  to the final policy, ``strength_refit``), on the five seeds
  ``benchmarks.bench_panel_training.HOLDOUT_SEEDS`` (6001-6005) of the benchmark's
  ``holdout`` structure (four subgroups of other families, means and shares). Structure and
  seeds were fixed before any run on them; the refit was developed on the ``development``
  structure's seeds 3001-3005 only (``benchmarks/results/panel_training_development_refit.json``:
  order right in 5 of 5 with it, 2 of 5 without). Measured on the holdout, once
  (``benchmarks/results/panel_training_holdout.json``): refit CV ratios 20.18, 21.76, 23.88,
  3.87, 3.46 and the subgroup order right in all five; the training iterate beside it: ratios
  7.99, 4.25, 4.65, 2.04, 5.92 and the order wrong in 6002. Before the refit, the claim's
  order part failed on the earlier evaluation seeds 4001-4005 (4001 swapped two subgroups;
  the benchmark's docstring has the history).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from alignment import MixDPOConfig
from alignment.config import MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE, MEAN_CV_STRENGTH_LEARNING_RATE
from alignment.datasets.annotator_panels import make_panel_preference_data
from alignment.datasets.semisynthetic import SubgroupSpec
from alignment.losses.panel import panel_mixdpo_loss
from mixlogit.conditional import StrengthDesign
from mixlogit.torch.conditional import ConditionalStrength


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: threads only add overhead (several times slower on a loaded 2-core CPU)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- config


def _config(tmp_path, **kwargs) -> MixDPOConfig:
    settings = {
        "output_dir": str(tmp_path),
        "report_to": "none",
        "per_device_train_batch_size": 4,
        "num_train_epochs": 1,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "logging_steps": 2,
        "disable_tqdm": True,
        "save_strategy": "no",
        "seed": 0,
        "dataloader_pin_memory": False,
        "strength_family": "gamma",
        **kwargs,
    }
    return MixDPOConfig(**settings)


def test_pair_level_natural_stays_the_default_with_the_papers_learning_rate(tmp_path):
    args = _config(tmp_path)
    assert args.strength_level == "pair"
    assert args.strength_parameterisation == "natural"
    assert args.strength_learning_rate == 1e-4
    annotator = _config(tmp_path, strength_level="annotator")
    assert annotator.strength_parameterisation == "mean_cv"
    assert annotator.strength_learning_rate == MEAN_CV_STRENGTH_LEARNING_RATE
    covariates = _config(tmp_path, strength_covariates="subgroup")
    assert covariates.strength_covariates == ["subgroup"]
    assert covariates.panel_loss and covariates.conditional_strength
    explicit = _config(tmp_path, strength_level="annotator", strength_learning_rate=0.02)
    assert explicit.strength_learning_rate == 0.02
    # the learned strength is a moving average of the mean_cv iterates, the last natural one
    assert annotator.strength_average_half_life == MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE
    assert covariates.strength_average_half_life == MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE
    assert args.strength_average_half_life == 0.0
    # the end-of-training refit: on for the panel and covariate configurations
    assert annotator.strength_refit and covariates.strength_refit and not args.strength_refit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strength_level": "rater"}, "strength_level must be one of"),
        ({"pairs_per_annotator": 3}, "pairs_per_annotator applies to strength_level='annotator'"),
        ({"strength_level": "annotator", "pairs_per_annotator": 0}, "positive integer"),
        ({"strength_level": "annotator", "loss_type": "dpo"}, "needs loss_type 'mixdpo'"),
        ({"strength_covariates": ["subgroup"], "loss_type": "dpo"}, "needs loss_type 'mixdpo'"),
        (
            {"strength_level": "annotator", "strength_parameterisation": "natural"},
            "need strength_parameterisation='mean_cv'",
        ),
        ({"strength_parameterisation": "log"}, "strength_parameterisation must be one of"),
        ({"strength_covariates": ["subgroup", "subgroup"]}, "repeated"),
        (
            {"strength_level": "annotator", "strength_covariates": ["annotator_id"]},
            "cannot also be a strength covariate",
        ),
        ({"strength_covariates": ["subgroup"], "strength_pooling_scale": -1.0}, "pooling_scale"),
        ({"strength_level": "annotator", "strength_average_half_life": -1.0}, "half_life"),
        ({"strength_average_half_life": float("inf")}, "half_life"),
        ({"strength_panel_memory": "yes"}, "strength_panel_memory must be True or False"),
        ({"strength_refit": "yes"}, "strength_refit must be True or False"),
        ({"strength_refit": True}, "strength_refit applies to strength_level='annotator'"),
    ],
)
def test_config_errors_name_the_setting(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- trainer

SMALL_SUBGROUPS = (
    SubgroupSpec("keen", "lognormal", {"loc": 1.0, "scale": 0.3}),
    SubgroupSpec("vague", "gamma", {"shape": 3.0, "rate": 12.0}),
)


@pytest.fixture(scope="module")
def small_panels():
    return make_panel_preference_data(
        num_pairs=16, num_annotators=8, pairs_per_annotator=6, subgroups=SMALL_SUBGROUPS, seed=77
    )


@pytest.fixture(scope="module")
def small_tokenizer(small_panels):
    from alignment.policy_models import build_word_tokenizer

    train, test = small_panels["train"], small_panels["test"]
    return build_word_tokenizer(
        [t for d in (train, test) for c in ("prompt", "chosen", "rejected") for t in d[c]]
    )


def _trainer(args, train, tokenizer, **kwargs):
    from alignment import MixDPOTrainer, tiny_causal_lm

    return MixDPOTrainer(
        tiny_causal_lm(len(tokenizer), seed=0),
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        **kwargs,
    )


def test_annotator_level_training_logs_checkpoints_and_resumes(
    tmp_path, small_panels, small_tokenizer
):
    train = small_panels["train"]
    settings = {
        "strength_level": "annotator",
        "strength_covariates": ["subgroup", "experience"],
        "gradient_accumulation_steps": 2,
        "save_strategy": "steps",
        "save_steps": 2,
        "per_device_train_batch_size": 3,
    }
    trainer = _trainer(_config(tmp_path, **settings), train, small_tokenizer)
    # every batch keeps whole chunks of one annotator's pairs
    groups = np.asarray(trainer.train_dataset["strength_group"])
    batches = list(trainer.get_train_dataloader().batch_sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(train)))
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    for key in ("strength/mean", "strength/cv", "strength/keen/mean", "strength/vague/cv"):
        assert key in logged
    checkpoint = max(
        (p for p in os.listdir(tmp_path) if p.startswith("checkpoint-")),
        key=lambda p: int(p.split("-")[1]),
    )
    with open(tmp_path / checkpoint / "strength_config.json") as handle:
        saved = json.load(handle)
    annotators = sorted(set(train["annotator_id"]))
    assert saved["annotators"] == annotators
    assert saved["conditional"]["design"]["levels"] == ["subgroup"]
    assert saved["conditional"]["design"]["level_values"] == [["keen", "vague"]]
    assert saved["conditional"]["design"]["numeric"] == ["experience"]
    index = {a: k for k, a in enumerate(annotators)}
    assert groups.tolist() == [index[a] for a in train["annotator_id"]]

    resumed = _trainer(_config(tmp_path / "resumed", **settings), train, small_tokenizer)
    resumed._load_from_checkpoint(str(tmp_path / checkpoint))
    state = torch.load(tmp_path / checkpoint / "strength.pt", weights_only=True)
    for name, value in resumed.strength.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    # a checkpoint of another design is refused
    other = _trainer(
        _config(tmp_path / "other", strength_level="annotator", strength_covariates=["subgroup"]),
        train,
        small_tokenizer,
    )
    with pytest.raises(ValueError, match="covariate design"):
        other._load_from_checkpoint(str(tmp_path / checkpoint))


def test_the_strength_learning_rate_moves_the_mean_cv_parameters_in_one_pass(
    tmp_path, small_panels, small_tokenizer
):
    # the training iterate itself: no end-of-training refit
    args = _config(tmp_path, strength_level="annotator", strength_refit=False)
    trainer = _trainer(args, small_panels["train"], small_tokenizer)
    start = {k: v.detach().clone() for k, v in trainer.strength.named_parameters()}
    trainer.train()
    steps = trainer.state.global_step
    # the panel memory (default) saw every training pair once in the pass
    assert len(trainer.loss_fn.memory) == len(small_panels["train"])
    for name, value in trainer.strength.named_parameters():
        moved = abs(float(value.detach() - start[name]))
        # Adam moves each parameter by at most ~lr per step; the default moves it visibly
        assert (
            0.1 * MEAN_CV_STRENGTH_LEARNING_RATE
            < moved
            <= 1.5 * steps * MEAN_CV_STRENGTH_LEARNING_RATE
        )


class _Iterates(TrainerCallback):
    """Records the strength parameters after every optimiser step."""

    def __init__(self, strength):
        self.strength = strength
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({k: v.detach().clone() for k, v in self.strength.named_parameters()})


@pytest.mark.parametrize("half_life", [0.0, 3.0])
def test_the_learned_strength_is_the_moving_average_of_the_iterates(
    tmp_path, small_panels, small_tokenizer, half_life
):
    args = _config(
        tmp_path,
        strength_level="annotator",
        strength_average_half_life=half_life,
        strength_refit=False,
    )
    trainer = _trainer(args, small_panels["train"], small_tokenizer)
    start = {k: v.detach().clone() for k, v in trainer.strength.named_parameters()}
    iterates = _Iterates(trainer.strength)
    trainer.add_callback(iterates)
    trainer.train()
    assert len(iterates.steps) == trainer.state.global_step > 5
    expected = start
    if half_life:
        decay = 0.5 ** (1 / half_life)
        for step in iterates.steps:
            expected = {k: decay * v + (1 - decay) * step[k] for k, v in expected.items()}
    else:
        expected = iterates.steps[-1]
    for name, value in trainer.strength.named_parameters():
        torch.testing.assert_close(value.detach(), expected[name])
        if half_life:  # the average is not the last iterate
            assert not torch.allclose(value.detach(), iterates.steps[-1][name])
    assert trainer.strength_values()["strength/cv"] == pytest.approx(
        float(trainer.strength.coefficient_of_variation.detach())
    )


def test_a_resumed_run_continues_the_strength_average(tmp_path, small_panels, small_tokenizer):
    settings = {
        "strength_level": "annotator",
        "save_strategy": "steps",
        "save_steps": 4,
        "strength_refit": False,
    }
    train = small_panels["train"]
    whole = _trainer(_config(tmp_path / "whole", **settings), train, small_tokenizer)
    whole.train()
    assert os.path.exists(tmp_path / "whole" / "checkpoint-4" / "strength_average.pt")
    resumed = _trainer(_config(tmp_path / "resumed", **settings), train, small_tokenizer)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-4"))
    for name, value in resumed.strength.named_parameters():
        torch.testing.assert_close(value, dict(whole.strength.named_parameters())[name])


def test_the_refit_is_the_strengths_map_at_the_final_policy(
    tmp_path, small_panels, small_tokenizer
):
    from alignment.losses.panel import refit_panel_strength

    settings = {"strength_level": "annotator", "strength_covariates": ["subgroup"]}
    trained = _trainer(
        _config(tmp_path / "trained", strength_refit=False, **settings),
        small_panels["train"],
        small_tokenizer,
    )
    trained.train()
    refit = _trainer(
        _config(tmp_path / "refit", **settings),  # refit by default
        small_panels["train"],
        small_tokenizer,
    )
    refit.train()
    # the same training (the refit comes after it), then the strength moves
    record = refit.state.log_history[-1]
    assert record["strength_refit/iterations"] >= 1
    assert record["strength_refit/objective_gain"] > 0
    values = refit.strength_values()
    assert values["strength/cv"] == pytest.approx(record["strength_refit/cv"])
    assert values["strength/cv"] != pytest.approx(trained.strength_values()["strength/cv"])
    # it is the MAP of the panel objective at the final policy's margins, recomputed here
    margins, groups, levels = [], [], []
    with torch.no_grad():
        for inputs in refit.get_eval_dataloader(refit.train_dataset):
            batch = refit._pair_batch(refit.model, refit._prepare_inputs(inputs))
            margins.append(batch.margin)
            groups.append(inputs["strength_group"])
            levels.append(inputs["strength_levels"])
    again = refit_panel_strength(
        trained.strength, torch.cat(margins), torch.cat(groups), levels=torch.cat(levels)
    )
    for name, value in refit.strength.named_parameters():
        torch.testing.assert_close(
            value.detach(), dict(again.strength.named_parameters())[name].float(), atol=2e-4, rtol=0
        )
    # refitting at the optimum changes nothing, and save_model writes the refit strength; the
    # refit scores each distinct pair once, however many annotators labelled it either way round
    scored = []
    pair_batch = refit._pair_batch

    def counting_pair_batch(model, inputs):
        batch = pair_batch(model, inputs)
        scored.append(batch.margin.shape[0])
        return batch

    refit._pair_batch = counting_pair_batch
    assert refit.refit_strength()["strength_refit/objective_gain"] == pytest.approx(0, abs=1e-6)
    raw = small_panels["train"]
    labels = zip(raw["prompt"], raw["chosen"], raw["rejected"], strict=True)
    distinct = {(p, frozenset((c, r))) for p, c, r in labels}
    assert sum(scored) == len(distinct) < len(raw)
    refit.save_model(str(tmp_path / "final"))
    state = torch.load(tmp_path / "final" / "strength.pt", weights_only=True)
    for name, value in refit.strength.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)


def test_data_errors_name_the_column_and_value(tmp_path, small_panels, small_tokenizer):
    train = small_panels["train"]
    annotator = _config(tmp_path, strength_level="annotator")
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['annotator_id'\\]"):
        _trainer(annotator, train.remove_columns("annotator_id"), small_tokenizer)
    covariates = _config(tmp_path, strength_level="annotator", strength_covariates=["shift"])
    with pytest.raises(ValueError, match="\\['shift'\\]"):
        _trainer(covariates, train, small_tokenizer)
    # the first label's annotator switches subgroup on that one row
    flip = {"keen": "vague", "vague": "keen"}
    varying = train.map(
        lambda row, i: {"subgroup": flip[row["subgroup"]] if i == 0 else row["subgroup"]},
        with_indices=True,
    )
    grouped = _config(tmp_path, strength_level="annotator", strength_covariates=["subgroup"])
    with pytest.raises(ValueError, match="'subgroup' changes within group"):
        _trainer(grouped, varying, small_tokenizer)
    # an evaluation set with a subgroup never seen in training
    pooled = _config(tmp_path, strength_covariates=["subgroup"])
    strange = small_panels["test"].map(lambda row: {"subgroup": "martian"})
    with pytest.raises(ValueError, match=r"eval_dataset: .*'subgroup' row 0: level 'martian'"):
        _trainer(pooled, train, small_tokenizer, eval_dataset=strange)


def test_pair_level_with_covariates_uses_the_conditional_strength(
    tmp_path, small_panels, small_tokenizer
):
    trainer = _trainer(
        _config(tmp_path, strength_covariates=["subgroup"]), small_panels["train"], small_tokenizer
    )
    assert trainer.loss_fn.level == "pair"
    assert trainer.loss_fn.extra_columns == ("strength_levels",)
    trainer.train()
    assert trainer.state.global_step == -(-len(small_panels["train"]) // 4)
    values = trainer.strength_values()
    assert {"strength/keen/mean", "strength/vague/mean"} <= set(values)


# ----------------------------------------------------------------------------- the claim, fast

FAST_SUBGROUPS = (
    SubgroupSpec("keen", "lognormal", {"loc": 1.2, "scale": 0.35}),  # mean 3.5
    SubgroupSpec("fair", "gamma", {"shape": 5.0, "rate": 7.0}),  # mean 0.71
    SubgroupSpec("vague", "gamma", {"shape": 4.0, "rate": 25.0}),  # mean 0.16
)


def _fit_with_true_gaps(data, covariates: list[str]) -> ConditionalStrength:
    """Full-panel annotator-level MAP fit, margins = true reward gap x a learned scale."""
    gap = torch.tensor(data["reward_gap"], dtype=torch.float64)
    group = torch.tensor(data["annotator_index"])
    design = None
    levels = None
    if covariates:
        design = StrengthDesign.fit(data, levels=covariates)
        levels = torch.as_tensor(design.encode(data).level_index)
    strength = ConditionalStrength("gamma", design).double()
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)
    # full-batch Adam, 40 steps: deterministic, and past the point where the CVs separate
    optimiser = torch.optim.Adam([*strength.parameters(), log_scale], lr=0.1)
    for _ in range(40):
        optimiser.zero_grad()
        # the MixDPO start: mean strength 0.12, so a unit scale is ~8 x the true gap
        margin = gap * 8.0 * log_scale.exp()
        per_pair = panel_mixdpo_loss(margin, group, strength, levels=levels, num_nodes=32)
        loss = per_pair.mean() - strength.log_prior() / len(gap)
        loss.backward()
        optimiser.step()
    return strength


@pytest.fixture(scope="module")
def fast_panels():
    return {
        kind: make_panel_preference_data(
            num_pairs=90,
            num_annotators=45,
            pairs_per_annotator=12,
            subgroups=FAST_SUBGROUPS,
            homogeneous=kind == "homogeneous",
            seed=4242,
        )
        for kind in ("heterogeneous", "homogeneous")
    }


def test_annotator_panels_identify_the_cv_with_the_true_reward_up_to_scale(fast_panels):
    cv = {
        kind: float(_fit_with_true_gaps(d["train"], []).coefficient_of_variation.detach())
        for kind, d in fast_panels.items()
    }
    assert cv["heterogeneous"] >= 1.5 * cv["homogeneous"], cv


def test_subgroup_strengths_come_out_in_the_true_order(fast_panels):
    data = fast_panels["heterogeneous"]
    strength = _fit_with_true_gaps(data["train"], ["subgroup"])
    with torch.no_grad():
        learned = {k: float(v["mean"]) for k, v in strength.level_moments().items()}
    truth = {g["name"]: g["mean"] for g in data["ground_truth"]["subgroups"]}
    assert sorted(learned, key=learned.get) == sorted(truth, key=truth.get), (learned, truth)


# ----------------------------------------------------------------------------- the claim, slow


@pytest.fixture(scope="module")
def tiny_model_runs():
    """The holdout seeds and structure of ``benchmarks/bench_panel_training.py``, the asserted
    configurations only, two seeds at a time: about 4 minutes on two idle cores. Each run
    records the training iterate and, from the same trained policy, the end-of-training refit
    that ``MixDPOTrainer.train`` applies by default (``MixDPOConfig.strength_refit``)."""
    from benchmarks.bench_panel_training import HOLDOUT_SEEDS, RUNS, run_benchmark

    runs = {name: RUNS[name] for name in ("annotator", "annotator+subgroup")}
    return run_benchmark(HOLDOUT_SEEDS, runs, jobs=2, structure="holdout")["seeds"]


@pytest.mark.slow
def test_tiny_model_annotator_level_cv_separates_heterogeneous_from_control_in_every_seed(
    tiny_model_runs,
):
    for seed in tiny_model_runs:
        annotator = seed["runs"]["annotator"]
        assert annotator["refit_cv_ratio"] >= 1.5, (seed["seed"], annotator)


@pytest.mark.slow
def test_tiny_model_subgroup_means_come_out_in_the_true_order_in_every_seed(tiny_model_runs):
    for seed in tiny_model_runs:
        run = seed["runs"]["annotator+subgroup"]
        assert run["refit_order_correct"], (
            seed["seed"],
            seed["true_order"],
            run["refit_learned_order"],
        )


DDP_SCRIPT = """
import json, sys
import torch
from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm
from alignment.datasets.annotator_panels import make_panel_preference_data
from alignment.datasets.semisynthetic import SubgroupSpec
from alignment.policy_models import build_word_tokenizer

subgroups = (
    SubgroupSpec("keen", "lognormal", {"loc": 1.0, "scale": 0.3}),
    SubgroupSpec("vague", "gamma", {"shape": 3.0, "rate": 12.0}),
)
data = make_panel_preference_data(
    num_pairs=16, num_annotators=8, pairs_per_annotator=6, subgroups=subgroups, seed=77
)
train = data["train"]
tokenizer = build_word_tokenizer([*train["prompt"], *train["chosen"], *train["rejected"]])
args = MixDPOConfig(
    output_dir=sys.argv[1], report_to="none", per_device_train_batch_size=3, max_steps=3,
    learning_rate=1e-2, lr_scheduler_type="constant", disable_tqdm=True, save_strategy="no",
    seed=0, dataloader_pin_memory=False, strength_family="gamma", use_cpu=True,
    strength_level="annotator", strength_covariates=["subgroup"],
)
trainer = MixDPOTrainer(
    tiny_causal_lm(len(tokenizer), seed=0), args=args, train_dataset=train,
    processing_class=tokenizer,
)
batches = [list(map(int, b)) for b in trainer.get_train_dataloader().batch_sampler]
trainer.train()
rank = trainer.accelerator.process_index
record = {
    "batches": batches,
    "groups": list(trainer.train_dataset["strength_group"]),
    "strength": {k: v.tolist() for k, v in trainer.strength.state_dict().items()},
}
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as handle:
    json.dump(record, handle)
"""


@pytest.mark.slow
def test_two_ddp_ranks_get_disjoint_whole_chunks_and_share_the_strength(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun is not installed")
    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "ddp_panel.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29547", str(script),
         str(tmp_path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    rows = [{i for b in r["batches"] for i in b} for r in ranks]
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"])
    # each rank packs its own chunks: the ranks' rows do not overlap and cover the data
    assert not rows[0] & rows[1]
    assert rows[0] | rows[1] == set(range(len(ranks[0]["groups"])))
    for name, value in ranks[0]["strength"].items():  # gradients were all-reduced
        np.testing.assert_allclose(value, ranks[1]["strength"][name], rtol=1e-6)
