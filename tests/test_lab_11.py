"""Lab 11 (--quick): curves for the three objectives, samples, the tasks, the behaviours, figures and JSON; the
pointer task's answers and the word score by hand."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "11_objectives.py"))


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path, capsys):
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("11_curves.png", "11_task.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert json.loads((tmp_path / "11_objectives.json").read_text())["curves"].keys() == {"clm", "mlm", "prefix_lm"}
    curves = report["curves"]
    assert [c[-1]["input_tokens"] for c in curves.values()] == [8 * 4 * 32] * 3  # equal compute
    predicted = {k: c[-1]["predicted_tokens"] for k, c in curves.items()}
    assert predicted["mlm"] < predicted["prefix_lm"] < predicted["clm"] == 8 * 4 * 32
    control = report["mlm_learned_positions"]  # the same masks and windows, another position encoding
    assert [r["predicted_tokens"] for r in control] == [r["predicted_tokens"] for r in curves["mlm"]]
    assert control[-1]["own"] != curves["mlm"][-1]["own"]
    assert len(report["samples"]) == 5 and set(report["task"]) == {"reverse", "pointer x3"}
    assert set(report["behaviours"]["gap"]["exact"]) == {"masked LM", "causal LM"}
    assert "words found in the corpus" in capsys.readouterr().out
    for name in ("11_curves.png", "11_task.png"):  # --replot draws them again from the JSON alone
        (tmp_path / name).unlink()
    assert lab["main"](["--replot", "--out", str(tmp_path)]) == {}
    assert all((tmp_path / name).stat().st_size > 10_000 for name in ("11_curves.png", "11_task.png"))


def test_pointer_answers_follow_the_pointers(lab):
    seq = lab["pointer_examples"](50, 6, 3, np.random.default_rng(0))
    x, y = seq[:, 1:7], seq[:, 8:]
    assert (np.sort(x, axis=1) == np.arange(6)).all()  # permutations
    for row_x, row_y in zip(x, y):
        assert [row_x[row_x[row_x[k]]] for k in range(6)] == row_y.tolist()


def test_word_rate_counts_whole_words_only(lab):
    assert lab["word_rate"](["xx the cat sat zz"], {"the", "cat"}) == pytest.approx(2 / 3)  # the ends are cut
    assert lab["word_rate"]([""], {"a"}) == 0.0
