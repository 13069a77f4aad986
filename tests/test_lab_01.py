"""Lab 1 (tokenization) and lab 1b (embeddings): their --quick runs write the figures and measure sane things."""

import os
import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def need_data(*names):
    data_dir = os.environ.get("TINYLLM_DATA_DIR")
    for name in names:
        if not data_dir or not (Path(data_dir) / name).is_file():
            pytest.skip(f"{name} is not there: set TINYLLM_DATA_DIR to the folder holding it (../shared/data)")


def lab(name):
    return runpy.run_path(str(ROOT / "examples" / name))


@pytest.mark.slow
def test_tokenization_lab_quick(tmp_path, capsys):
    need_data("tinyshakespeare.txt", "gpt2.tiktoken")
    report = lab("01_tokenization.py")["main"](["--quick", "--out", str(tmp_path)])
    for name in ("01_compression.png", "01_token_lengths.png", "01_first_merges.png", "01_token_map.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    rows = report["rows"]
    assert [r["vocab"] for r in rows] == [256, 512, 1024]
    assert rows[0]["train"] == rows[0]["heldout"] == 1.0  # the 256 bytes alone: one token per byte
    assert all(a["train"] < b["train"] and a["heldout"] < b["heldout"] for a, b in zip(rows, rows[1:]))
    assert report["prefix"] is True
    counts = [c for _, _, c in report["replayed"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0  # a merge never beats the one before it
    assert report["replayed"][0][:2] == (b" ", b"t")
    assert report["gpt2"]["heldout"] > rows[-1]["heldout"]  # 50k tokens beat 1024 trained on 180 kB
    pats = {r["pattern"]: r for r in report["patterns"]}
    assert pats["gpt2"]["crossing"] == pats["gpt4"]["crossing"] == 0 and pats["None"]["crossing"] > 0
    assert report["probe_tokens"][0] == len(lab("01_tokenization.py")["PROBE"].encode())  # vocab 256: one per byte
    assert "the plain-Python replay picked the same ones" in capsys.readouterr().out


@pytest.mark.slow
def test_embeddings_lab_quick_trains_then_reloads(tmp_path, capsys):
    need_data("tinyshakespeare.txt")
    main = lab("01b_embeddings.py")["main"]
    ckpt = tmp_path / "run"
    first = main(["--quick", "--ckpt", str(ckpt), "--out", str(tmp_path / "fig"), "--no-progress"])
    for name in ("01b_cosine.png", "01b_pca.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 10_000, name
    assert (ckpt / "config.json").exists()  # trained into --ckpt
    assert first["V"] == 65 and first["cases"]["n"] == 26
    assert set(first["stats"]) == {"initial", "trained", "trained, PC1 removed"}
    for stat, p in first["stats"].values():
        assert np.isfinite(stat) and 0 < p <= 1
    assert 0 < sum(first["pca_var"]) <= 1 + 1e-9
    assert np.isfinite(first["val_loss"]) and first["movement"] is not None
    assert "trained:" in capsys.readouterr().out

    again = main(["--quick", "--ckpt", str(ckpt), "--out", str(tmp_path / "fig2"), "--no-progress"])
    assert "loaded from" in capsys.readouterr().out
    assert again["stats"]["trained"][0] == pytest.approx(first["stats"]["trained"][0])
    assert again["stats"]["initial"][0] == pytest.approx(first["stats"]["initial"][0])  # the init rebuilt from the seed
    assert again["val_loss"] == pytest.approx(first["val_loss"])


def test_embedding_measurements_on_known_vectors():
    m = lab("01b_embeddings.py")
    S = m["cosine_matrix"](np.eye(4))
    np.testing.assert_allclose(S, np.eye(4))  # one-hot: every character orthogonal to every other
    labels = np.array(["a", "a", "b", "b"])
    E = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    S = m["cosine_matrix"](E)
    assert m["within_minus_between"](S, labels) > 0.8
    assert m["within_minus_between"](m["cosine_matrix"](np.eye(4)), labels) == 0.0
    xy, var = m["pca2"](E)
    assert xy.shape == (4, 2) and var[0] > 0.95
    assert m["group_of"]("a") == "lower vowel" and m["group_of"]("Y") == "upper consonant"
    assert m["group_of"]("\n") == "whitespace" and m["group_of"]("3") == "digit" and m["group_of"]("&") == "punctuation"
    assert m["spearman"](np.array([1.0, 5.0, 3.0]), np.array([10.0, 30.0, 20.0])) == pytest.approx(1.0)
