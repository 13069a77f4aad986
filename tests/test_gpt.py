"""GPT and GPTConfig: validation, shapes, PyTorch parity, training, generation, files, counts."""

import dataclasses
import json

import numpy as np
import pytest

import tinyllm
from tinyllm import backend, optim
from tinyllm.inference.sampling import filter_logits, sample
from tinyllm.nn import GPT, GPTConfig

SMALL = dict(vocab_size=37, context_length=16, n_layer=2, n_head=4, d_model=32)


def small(**kw) -> GPTConfig:
    return GPTConfig(**{**SMALL, **kw})


def ids(B=3, T=16, V=37, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(B, T))


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def scramble(model, std=0.2, seed=0):
    """Every parameter random and large (norm weights near 1): a trained-looking model, where a wrong
    detail (an activation's approximation, an eps, a context window) shows in the logits."""
    rng = np.random.default_rng(seed)
    new = {n: (rng.normal(1.0 if "ln_" in n else 0.0, std, p.shape)).astype(np.float32)
           for n, p in model.named_parameters()}
    model.load_state_dict(new, strict=False)  # strict=False: a tied lm_head.weight is wte, set once
    return model


# ---------------------------------------------------------------------------- config


def test_config_defaults_and_derived_sizes():
    c = small()
    assert (c.d_ff, c.head_dim, c.kv_heads, c.dropout, c.bias, c.tie_embeddings) == (128, 8, 4, 0.0, True, True)
    assert (c.pos_encoding, c.norm, c.activation, c.n_kv_head, c.attention) == ("learned", "layernorm", "gelu",
                                                                               None, "full")
    assert small(n_kv_head=2).kv_heads == 2 and small(d_ff=40).d_ff == 40
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n_layer = 3


@pytest.mark.parametrize("kw, match", [
    (dict(d_model=30), "d_model=30 must be divisible by n_head=4"),
    (dict(n_kv_head=3), "n_head=4 must be a multiple of n_kv_head=3"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(vocab_size=-5), "vocab_size must be a positive integer"),
    (dict(context_length=16.0), "context_length must be a positive integer"),
    (dict(n_head=True), "n_head must be a positive integer"),
    (dict(d_ff=0), "d_ff must be a positive integer"),
    (dict(n_kv_head=0), "n_kv_head must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
    (dict(dropout=-0.1), r"dropout must be a probability in \[0, 1\)"),
    (dict(bias=1), "bias must be True or False"),
    (dict(norm_eps=0.0), "norm_eps must be a positive number"),
    (dict(norm="batchnorm"), "unknown norm 'batchnorm'; expected one of 'layernorm', 'rmsnorm'"),
    (dict(activation="tanh"), "unknown activation 'tanh'; expected one of 'gelu', 'gelu_tanh', 'relu', 'silu'"),
    (dict(pos_encoding="xpos"),
     "unknown pos_encoding 'xpos'; expected one of 'learned', 'sinusoidal', 'rope', 'alibi', 'none'"),
    (dict(attention="sparse"), "unknown attention 'sparse'; expected one of 'full', 'memory_efficient', 'flash'"),
    (dict(window=0), "window must be a positive integer"),
    (dict(window=4, causal=False), "window=4 is a causal sliding window"),
])
def test_config_rejects_bad_values_with_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def test_config_dict_round_trip_through_json():
    c = small(n_kv_head=2, norm="rmsnorm", activation="silu", bias=False, tie_embeddings=False, dropout=0.1)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["d_ff"] == 128 and GPTConfig.from_dict(d) == c
    assert GPTConfig.from_dict(dict(SMALL)) == small()  # optional fields default
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['n_embd'\]; the fields are \['vocab_size'"):
        GPTConfig.from_dict({**SMALL, "n_embd": 32})
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['n_layer'\]"):
        GPTConfig.from_dict({k: v for k, v in SMALL.items() if k != "n_layer"})


# ---------------------------------------------------------------------------- the model


def test_parameter_names_are_gpt2s_and_init_follows_gpt2():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=32, n_layer=3, n_head=4, d_model=64))
    names = set(model.state_dict())
    block = {f"transformer.h.{i}.{n}.{w}" for i in range(3) for n in ("ln_1", "attn.c_attn", "attn.c_proj",
                                                                      "ln_2", "mlp.c_fc", "mlp.c_proj")
             for w in ("weight", "bias")}
    top = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias",
           "lm_head.weight"}
    assert names == block | top
    assert model.lm_head.weight is model.transformer.wte.weight  # tied: one Parameter
    assert "lm_head.weight" not in dict(model.named_parameters())
    p = {k: host(v) for k, v in model.state_dict().items()}
    assert abs(p["transformer.h.0.mlp.c_fc.weight"].std() - 0.02) < 0.002
    assert abs(p["transformer.wte.weight"].std() - 0.02) < 0.002
    assert abs(p["transformer.h.1.mlp.c_proj.weight"].std() - 0.02 / np.sqrt(6)) < 0.001
    assert abs(p["transformer.h.2.attn.c_proj.weight"].std() - 0.02 / np.sqrt(6)) < 0.001
    assert not p["transformer.h.0.attn.c_attn.bias"].any() and (p["transformer.h.0.ln_1.weight"] == 1).all()


def test_shapes_and_options():
    for kw in (dict(), dict(pos_encoding="none", bias=False), dict(n_kv_head=1, norm="rmsnorm")):
        model = GPT(small(**kw))
        logits, loss = model(ids(T=5))
        assert logits.shape == (3, 5, 37) and loss is None and logits.dtype == np.float32
        logits, loss = model(ids(), tinyllm.tensor(ids(seed=1)))
        assert logits.shape == (3, 16, 37) and loss.shape == () and loss.dtype == np.float32
        assert abs(loss.item() - np.log(37)) < 0.1  # small init: close to uniform
    assert "wpe" not in GPT(small(pos_encoding="none")).transformer
    assert GPT(small(n_kv_head=2)).transformer.h[0].attn.c_attn.weight.shape == (32 + 2 * 2 * 8, 32)


def test_bad_idx_and_targets_give_clear_errors():
    model = GPT(small())
    with pytest.raises(TypeError, match="idx must hold integer token ids, got dtype float64"):
        model(ids().astype(np.float64))
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\), got \(16,\)"):
        model(ids()[0])
    with pytest.raises(ValueError, match=r"T=17 tokens but context_length=16; crop it"):
        model(ids(T=17))
    bad = ids()
    bad[1, 7] = 37
    with pytest.raises(ValueError, match=r"token ids in \[0, vocab_size=37\), got 37 in idx at position \(1, 7\)"):
        model(bad)
    bad[1, 7] = -1
    with pytest.raises(ValueError, match=r"got -1 in idx at position \(1, 7\)"):
        model(bad)
    with pytest.raises(ValueError, match=r"targets must be integer ids of the same shape as idx \(3, 16\)"):
        model(ids(), ids(T=15))


def test_ignore_index_targets_add_nothing():
    model = GPT(small())
    x, y = ids(), ids(seed=1)
    y2 = y.copy()
    y2[:, :8] = GPT.IGNORE_INDEX
    logits, loss = model(x, y2)
    lg = host(logits)[:, 8:].reshape(-1, 37).astype(np.float64)
    ref = np.mean(np.log(np.exp(lg).sum(-1)) - lg[np.arange(len(lg)), y[:, 8:].reshape(-1)])
    assert abs(loss.item() - ref) < 1e-5


def test_dropout_is_random_in_training_and_off_in_eval():
    tinyllm.manual_seed(0)
    model = GPT(small(dropout=0.2))
    x = ids()
    a, b = host(model(x)[0]), host(model(x)[0])
    assert np.abs(a - b).max() > 1e-3
    model.eval()
    c = host(model(x)[0])
    plain = GPT(small())
    plain.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(c, host(plain(x)[0]))


# ---------------------------------------------------------------------------- PyTorch parity

PARITY = {
    "gpt2": dict(),
    "no-bias-untied": dict(bias=False, tie_embeddings=False),
    "rmsnorm-silu-gqa": dict(norm="rmsnorm", activation="silu", n_kv_head=2, norm_eps=0.1),
    "mqa-gelu_tanh-nopos": dict(n_kv_head=1, activation="gelu_tanh", pos_encoding="none", d_ff=48, norm_eps=0.1),
    "relu-3-layers": dict(activation="relu", n_layer=3, n_head=2),
    "sinusoidal": dict(pos_encoding="sinusoidal"),
    "rope-gqa": dict(pos_encoding="rope", n_kv_head=2, rope_theta=500.0),
    "rope-rmsnorm-silu": dict(pos_encoding="rope", norm="rmsnorm", activation="silu", bias=False, n_head=2),
    "alibi": dict(pos_encoding="alibi"),
    "alibi-6-heads-mqa": dict(pos_encoding="alibi", n_head=6, d_model=48, n_kv_head=1),
    "llama-swiglu": dict(pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False, n_kv_head=2),
    "geglu-post-norm": dict(activation="geglu", norm_position="post"),
    "post-norm-rmsnorm-relu": dict(norm_position="post", norm="rmsnorm", activation="relu", n_layer=3),
    "bidirectional-alibi": dict(causal=False, pos_encoding="alibi"),
}


@pytest.mark.parametrize("name", PARITY)
def test_logits_loss_and_grads_equal_pytorch(torch, name):
    import torch_gpt

    tinyllm.manual_seed(0)
    config = small(**PARITY[name])
    model = scramble(GPT(config))
    ref = torch_gpt.GPT.from_arrays(config, torch_gpt.state_from_tinyllm(model))
    assert model.num_parameters() == ref.num_parameters()
    assert model.num_parameters(non_embedding=True) == ref.num_parameters(non_embedding=True)
    x, y = ids(T=13), ids(T=13, seed=1)
    logits, loss = model(x, y)
    loss.backward()
    t_logits, t_loss = ref(torch.tensor(x), torch.tensor(y))
    t_loss.backward()
    np.testing.assert_allclose(host(logits), t_logits.detach().numpy(), atol=1e-5, rtol=0)
    assert abs(loss.item() - t_loss.item()) < 1e-5
    t_grads = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    grads = {n: host(p.grad) for n, p in model.named_parameters()}
    assert grads.keys() == t_grads.keys()
    for n in grads:
        np.testing.assert_allclose(grads[n], t_grads[n], atol=1e-5, rtol=1e-4, err_msg=n)


def test_the_pytorch_comparison_can_fail(torch):
    # swapping two query heads with key heads in c_attn must change the logits: the layout is checked
    import torch_gpt

    config = small()
    model = GPT(config)
    state = torch_gpt.state_from_tinyllm(model)
    w = state["transformer.h.0.attn.c_attn.weight"]
    w[:8], w[32:40] = w[32:40].copy(), w[:8].copy()
    x = ids()
    ours = host(model(x)[0])
    theirs = torch_gpt.GPT.from_arrays(config, state)(torch.tensor(x))[0].detach().numpy()
    assert np.abs(ours - theirs).max() > 1e-4


# ---------------------------------------------------------------------------- training


def test_overfits_a_fixed_batch():
    tinyllm.manual_seed(0)
    model = GPT(small(n_layer=2))
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x, y = ids(B=4, seed=2), ids(B=4, seed=3)  # random targets: only memorizing lowers the loss
    losses = []
    for _ in range(40):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 3.4 and losses[-1] < 0.5 * losses[0], losses


def test_a_training_step_on_strict_makes_no_host_transfers():
    tinyllm.manual_seed(0)
    with tinyllm.use_device("strict"):
        model = GPT(small(n_kv_head=2))
        opt = optim.AdamW(model.parameters(), lr=1e-3)
        x, y = tinyllm.tensor(ids()), tinyllm.tensor(ids(seed=1))
        backend.reset_transfer_stats()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        assert backend.transfer_stats() == {"explicit": 0, "scalar": 0}
    assert loss.device == "strict" and model.transformer.h[0].attn.c_attn.weight.grad.device == "strict"


# ---------------------------------------------------------------------------- generation


def test_generate_is_repeatable_for_a_seed():
    model = GPT(small())
    prompt = ids(B=2, T=3)
    a = model.generate(prompt, 20, seed=7)
    assert a.shape == (2, 23) and a.dtype == np.int64 and (a[:, :3] == prompt).all()
    assert (model.generate(prompt, 20, seed=7) == a).all()
    assert (model.generate(prompt, 20, seed=8) != a).any()
    tinyllm.manual_seed(5)
    b = model.generate(prompt, 10)
    tinyllm.manual_seed(5)
    assert (model.generate(prompt, 10) == b).all()  # seed=None follows tinyllm.manual_seed


def test_greedy_is_the_argmax_of_a_full_forward_at_each_step():
    model = scramble(GPT(small(dropout=0.1)))
    model.train()
    prompt = ids(B=2, T=5)
    out = model.generate(prompt, 16, temperature=0.0)  # 21 tokens > context 16: the window slides
    assert model.training  # mode restored
    model.eval()
    for t in range(5, 21):
        window = out[:, max(0, t - 16):t]
        expect = host(model(window)[0])[:, -1].argmax(-1)
        assert (out[:, t] == expect).all(), t
    assert (model.generate(prompt, 16, top_k=1, seed=3) == out).all()  # top-1 sampling is greedy


def test_generate_feeds_the_last_context_length_tokens():
    model = GPT(small())
    seen, inner = [], model.next_token_logits
    model.next_token_logits = lambda window, cache=None: seen.append(window.copy()) or inner(window, cache)
    out = model.generate(ids(B=2, T=5), 16, seed=0, use_cache=False)
    assert [w.shape[1] for w in seen] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16]
    for t, window in enumerate(seen, start=5):
        np.testing.assert_array_equal(window, out[:, max(0, t - 16):t])


def test_cached_generate_reads_the_prompt_once_then_one_token_then_rereads_a_slid_window():
    model = GPT(small())
    seen, inner = [], model.next_token_logits
    model.next_token_logits = lambda new, cache=None: seen.append((new.copy(), cache.length)) or inner(new, cache)
    out = model.generate(ids(B=2, T=5), 16, seed=0, fast_decode=False)
    # prefill 5, eleven 1-token decodes up to the context (16), then each step re-reads the slid window
    assert [(w.shape[1], start) for w, start in seen] == [(5, 0)] + [(1, t) for t in range(5, 16)] + [(16, 0)] * 4
    seen.clear()
    assert (model.generate(ids(B=2, T=5), 16, seed=0) == out).all()  # the 1-token decodes on raw arrays instead
    assert [(w.shape[1], start) for w, start in seen] == [(5, 0)] + [(16, 0)] * 4
    del model.next_token_logits
    assert (model.generate(ids(B=2, T=5), 16, seed=0, use_cache=False) == out).all()


def test_generate_rejects_bad_arguments():
    model = GPT(small())
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        model.generate(ids(T=2), 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be None or an integer >= 1"):
        model.generate(ids(T=2), 3, top_k=0)
    with pytest.raises(ValueError, match=r"idx must be integer ids of shape \(B, T\) with T >= 1"):
        model.generate(np.zeros((1, 0), np.int64), 3)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0"):
        model.generate(ids(T=2), -1)


def test_filter_logits_and_sample():
    out = filter_logits(np.array([[1.0, 3.0, 2.0]]), temperature=2.0, top_k=2)
    np.testing.assert_array_equal(out, [[-np.inf, 1.5, 1.0]])
    np.testing.assert_array_equal(filter_logits(np.array([[1.0, 2.0, 2.0, 0.0]]), top_k=2),
                                  [[-np.inf, 2.0, 2.0, -np.inf]])
    assert filter_logits(np.array([[1.0, 2.0]]), top_k=5).tolist() == [[1.0, 2.0]]  # k >= V keeps all
    p = np.array([0.2, 0.5, 0.3, 0.0])
    rng = np.random.default_rng(0)
    logits = np.log(np.maximum(p, 1e-300))
    logits[3] = -np.inf
    draws = sample(np.repeat(logits[None], 20000, axis=0), rng)
    freq = np.bincount(draws, minlength=4) / 20000
    np.testing.assert_allclose(freq, p, atol=0.015)
    assert freq[3] == 0
    assert sample(np.array([[0.0, 5.0, 1.0]]), rng, greedy=True).tolist() == [1]


# ---------------------------------------------------------------------------- files


@pytest.mark.parametrize("tied", [True, False])
def test_save_and_load_round_trip(tmp_path, tied):
    model = GPT(small(tie_embeddings=tied, n_kv_head=2))
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    stored = tinyllm.load(tmp_path / "m" / "model.safetensors")
    assert ("lm_head.weight" in stored) == (not tied)  # a tied head is stored once, as wte
    loaded = GPT.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    assert (loaded.lm_head.weight is loaded.transformer.wte.weight) == tied
    x = ids()
    np.testing.assert_array_equal(host(loaded(x)[0]), host(model.eval()(x)[0]))


def test_a_saved_model_loads_in_pytorch(tmp_path, torch):
    import safetensors.numpy
    import torch_gpt

    model = GPT(small())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    ref = torch_gpt.GPT.from_arrays(config, safetensors.numpy.load_file(tmp_path / "model.safetensors"))
    x = ids()
    np.testing.assert_allclose(ref(torch.tensor(x))[0].detach().numpy(), host(model(x)[0]), atol=1e-5)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json in"):
        GPT.from_pretrained(tmp_path)
    GPT(small()).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "d_model": 64}))
    with pytest.raises(ValueError, match="model.safetensors does not match config.json(.|\n)*size mismatch"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "colour": "red"}))
    with pytest.raises(ValueError, match=r"not a valid GPT config: .*unknown key\(s\) \['colour'\]"):
        GPT.from_pretrained(tmp_path)
    untied = GPT(small(tie_embeddings=False))
    untied.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(small(tie_embeddings=True).to_dict()))
    with pytest.raises(ValueError, match="lm_head.weight differs from transformer.wte.weight"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors in"):
        GPT.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- counts


def test_parameter_and_flop_counts_by_hand():
    # V=10, T=4, L=1, nh=1, C=2, d_ff=8, biases, tied:
    # wte 20 + wpe 8 + ln_1 4 + c_attn (6·2+6) 18 + attn.c_proj (2·2+2) 6 + ln_2 4 + c_fc (8·2+8) 24
    # + mlp.c_proj (2·8+2) 18 + ln_f 4 = 106; without wpe: 98. FLOPs: 6·98 + 12·1·2·4 = 684.
    model = GPT(GPTConfig(vocab_size=10, context_length=4, n_layer=1, n_head=1, d_model=2, d_ff=8))
    assert model.num_parameters() == 106 and model.num_parameters(non_embedding=True) == 98
    assert model.flops_per_token() == 684 and model.flops_per_token(seq_len=2) == 6 * 98 + 12 * 2 * 2
    untied = GPT(GPTConfig(vocab_size=10, context_length=4, n_layer=1, n_head=1, d_model=2, d_ff=8,
                           tie_embeddings=False))
    assert untied.num_parameters() == 126 and untied.num_parameters(non_embedding=True) == 98
