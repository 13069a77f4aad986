"""Lab 16: its measures (verbatim n-gram overlap, the tails of a distribution), the raw corpus it damages on
purpose, and the --quick run."""

import json
import os
import runpy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "16_synthetic.py"))


def test_memorization_measures(lab):
    assert lab["common_prefix"]("abcx", "abcd") == 3 and lab["common_prefix"]("", "a") == 0
    grams = lab["ngrams"]("abcdefgh", 4)
    assert grams == {"abcd", "bcde", "cdef", "defg", "efgh"}
    assert lab["memorized"]("xxabcdefxx", grams, 4) == pytest.approx(3 / 7)  # abcd, bcde, cdef of 7 strings
    assert lab["memorized"]("abc", grams, 4) == 0.0


def test_tails_against_the_real_distribution(lab):
    real = "the cat sat on the mat the end zebra"
    real_words, real_chars = Counter(lab["words"](real)), Counter(real)
    same = lab["tails"](real, real_words, real_chars, 100)
    assert same["kl_real_sample"] == pytest.approx(0.0, abs=1e-12) and same["invented_word_share"] == 0.0
    assert same["distinct_words"] == 7 and same["rank_frequency"][0] == 3  # "the" three times
    assert same["rare_word_share"] == 1.0  # every real word occurs <= 3 times in this tiny text
    narrow = lab["tails"]("the the the cat", real_words, real_chars, 100)
    assert narrow["kl_real_sample"] > 0.05 and narrow["distinct_words"] == 2  # letters of the real text missing
    made_up = lab["tails"]("the qqq", real_words, real_chars, 100)
    assert made_up["invented_word_share"] == 0.5
    assert lab["words"]("It's 3 o'clock, ROMEO!") == ["it", "s", "o", "clock", "romeo"]


def test_the_raw_corpus_and_its_junk(lab):
    from tinyllm.data.clean import default_rules
    from tinyllm.data.quality import first_failure

    rng = np.random.default_rng(0)
    junk = lab["junk_documents"](8, rng)
    rules = default_rules(thresholds={"min_words": 3, "stop_words": 0})  # the lab's rules
    assert all(first_failure(rules, j) is not None for j in junk)  # every kind of junk is caught

    class Small:
        size = dict(copies=(3, 4), D=4000)
        B = "\n\n".join(f"SPEAKER{i}:\nthe words of speech number {i} go on and on here" for i in range(200))

    docs, kinds, copied = lab["raw_corpus"](Small, rng)
    counts = Counter(kinds)
    assert counts["copy"] == 12 and counts["junk"] == 8 and 0 < counts["real"] < 200
    assert sum(d in copied for d in docs) >= 6  # half the copies are exact


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path):
    data = os.environ.get("TINYLLM_DATA_DIR")
    if not data or not (Path(data) / "tinyshakespeare.txt").is_file():
        pytest.skip("set TINYLLM_DATA_DIR to a folder holding tinyshakespeare.txt (CI: ../shared/data)")
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("16_real_vs_synthetic.png", "16_cleaning.png", "16_recursive.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    saved = json.loads((tmp_path / "16_synthetic.json").read_text())
    assert set(saved["real_vs_synthetic"]["loss"]) == {"real", "model", "template", "mix 25% model",
                                                       "mix 50% model", "mix 75% model"}
    assert [g["generation"] for g in saved["recursive"]["generations"]] == ["real text", 0, 1, 2]
    assert saved["cleaning"]["removed_by_clean"].get("junk", 0) == saved["cleaning"]["kinds"]["junk"]
    runs = report["cleaning"]["runs"]
    assert runs["cleaned + deduplicated"]["chars"] < runs["raw"]["chars"]
    assert set(runs["raw"]["extraction"]) == {"copied 6x", "seen once", "never seen"}
    assert all(0 <= v <= 48 for r in runs.values() for v in r["extraction"].values())
