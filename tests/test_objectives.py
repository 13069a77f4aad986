"""The three pretraining objectives (§11): the masks they put on attention, proven by Hypothesis, and the batches,
tokens and samplers around them.

Properties, over random configurations (positional encodings, norms, activations, norm positions):

    prefix LM   the logits at position t do not change (bit for bit) when any token at a position
                > max(t, P-1) changes, and do change when a prefix token after t changes (t < P-1)
    masked LM   (causal=False) changing the last token changes the first position's logits
    both        generation with the KV cache equals generation without it (the prefix prefilled whole)
(the causal LM's own properties are tests/test_causality.py's.)
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.inference.unmask import unmask
from tinyllm.nn import GPT, GPTConfig, init
from tinyllm.nn.config import ACTIVATIONS, NORM_POSITIONS, NORMS, POS_ENCODINGS
from tinyllm.nn.prefix_lm import prefix_visible
from tinyllm.tensor import no_grad
from tinyllm.tokenizer import CharTokenizer
from tinyllm.train.objectives import IGNORE_INDEX, MASK_TOKEN, Batch, Objective, mlm_corrupt, model_fields


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


@st.composite
def configs(draw, causal=True):
    """d_model >= 4: a LayerNorm of width 2 maps every vector to about ±1 and hides most changes."""
    n_head = draw(st.sampled_from([1, 2]))
    return GPTConfig(vocab_size=draw(st.integers(4, 13)), context_length=draw(st.integers(4, 12)),
                     n_layer=draw(st.integers(1, 2)), n_head=n_head, d_model=draw(st.sampled_from([4, 8])),
                     d_ff=8, pos_encoding=draw(st.sampled_from(POS_ENCODINGS)), norm=draw(st.sampled_from(NORMS)),
                     activation=draw(st.sampled_from(ACTIVATIONS)),
                     norm_position=draw(st.sampled_from(NORM_POSITIONS)), causal=causal)


def make_model(cfg, seed):
    """Large random weights (as tests/test_causality.py): attention far from uniform, a leak moves the logits."""
    tinyllm.manual_seed(seed)
    model = GPT(cfg)
    with no_grad():
        for name, p in model.named_parameters():
            init.normal_(p, 1.0, 0.3) if p.ndim == 1 and name.endswith("weight") else init.normal_(p, 0.0, 0.5)
    return model.eval()


def logits(model, x, **kw):
    with no_grad():
        return host(model(x, **kw)[0])


def test_the_prefix_mask_is_the_table_of_the_docstring():
    want = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(prefix_visible(np.array([3]), 5)[0, 0], want)
    np.testing.assert_array_equal(prefix_visible(np.array([0]), 4)[0, 0], np.tril(np.ones((4, 4), bool)))


@settings(max_examples=30)
@given(configs(), st.data())
def test_prefix_lm_logits_depend_on_the_prefix_and_the_past_only(cfg, data):
    model = make_model(cfg, data.draw(st.integers(0, 999), label="seed"))
    T = data.draw(st.integers(2, cfg.context_length), label="T")
    B = data.draw(st.integers(1, 2), label="B")
    P = np.asarray(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B), label="P"))
    t = data.draw(st.integers(0, T - 1), label="t")
    rng = np.random.default_rng(data.draw(st.integers(0, 999), label="ids"))
    x = rng.integers(0, cfg.vocab_size, (B, T))
    base = logits(model, x, prefix_len=P)
    cut = np.maximum(t, P - 1)  # (B,): tokens after it may change freely
    future = x.copy()
    for b in range(B):
        future[b, cut[b] + 1:] = rng.integers(0, cfg.vocab_size, T - cut[b] - 1)
    np.testing.assert_array_equal(logits(model, future, prefix_len=P)[:, t], base[:, t])
    for b in range(B):
        if t < P[b] - 1:  # a prefix token after t: position t sees it
            changed = x.copy()
            changed[b, P[b] - 1] = (x[b, P[b] - 1] + 1) % cfg.vocab_size
            assert np.abs(logits(model, changed, prefix_len=P)[b, t] - base[b, t]).max() > 1e-6


def test_an_off_by_one_prefix_mask_is_caught(monkeypatch):
    # key P (the first target token) visible to the prefix: the first property must fail
    import tinyllm.nn.prefix_lm as prefix_lm

    right = prefix_lm.prefix_visible
    monkeypatch.setattr(prefix_lm, "prefix_visible", lambda P, T, S=None: right(P + 1, T, S))
    model = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=1, n_head=2, d_model=8), 0)
    x = np.random.default_rng(0).integers(0, 9, (1, 8))
    future = x.copy()
    future[0, 3] = (x[0, 3] + 1) % 9  # position 3 > max(t=0, P-1=2)
    assert np.abs(logits(model, future, prefix_len=3)[:, 0] - logits(model, x, prefix_len=3)[:, 0]).max() > 1e-3


def test_prefix_len_zero_is_the_causal_lm_and_a_full_prefix_reads_both_ways():
    model = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=2, n_head=2, d_model=8), 0)
    x = np.random.default_rng(0).integers(0, 9, (2, 8))
    np.testing.assert_allclose(logits(model, x, prefix_len=0), logits(model, x), atol=1e-5)
    bidirectional = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=2, n_head=2, d_model=8,
                                         causal=False), 0)
    np.testing.assert_allclose(logits(model, x, prefix_len=8), logits(bidirectional, x), atol=1e-5)


@settings(max_examples=20)
@given(configs(causal=False), st.integers(0, 999), st.integers(2, 12))
def test_masked_lm_first_position_sees_the_last_token(cfg, seed, T):
    model = make_model(cfg, seed)
    T = min(T, cfg.context_length)
    x = np.random.default_rng(seed).integers(0, cfg.vocab_size, (1, T))
    changed = x.copy()
    changed[0, -1] = (x[0, -1] + 1) % cfg.vocab_size
    assert np.abs(logits(model, changed)[0, 0] - logits(model, x)[0, 0]).max() > 1e-6


@settings(max_examples=20)
@given(configs(), st.data())
def test_prefix_lm_generation_with_the_cache_equals_without(cfg, data):
    model = make_model(cfg, data.draw(st.integers(0, 999), label="seed"))
    B = data.draw(st.integers(1, 2), label="B")
    T0 = data.draw(st.integers(1, cfg.context_length), label="T0")
    P = data.draw(st.integers(0, T0), label="P")
    n = data.draw(st.integers(1, cfg.context_length + 3), label="new")  # past the context: the window slides
    x = np.random.default_rng(P).integers(0, cfg.vocab_size, (B, T0))
    cached = model.generate(x, n, temperature=0.0, prefix_len=P)
    np.testing.assert_array_equal(cached, model.generate(x, n, temperature=0.0, prefix_len=P, use_cache=False))
    np.testing.assert_array_equal(cached, model.generate(x, n, temperature=0.0, prefix_len=P, fast_decode=False))
    # the prefill itself: cached logits of the prompt equal the full forward's
    cache = model.make_cache(batch_size=B)
    with no_grad():
        np.testing.assert_allclose(host(model(x, cache=cache, prefix_len=P)[0]), logits(model, x, prefix_len=P),
                                   atol=1e-5)


def test_prefix_loss_counts_the_tokens_after_the_prefix_only():
    model = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=1, n_head=2, d_model=8), 1)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 9, (2, 8)), rng.integers(0, 9, (2, 8))
    P = np.array([3, 5])
    _, loss = model(x, y, prefix_len=P)
    y_kept = y.copy()
    y_kept[0, :2], y_kept[1, :4] = IGNORE_INDEX, IGNORE_INDEX  # targets[:, P-1:] count
    lg = logits(model, x, prefix_len=P)
    assert abs(loss.item() - host(model(x, y_kept, prefix_len=P)[1])) < 1e-6
    logp = lg - np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lg.max(-1, keepdims=True)
    kept = y_kept != IGNORE_INDEX
    want = -logp[kept, y_kept[kept]].mean()
    assert abs(loss.item() - want) < 1e-5
    assert Batch(x, y, P).predicted == kept.sum() == 6 + 4


def test_prefix_len_errors_say_what_to_do():
    model = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=1, n_head=2, d_model=8), 1)
    x = np.zeros((2, 5), np.int64)
    with pytest.raises(ValueError, match=r"prefix_len must be in \[0, 5\]"):
        model(x, prefix_len=6)
    with pytest.raises(ValueError, match="an int or 2 ints"):
        model(x, prefix_len=[1, 2, 3])
    cache = model.make_cache(batch_size=2)
    model(x, cache=cache)
    with pytest.raises(ValueError, match="must be read in the first chunk"):
        model(x[:, :1], cache=cache, prefix_len=1)
    bert = make_model(GPTConfig(vocab_size=9, context_length=8, n_layer=1, n_head=2, d_model=8, causal=False), 1)
    with pytest.raises(ValueError, match="needs a causal model"):
        bert(x, prefix_len=2)


# ---------------------------------------------------------------------------- batches, tokens, unmasking


def test_mlm_masking_follows_bert():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (400, 100))
    inp, targets = mlm_corrupt(x, rng, mask_id=50, ordinary=np.arange(50))
    chosen = targets != IGNORE_INDEX
    assert (chosen.sum(axis=1) == 15).all()  # round(0.15 · 100) positions per row
    np.testing.assert_array_equal(targets[chosen], x[chosen])
    np.testing.assert_array_equal(inp[~chosen], x[~chosen])  # only the chosen positions change
    masked, same = (inp[chosen] == 50).mean(), (inp[chosen] == x[chosen]).mean()
    assert abs(masked - 0.8) < 0.02 and abs(same - (0.1 + 0.1 / 50)) < 0.02  # random may hit the same token
    assert inp.max() == 50 and (inp[chosen & (inp != 50)] < 50).all()  # random ids are ordinary ones


def test_the_objectives_make_their_batches():
    tok = CharTokenizer.from_text("abcdefgh", special_tokens=[MASK_TOKEN])
    tokens = np.arange(8).repeat(20)
    for name, predicted in (("clm", lambda b: b.idx.size), ("prefix_lm", None), ("mlm", lambda b: 4 * 2)):
        b = Objective(name, tok).make_batch(tokens, 4, 16, np.random.default_rng(0))
        assert b.idx.shape == b.targets.shape == (4, 16)
        if predicted is not None:
            assert b.predicted == predicted(b)
        assert (b.prefix_len is None) == (name != "prefix_lm")
    b = Objective("prefix_lm").make_batch(tokens, 64, 16, np.random.default_rng(0))
    assert b.prefix_len.min() >= 1 and b.prefix_len.max() <= 15
    assert b.predicted == (16 - b.prefix_len + 1).sum()
    with pytest.raises(ValueError, match=r"needs a tokenizer with the special token \[MASK\]"):
        Objective("mlm", CharTokenizer.from_text("ab"))
    with pytest.raises(ValueError, match="unknown objective 'bert'"):
        Objective("bert")
    assert model_fields("mlm", dict(n_layer=2)) == dict(n_layer=2, causal=False)
    with pytest.raises(ValueError, match="needs a causal model"):
        model_fields("prefix_lm", dict(causal=False))


def test_char_tokenizer_special_tokens_follow_tiktoken_rules(tmp_path):
    tok = CharTokenizer.from_text("hello", special_tokens=[MASK_TOKEN])
    assert tok.vocab_size == 5 and tok.special_tokens == {MASK_TOKEN: 4}
    assert tok.encode("he[MASK]", allowed_special="all") == [1, 0, 4] and tok.decode([1, 0, 4]) == "he[MASK]"
    assert tok.token_bytes(4) == b"[MASK]"
    with pytest.raises(ValueError, match="disallowed"):
        CharTokenizer.from_text("[MASK]hello", special_tokens=[MASK_TOKEN]).encode("h[MASK]")
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary"):
        tok.encode("[MASK]", disallowed_special=())  # as text: "[" is no character of it
    tok.save(tmp_path / "tokenizer.json")
    assert CharTokenizer.load(tmp_path / "tokenizer.json") == tok
    assert CharTokenizer.from_text("hello").to_dict().keys() == {"format", "version", "chars"}  # files unchanged


def test_unmask_fills_every_mask_and_is_greedy_at_temperature_zero():
    model = make_model(GPTConfig(vocab_size=9, context_length=10, n_layer=1, n_head=2, d_model=8, causal=False), 0)
    ids = np.array([[1, 2, 8, 8, 8, 3], [8, 8, 1, 1, 1, 1]])
    for steps in (None, 1, 2, 7):
        out = unmask(model, ids, mask_id=8, steps=steps, temperature=0.8, top_k=4, seed=0)
        assert (out != 8).all() and (out[ids != 8] == ids[ids != 8]).all()
    one = unmask(model, ids[:1], mask_id=8, steps=1, temperature=0.0)
    want = logits(model, ids[:1])[0, 2:5, :8].argmax(-1)  # one step: every mask from the same forward
    np.testing.assert_array_equal(one[0, 2:5], want)
    np.testing.assert_array_equal(unmask(model, ids, 8, seed=3), unmask(model, ids, 8, seed=3))


# ---------------------------------------------------------------------------- through the training loop and the CLI

TINY = dict(context_length=16, n_layer=1, n_head=2, d_model=16)


def tiny_run(out_dir, objective, **kw):
    from tinyllm.train import TrainConfig

    fields = dict(data="stories", tokenizer="char", out_dir=str(out_dir), batch_size=4, max_iters=8,
                  learning_rate=3e-3, min_lr=3e-4, warmup_iters=2, eval_interval=4, eval_iters=2, log_interval=1,
                  sample_tokens=0, seed=7, objective=objective)
    return TrainConfig(**{**fields, **kw})


@pytest.mark.parametrize("objective", ["mlm", "prefix_lm"])
def test_train_with_an_objective_resumes_bit_identically(tmp_path, objective):
    from tinyllm.train import read_metrics, train

    whole = train(tiny_run(tmp_path / "whole", objective), TINY)
    assert whole.model.config.causal == (objective != "mlm")
    assert (MASK_TOKEN in whole.tokenizer.special_tokens) == (objective == "mlm")
    assert train(tiny_run(tmp_path / "split", objective), TINY, on_step=lambda step, rec: step == 4).stopped_early
    train(tiny_run(tmp_path / "split", objective), TINY, resume=True)
    losses = [[r["train_loss"] for r in read_metrics(p / "metrics.jsonl")] for p in (tmp_path / "whole",
                                                                                     tmp_path / "split")]
    assert losses[0] == losses[1] and all(np.isfinite(losses[0]))


def test_cli_objective_flag_samples_each_kind(tmp_path, capsys):
    from tinyllm.cli import main

    common = ["--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--batch-size", "2", "--no-progress",
              "--context-length", "16", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--sample-tokens", "8"]
    for objective in ("mlm", "prefix_lm"):
        out = tmp_path / objective
        assert main(["train", "--objective", objective, "--out", str(out)] + common) == 0
        assert "--- a sample" in capsys.readouterr().out
        flags = ["--prefix-lm"] if objective == "prefix_lm" else []
        assert main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "5", "--seed", "0"]
                    + flags) == 0
        text = capsys.readouterr().out.strip()
        assert text.startswith("Once") and len(text) == 9
    assert main(["train", "--objective", "bert", "--out", str(tmp_path / "x")] + common) == 2
    assert "objective must be one of clm, mlm, prefix_lm" in capsys.readouterr().err
    assert main(["train", "--objective", "mlm", "--causal", "true", "--out", str(tmp_path / "y")] + common) == 2
    assert "needs a bidirectional model" in capsys.readouterr().err
