"""tinyllm.viz.attention_maps: recorded weights, per-head statistics and labels on known patterns, the grid
figure, and `tinyllm attention`."""

import argparse

import numpy as np
import pytest

import tinyllm
from tinyllm.data import CharTokenizer, save_tokenizer
from tinyllm.nn import GPT, GPTConfig
from tinyllm.viz import attention_maps as am

T = 6


def pattern(kind: str, T: int = T) -> np.ndarray:
    """A (T, T) causal weight matrix of a known kind."""
    P = np.zeros((T, T))
    for i in range(T):
        if kind == "previous":
            P[i, max(i - 1, 0)] = 1
        elif kind == "first":
            P[i, 0] = 1
        elif kind == "current":
            P[i, i] = 1
        elif kind == "uniform":
            P[i, :i + 1] = 1 / (i + 1)
        elif kind == "local":
            P[i, max(i - 2, 0):i + 1] = 1 / (i + 1 - max(i - 2, 0))
        elif kind == "three_back":
            P[i, max(i - 3, 0)] = 1
    return P


def grid(*kinds, T: int = T) -> np.ndarray:
    """(1, n_head, T, T): one layer, one head per kind."""
    return np.stack([pattern(k, T) for k in kinds])[None]


def test_statistics_and_labels_of_known_heads():
    n = 12
    w = grid("previous", "first", "current", "uniform", "local", "three_back", T=n)
    s = am.head_stats(w)
    i = np.arange(2, n)  # the query positions the statistics use
    u = np.mean(1 / (i + 1))
    assert s["uniform"] == pytest.approx(u)
    np.testing.assert_allclose(s["prev"][0], [1, 0, 0, u, 1 / 3, 0])
    np.testing.assert_allclose(s["first"][0], [0, 1, 0, u, 1 / 30, 0.2])  # local: key 0 at i = 2; three_back: i = 2, 3
    np.testing.assert_allclose(s["current"][0], [0, 0, 1, u, 1 / 3, 0])
    np.testing.assert_allclose(s["local"][0], [1, 0.1, 1, np.mean(3 / (i + 1)), 1, 0.1])  # three_back at i = 2: key 0
    np.testing.assert_allclose(s["entropy"][0], [0, 0, 0, 1, np.mean(np.log(3) / np.log(i + 1)), 0], atol=1e-12)
    assert am.classify_heads(s) == [["previous", "first", "current", "diffuse", "local", "other"]]


def test_uniform_weights_in_a_short_window_are_diffuse_not_local():
    s = am.head_stats(grid("uniform", T=6))
    assert s["local"][0, 0] > 0.5 and s["entropy"][0, 0] == pytest.approx(1)
    assert am.classify_heads(s) == [["diffuse"]]


def test_the_docstring_example():
    s = am.head_stats(np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], float)[None, None])
    assert [s[k][0, 0] for k in ("prev", "first", "current", "entropy")] == [1, 0, 0, 0]
    assert am.classify_heads(s) == [["previous"]]


def test_other_when_nothing_dominates():
    w = np.stack([pattern("three_back", 10)])[None]  # key i-3: first for i <= 3 only (2 of 8 queries)
    s = am.head_stats(w)
    assert s["first"][0, 0] == pytest.approx(0.25) and s["entropy"][0, 0] == 0
    assert am.classify_heads(s) == [["other"]]


def test_word_start_and_space_use_the_marks():
    #          a     b     ␣     c     d     ␣     e
    marks = np.array([False, False, True, False, False, True, False])
    T7 = len(marks)
    P = np.zeros((T7, T7))
    latest = -1
    for i in range(T7):
        latest = i if marks[i] else latest
        P[i, latest if latest >= 0 else 0] = 1  # look at the latest space (the first token before any)
    s = am.head_stats(P[None, None], marks)
    assert s["word_start"][0, 0] == pytest.approx(1.0) and s["space"][0, 0] == pytest.approx(1.0)
    # uniform attention: the share of spaces among keys 0..i, averaged over i >= 2
    assert s["space_uniform"] == pytest.approx(np.mean([marks[:i + 1].mean() for i in range(2, T7)]))
    assert am.classify_heads(s) == [["word-start"]]
    assert "word_start" not in am.head_stats(P[None, None])  # no marks, no word statistics
    with pytest.raises(ValueError, match="marks must have shape"):
        am.head_stats(P[None, None], marks[:-1])


def test_statistics_average_over_batches():
    a, b = grid("previous", "first"), grid("current", "current")
    both = am.head_stats(np.stack([a, b]))
    for key in ("prev", "first", "current", "entropy"):
        np.testing.assert_allclose(both[key], (am.head_stats(a)[key] + am.head_stats(b)[key]) / 2)


def test_statistics_need_three_tokens_and_square_weights():
    with pytest.raises(ValueError, match="at least 3 tokens"):
        am.head_stats(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="expected weights"):
        am.head_stats(np.ones((1, 2, 3, 4)))


def tiny_model(**kw):
    tinyllm.manual_seed(0)
    cfg = dict(vocab_size=11, context_length=8, n_layer=2, n_head=2, d_model=8)
    return GPT(GPTConfig(**{**cfg, **kw}))


def layernorm(x, w, b, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + (0 if b is None else b)


def test_attention_weights_are_the_models_in_block_order():
    model = tiny_model()
    model.train()
    ids = np.array([3, 1, 4, 1, 5, 9, 2])
    w = am.attention_weights(model, ids)
    L, H, n = 2, 2, len(ids)
    assert w.shape == (L, H, n, n) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(-1), 1, atol=1e-5)
    assert (np.triu(w, 1) == 0).all()
    # layer 0 by hand: softmax(q kᵀ/√hs + causal mask) of ln_1(wte[ids] + wpe[:T])
    sd = {k: tinyllm.to_numpy(v.data) for k, v in model.state_dict().items()}
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:n]
    h = layernorm(x, sd["transformer.h.0.ln_1.weight"], sd.get("transformer.h.0.ln_1.bias"))
    qkv = h @ sd["transformer.h.0.attn.c_attn.weight"].T + sd["transformer.h.0.attn.c_attn.bias"]
    for head in range(H):
        q, k = qkv[:, head * 4:(head + 1) * 4], qkv[:, 8 + head * 4:8 + (head + 1) * 4]
        S = np.where(np.tril(np.ones((n, n), bool)), q @ k.T / 2.0, -np.inf)
        P = np.exp(S - S.max(-1, keepdims=True))
        np.testing.assert_allclose(w[0, head], P / P.sum(-1, keepdims=True), atol=1e-5)
    assert model.training  # the mode is restored, and recording is off again
    assert all(not blk.attn.record for blk in model.transformer.h)
    batch = np.stack([ids, ids[::-1]])
    wb = am.attention_weights(model, batch)
    assert wb.shape == (2, L, H, n, n)
    np.testing.assert_allclose(wb[1], am.attention_weights(model, ids[::-1]), atol=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        am.attention_weights(model, np.zeros((1, 0), dtype=np.int64))


@pytest.mark.parametrize("pos_encoding", ["rope", "alibi"])
def test_attention_weights_under_other_position_encodings_are_causal_distributions(pos_encoding):
    w = am.attention_weights(tiny_model(pos_encoding=pos_encoding, n_kv_head=1), np.arange(7))
    np.testing.assert_allclose(w.sum(-1), 1, atol=1e-5)
    assert (np.triu(w, 1) == 0).all()


def test_labels_and_marks_of_characters():
    tok = CharTokenizer.from_text("ab c\n\td")
    ids = tok.encode("a b\nc\td")
    assert am.token_labels(tok, ids) == ["a", "␣", "b", "\\n", "c", "\\t", "d"]
    np.testing.assert_array_equal(am.whitespace_marks(tok, ids), [0, 1, 0, 1, 0, 1, 0])
    assert am.whitespace_marks(tok, np.array([ids, ids])).shape == (2, len(ids))


def test_grid_figure(tmp_path):
    w = np.stack([grid("previous", "first", "uniform")[0]] * 2)  # (2 layers, 3 heads, T, T)
    path = tmp_path / "grid.png"
    am.plot_attention_grid(w, list("abcdef"), path, title="t", labels=[["p", "f", "u"]] * 2)
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="T token labels"):
        am.plot_attention_grid(w, list("abc"))


# ---------------------------------------------------------------------------- `tinyllm attention`


def cli(argv):
    """`tinyllm ...` through tinyllm.cli.main once the command is wired there, else a parser of its own."""
    from tinyllm import cli as tcli

    parser = tcli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "attention" in sub.choices:
        return tcli.main(argv)
    p = argparse.ArgumentParser(prog="tinyllm")
    am.add_subcommand(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


@pytest.fixture
def run_dir(tmp_path):
    tok = CharTokenizer.from_text("to be or not\n")
    model = tiny_model(vocab_size=tok.vocab_size)
    model.save_pretrained(tmp_path / "run")
    save_tokenizer(tok, tmp_path / "run")
    return tmp_path / "run"


def test_cli_draws_the_grid_and_prints_the_table(run_dir, tmp_path, capsys):
    out = tmp_path / "figs" / "att.png"
    assert cli(["attention", "--ckpt", str(run_dir), "--prompt", "to be or", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "word_start" in text and f"wrote {out}" in text
    assert len([line for line in text.splitlines() if line.strip().startswith(("0 ", "1 "))]) == 4  # 2 x 2 heads


def test_cli_crops_a_long_prompt_to_the_context(run_dir, tmp_path, capsys):
    assert cli(["attention", "--ckpt", str(run_dir), "--prompt", "to be or not to be", "--out",
                str(tmp_path / "a.png")]) == 0
    assert "drawing the last 8" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--prompt", "to é"], "character 'é'"),
    (["--prompt", "to"], "at least 3"),
    (["--prompt", "to be", "--out", "x.svg"], "must be a .png"),
])
def test_cli_errors_are_messages_with_exit_code_2(run_dir, capsys, argv, message):
    assert cli(["attention", "--ckpt", str(run_dir), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_without_a_model(tmp_path, capsys):
    assert cli(["attention", "--ckpt", str(tmp_path / "none"), "--prompt", "abc"]) == 2
    assert "holds no model" in capsys.readouterr().err


def test_cli_an_unwritable_out_or_a_broken_tokenizer_file_is_one_line_exit_2(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")  # --out file/att.png: its folder is a file
    assert cli(["attention", "--ckpt", str(run_dir), "--prompt", "to be", "--out", str(blocker / "att.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinyllm attention: cannot write {blocker / 'att.png'}: ") and err.count("\n") == 1
    (run_dir / "tokenizer.json").write_text('{"format": "tinyllm.char", "version": 1}')  # no "chars"
    assert cli(["attention", "--ckpt", str(run_dir), "--prompt", "to be"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm attention: ") and "chars" in err and err.count("\n") == 1
