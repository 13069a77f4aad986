"""Lab 8 (mixture of experts): its data mix and token classes, and its --quick run end to end."""

import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "08_moe.py"))


def test_token_classes_and_the_python_source(lab):
    assert [lab["char_class"](c) for c in "aZ7 \n;"] == [0, 1, 2, 3, 3, 4]
    src = lab["python_source"](5000)
    assert len(src) == 5000 and set(src) <= set("\n" + "".join(map(chr, range(32, 127))))


def test_a_batch_row_is_one_window_of_one_source(lab):
    mix = lab["Mix"](lab["QUICK"], seed=0)
    x, y = mix.batch(np.random.default_rng(0))
    assert x.shape == y.shape == (8, 32) and (x[:, 1:] == y[:, :-1]).all()
    for row in x:  # the window occurs in one source's training ids
        assert any(any(np.array_equal(row, t[i:i + 32]) for i in np.flatnonzero(t[:-31] == row[0]))
                   for t in mix.train.values())


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path):
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("08_curves.png", "08_utilization.png", "08_balance.png", "08_moe.json"):
        assert (tmp_path / name).stat().st_size > 1_000, name
    runs = report["runs"]
    assert runs["moe"]["params"] > runs["dense, equal active"]["params"]
    assert runs["moe"]["active_params"] < runs["dense, equal total"]["params"]
    assert all(np.isfinite(r["curve"][-1][1]["mean"]) for r in runs.values())
    u = np.asarray(report["utilization"]["moe"]["by_source"])
    assert u.shape == (4, 2)  # (sources, layers): every block of the quick model holds experts
    assert ((0 <= u) & (u <= 1)).all()
    assert np.asarray(report["utilization"]["moe"]["by_class"]).shape == (5, 2)
    for name in ("moe", "moe, no aux loss"):  # the busiest of 2 experts holds at least half of a batch
        assert all(0.5 <= s <= 1 for s in report["balance"][name]["busiest_share"])
    c = report["causality"]
    assert c["trained top-1"]["past_changed_by_future"] == 0.0  # top-1: the capacity keeps a row causal
    assert c["trained top-1"]["dropped_share"] > 0
    (tmp_path / "08_utilization.png").unlink()
    lab["main"](["--quick", "--out", str(tmp_path), "--replot"])  # the figures again, from the JSON alone
    assert (tmp_path / "08_utilization.png").stat().st_size > 1_000
