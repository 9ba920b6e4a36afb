"""tools/readme_benchmarks.py: the README's benchmark table is rendered from the JSON results."""

from __future__ import annotations

import json
import shutil

import pytest


def test_readme_table_agrees_with_benchmark_results(readme_benchmarks, capsys):
    status = readme_benchmarks.main(["--check"])
    assert status == 0, capsys.readouterr().out


@pytest.fixture
def results_copy(tmp_path, readme_benchmarks):
    target = tmp_path / "results"
    shutil.copytree(readme_benchmarks.RESULTS, target)
    return target


def _edit(directory, stem, edit):
    path = directory / f"{stem}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_figures_are_read_from_the_json(readme_benchmarks, results_copy):
    def change(d):
        d["side_by_side"][0]["mixlogit"]["loglik"] = -3999.1254
        d["side_by_side"][0]["wall_ratio_fit"] = 0.6049

    _edit(results_copy, "electricity", change)
    table = readme_benchmarks.render_table(readme_benchmarks.load_results(results_copy))
    assert "LL -3999.125 (xlogit" in table
    assert "wall ratio **0.60 (" in table
    # xlogit's LL at our estimates no longer equals ours: the "same likelihood" reading goes.
    assert "second local maximum" not in table


def test_derived_figures_follow_the_data(readme_benchmarks, results_copy):
    def flip(d):
        d["adaptive"]["dpo_heterogeneous"]["margin_gain_macro"] = 1.0

    _edit(results_copy, "mixdpo", flip)
    _edit(results_copy, "bayes_electricity", lambda d: d["parameters"][3].update(z_diff=-2.345))
    table = readme_benchmarks.render_table(readme_benchmarks.load_results(results_copy))
    assert "macro margin beats DPO's here (7.97 vs 1.00 nats)" in table
    assert "within 2.35 posterior SD of ML" in table


def test_stale_readme_fails_check_with_a_diff(readme_benchmarks, results_copy, tmp_path, capsys):
    readme = tmp_path / "README.md"
    shutil.copy(readme_benchmarks.README, readme)
    _edit(results_copy, "marginals", lambda d: d["naive_example"].update(naive_P=0.25))
    args = ["--readme", str(readme), "--results", str(results_copy)]
    assert readme_benchmarks.main([*args, "--check"]) == 1
    out = capsys.readouterr().out
    assert "+| Gamma marginal accuracy" in out and "P = 0.250 instead of" in out
    # Without --check the table is rewritten, after which the check passes.
    assert readme_benchmarks.main(args) == 0
    assert readme_benchmarks.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert text.count(readme_benchmarks.START) == 1 and "P = 0.250 instead of" in text


def test_missing_key_names_file_and_key(readme_benchmarks, results_copy):
    _edit(results_copy, "bayes_subsampling", lambda d: d.pop("batch_people"))
    with pytest.raises(KeyError, match=r"bayes_subsampling\.json has no key 'batch_people'"):
        readme_benchmarks.render_table(readme_benchmarks.load_results(results_copy))


def test_missing_result_file_is_named(readme_benchmarks, results_copy):
    (results_copy / "mixdpo.json").unlink()
    with pytest.raises(KeyError, match=r"mixdpo\.json not found"):
        readme_benchmarks.render_table(readme_benchmarks.load_results(results_copy))


def test_non_finite_figure_is_refused(readme_benchmarks, results_copy):
    _edit(results_copy, "mixdpo", lambda d: d["ours_dpo"].update(pairs_per_s=float("nan")))
    with pytest.raises(ValueError, match="_mixdpo_vs_trl renders a non-finite figure"):
        readme_benchmarks.render_table(readme_benchmarks.load_results(results_copy))


@pytest.mark.parametrize(
    "text",
    [
        "no markers",
        "<!-- benchmarks:start --> x <!-- benchmarks:start --> <!-- benchmarks:end -->",
        "<!-- benchmarks:end --> x <!-- benchmarks:start -->",
    ],
)
def test_splice_requires_one_ordered_pair_of_markers(readme_benchmarks, text):
    with pytest.raises(ValueError, match="benchmarks:"):
        readme_benchmarks.splice(text, "| table |")


def test_splice_replaces_only_the_marked_block(readme_benchmarks):
    rb = readme_benchmarks
    text = f"head\n{rb.START}\nold\n{rb.END}\ntail\n"
    assert rb.splice(text, "new") == f"head\n{rb.START}\nnew\n{rb.END}\ntail\n"


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (1.756289646569855e-05, 1, "1.8e-5"),
        (1e6, 0, "1e6"),
        (0.0, 1, "0"),
        (6.84e-14, 1, "6.8e-14"),
    ],
)
def test_scientific_format(readme_benchmarks, value, digits, expected):
    assert readme_benchmarks._sci(value, digits) == expected
