"""Lab 5: its measures (distinct-n, self-similarity, repeated n-grams, loops) on worked examples,
and the --quick run."""

import json
import math
import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "05_sampling.py"))


def test_distinct_n_and_self_similarity(lab):
    assert lab["distinct_n"](["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert lab["distinct_n"](["a b", "a c"], 1) == pytest.approx(3 / 4)  # pooled over the samples
    assert lab["distinct_n"](["a"], 2) == 0.0  # no bigram at all
    assert lab["self_similarity"](["abcdef", "abcdef"]) == 1.0
    assert lab["self_similarity"](["abcdef", "uvwxyz"]) == 0.0
    # abcde -> {abcd, bcde}; bcdef -> {bcde, cdef}: 1 shared of 3
    assert lab["self_similarity"](["abcde", "bcdef"]) == pytest.approx(1 / 3)


def test_repeated_share_and_loops(lab):
    assert lab["repeated_share"]("abcabc", 3) == pytest.approx(1 / 4)
    assert lab["repeated_share"]("abcdef", 2) == 0.0
    assert lab["repeated_share"]("aaaa", 1) == pytest.approx(3 / 4)
    assert lab["find_loop"]([5, 1, 2, 3, 1, 2, 3, 1, 2, 3], min_len=6) == (1, 3)
    assert lab["find_loop"]([5, 1, 2, 3, 1, 2, 3, 1, 2, 3], min_len=10) == (None, None)  # not long enough
    assert lab["find_loop"]([1, 2, 3, 4, 5, 6], min_len=2) == (None, None)
    assert lab["find_loop"]([7] * 8, min_len=4) == (0, 1)
    assert lab["_canonical"]("cab") == lab["_canonical"]("abc") == "abc"


def test_grid_settings_are_valid_knobs(lab):
    from tinyllm.inference.sampling import check_sampling_args

    for quick in (True, False):
        settings = lab["grid"](quick)
        assert {s["family"] for s in settings} >= {"temperature", "top-k", "top-p", "min-p"}
        for s in settings:
            check_sampling_args(**lab["knobs_of"](s))
    assert lab["name"](dict(family="mix", temperature=0.7, top_p=0.9)) == "T=0.7 top-p=0.9"


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path, capsys):
    data = os.environ.get("TINYLLM_DATA_DIR")
    if not data or not (Path(data) / "tinyshakespeare.txt").is_file():
        pytest.skip("set TINYLLM_DATA_DIR to a folder holding tinyshakespeare.txt (CI: ../shared/data)")
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("05-entropy-diversity.png", "05-entropy-quality.png", "05-repetition.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert json.loads((tmp_path / "05_sampling.json").read_text())["grid"]["per_prompt"] == 4

    rows = {r["name"]: r for r in report["grid"]["settings"]}
    greedy, t1 = rows["T=0"], rows["T=1"]
    assert greedy["entropy"] == 0.0 and greedy["self_similarity"] == 1.0  # every sample of a prompt is the same
    assert greedy["kl"] == pytest.approx(greedy["nll"])  # KL(one-hot || p) = -log p(argmax) = the NLL
    assert t1["kl"] == pytest.approx(0.0, abs=1e-12)  # sampling the model as it is
    for r in rows.values():  # NLL of a sample estimates H + KL; on 8 x 48 steps they agree to sampling noise
        assert r["nll"] == pytest.approx(r["entropy"] + r["kl"], abs=0.35), r["name"]
    temps = sorted((r for r in rows.values() if r["setting"]["family"] == "temperature"),
                   key=lambda r: r["setting"]["temperature"])
    assert [r["entropy"] for r in temps] == sorted(r["entropy"] for r in temps)  # hotter, higher entropy
    assert rows["top-k=5"]["entropy"] < t1["entropy"] and rows["min-p=0.1"]["entropy"] < t1["entropy"]
    human = report["grid"]["human"]
    assert math.isfinite(human["nll"]) and 0 <= human["distinct_1"] <= 1

    rep = report["repetition"]["settings"]
    assert rep["T=0 (greedy)"]["looping"] == report["repetition"]["n_prompts"]  # greedy always ends in a loop
    assert rep["real text"]["looping"] == 0
    assert rep["T=0 (greedy)"]["repeated"]["12"] > rep["real text"]["repeated"]["12"] + 0.3
    out = capsys.readouterr().out
    assert "end in a loop" in out and "real text" in out
