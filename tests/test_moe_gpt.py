"""A GPT with mixture-of-experts blocks (§8): where the experts sit, the loss with its auxiliary parts, parameter
and FLOP counts, the KV cache and generation (through the modules: the raw-array Decoder is for plain models),
files, training and its metrics, and what the capacity limit does to causality in training."""

import json

import numpy as np
import pytest

import tinyllm
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.decoding import why_not_decodable
from tinyllm.nn.mlp import MLP
from tinyllm.nn.moe import MoE, moe_layers, moe_report
from tinyllm.train import TrainConfig, read_metrics, train

BASE = dict(vocab_size=24, context_length=16, n_layer=2, n_head=2, d_model=16, d_ff=32)


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def moe_model(seed=0, scale=0.3, **kw) -> GPT:
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**{**BASE, "n_expert": 4, **kw}))
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, scale, p.shape).astype(np.float32)).data
    return model


def test_the_experts_replace_the_mlp_in_every_moe_every_th_block():
    model = GPT(GPTConfig(**{**BASE, "n_layer": 4, "n_expert": 3, "expert_top_k": 2, "moe_every": 2}))
    kinds = [type(b.mlp) for b in model.transformer.h]
    assert kinds == [MLP, MoE, MLP, MoE]
    names = dict(model.named_parameters())
    assert "transformer.h.1.mlp.router.weight" in names and "transformer.h.3.mlp.experts.2.c_proj.bias" in names
    assert names["transformer.h.1.mlp.router.weight"].shape == (3, 16)
    assert model.transformer.h[1].mlp.top_k == 2
    resid_std = 0.02 / np.sqrt(2 * 4)  # GPT-2's residual init reaches every expert's c_proj
    assert abs(host(names["transformer.h.3.mlp.experts.1.c_proj.weight"]).std() - resid_std) < 0.3 * resid_std


def test_identical_experts_all_chosen_equal_the_dense_model():
    """top_k = n_expert and renormalized gates sum to 1: with every expert a copy of the MLP, the MoE model
    is the dense model, logits and loss."""
    tinyllm.manual_seed(0)
    dense = GPT(GPTConfig(**BASE)).eval()
    moe = GPT(GPTConfig(**BASE, n_expert=3, expert_top_k=3)).eval()
    state = dense.state_dict()
    for name, p in moe.named_parameters():
        if ".experts." in name:
            block, rest = name.split(".mlp.experts.")
            p.data[...] = state[f"{block}.mlp.{rest.split('.', 1)[1]}"].data
        elif name in state:
            p.data[...] = state[name].data
    x = np.random.default_rng(0).integers(0, 24, (2, 16))
    (a, la), (b, lb) = dense(x, x), moe(x, x)
    np.testing.assert_allclose(host(b), host(a), atol=2e-6, rtol=0)
    np.testing.assert_allclose(host(lb), host(la), rtol=1e-6)  # eval mode: the LM loss alone


def test_the_loss_adds_the_aux_losses_in_training_only_and_reports_each_part():
    model = moe_model(moe_aux_loss_coef=0.5, moe_z_loss_coef=0.25)
    x = np.random.default_rng(1).integers(0, 24, (2, 16))
    _, loss = model(x, x)
    parts = {k: float(host(v)) for k, v in model.loss_parts.items()}
    layers = [m for _, m in moe_layers(model)]
    expected_aux = sum(0.5 * float(host(m.balance_loss)) + 0.25 * float(host(m.z_loss)) for m in layers)
    assert set(parts) == {"lm", "moe_aux", "moe_balance", "moe_z"}
    np.testing.assert_allclose(parts["moe_aux"], expected_aux, rtol=1e-5)
    np.testing.assert_allclose(float(host(loss)), parts["lm"] + parts["moe_aux"], rtol=1e-6)
    np.testing.assert_allclose(parts["moe_balance"], np.mean([float(host(m.balance_loss)) for m in layers]), rtol=1e-6)
    loss.backward()  # the balance loss reaches the routers
    assert all(np.abs(host(m.router.weight.grad)).max() > 0 for m in layers)
    model.eval()
    _, eval_loss = model(x, x)
    np.testing.assert_allclose(float(host(eval_loss)), float(host(model.loss_parts["lm"])), rtol=0)
    dense = GPT(GPTConfig(**BASE))
    dense(x, x)
    assert set(dense.loss_parts) == {"lm"}


def test_parameter_and_flop_counts_count_the_active_experts():
    c = GPTConfig(**{**BASE, "n_expert": 4, "expert_top_k": 2, "moe_every": 2})
    model, dense = GPT(c), GPT(GPTConfig(**BASE))
    expert = 2 * 16 * 32 + 32 + 16  # c_fc and c_proj with biases
    router = 16 * 4
    assert model.num_parameters() == dense.num_parameters() + 3 * expert + router  # 1 MoE block of 2
    assert model.num_parameters(active=True) == dense.num_parameters() + expert + router  # top-2 of 4
    assert model.flops_per_token() - dense.flops_per_token() == 6 * (expert + router)


def test_generation_falls_back_to_the_modules_and_the_cache_changes_nothing():
    model = moe_model(expert_top_k=2, expert_capacity_factor=0.5).eval()
    assert model.make_decoder() is None and "is a MoE" in why_not_decodable(model)
    x = np.random.default_rng(2).integers(0, 24, (3, 16))
    full = host(model(x)[0])
    cache = model.make_cache(batch_size=3)
    pieces = [host(model(x[:, :5], cache=cache)[0])] + [host(model(x[:, t:t + 1], cache=cache)[0])
                                                          for t in range(5, 16)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5, rtol=0)
    prompt = x[:, :4]
    plain = model.generate(prompt, 20, temperature=0.0, use_cache=False)  # runs past the context: slides
    np.testing.assert_array_equal(model.generate(prompt, 20, temperature=0.0), plain)
    np.testing.assert_array_equal(model.generate(prompt, 20, temperature=0.0, fast_decode=False), plain)
    assert model.generate(prompt, 5, temperature=0.9, seed=0).shape == (3, 9)


def test_save_and_load_round_trip(tmp_path):
    model = moe_model(expert_top_k=2, moe_every=2).eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["n_expert"] == 4
    loaded = GPT.from_pretrained(tmp_path)
    x = np.random.default_rng(3).integers(0, 24, (1, 16))
    np.testing.assert_array_equal(host(loaded(x)[0]), host(model(x)[0]))


def test_training_logs_each_layers_routing(tmp_path):
    cfg = TrainConfig(data="stories", tokenizer="char", out_dir=str(tmp_path), batch_size=4, max_iters=4,
                      learning_rate=3e-3, warmup_iters=1, eval_interval=4, eval_iters=1, log_interval=2,
                      sample_tokens=0, seed=7)
    fields = dict(context_length=16, n_layer=2, n_head=2, d_model=16, n_expert=2, expert_capacity_factor=1.0,
                  moe_every=2)
    result = train(cfg, fields)
    steps = [r for r in read_metrics(tmp_path / "metrics.jsonl") if not r.get("eval")]
    assert [r["step"] for r in steps] == [1, 3]
    for r in steps:
        layers = r["moe"]["layers"]
        assert list(layers) == ["transformer.h.1.mlp"]
        s = layers["transformer.h.1.mlp"]
        assert sum(s["tokens_per_expert"]) + s["dropped"] == 4 * 16 and s["capacity"] == 32
        assert 0.5 < r["moe"]["balance"] < 2.0 and r["lm_loss"] <= r["train_loss"]
    assert moe_report(result.model)["layers"]["transformer.h.1.mlp"]["capacity"] is None  # evaluated last


# ------------------------------------------------------------------ capacity and causality in training


def outputs(moe, x):
    with tinyllm.no_grad():
        return host(moe(tinyllm.tensor(x)))


def changed_past(moe, x, row, t, rng):
    """Whether changing x[row, t+1:] changes the layer's outputs at positions <= t of that row."""
    x2 = x.copy()
    x2[row, t + 1:] = rng.normal(size=x2[row, t + 1:].shape)
    return not np.array_equal(outputs(moe, x)[row, :t + 1], outputs(moe, x2)[row, :t + 1])


def test_with_a_capacity_top_1_stays_causal_within_a_row_but_depends_on_the_other_rows():
    rng = np.random.default_rng(0)
    moe = MoE(8, 16, 4, top_k=1, capacity_factor=0.5)  # training mode: overflow dropped
    other_rows = 0
    for _ in range(20):
        x = rng.normal(size=(3, 12, 8)).astype(np.float32)
        for row in range(3):
            for t in (2, 6, 10):
                assert not changed_past(moe, x, row, t, rng)  # slots compete in token order: later ones lose
        x2 = x.copy()
        x2[0] = rng.normal(size=x2[0].shape)  # another sequence of the batch
        other_rows += not np.array_equal(outputs(moe, x)[1:], outputs(moe, x2)[1:])
    assert other_rows > 0
    moe.eval()  # no capacity: every token's output is its own business
    x = rng.normal(size=(3, 12, 8)).astype(np.float32)
    x2 = x.copy()
    x2[0] = rng.normal(size=x2[0].shape)
    np.testing.assert_array_equal(outputs(moe, x)[1:], outputs(moe, x2)[1:])


def test_with_a_capacity_top_2_lets_later_tokens_change_earlier_outputs():
    """GShard's priority puts every first choice before any second choice, so a later token's first choice
    can push an earlier token's second choice out of an expert: information flows backwards in training."""
    rng = np.random.default_rng(0)
    moe = MoE(8, 16, 4, top_k=2, capacity_factor=0.5)
    leaks = sum(changed_past(moe, rng.normal(size=(1, 12, 8)).astype(np.float32), 0, 5, rng) for _ in range(20))
    assert leaks > 0
    moe.eval()
    assert not any(changed_past(moe, rng.normal(size=(1, 12, 8)).astype(np.float32), 0, 5, rng) for _ in range(20))


def test_bad_moe_config_says_what_to_do():
    with pytest.raises(ValueError, match="expert_top_k=3 must be <= n_expert=2"):
        GPTConfig(**BASE, n_expert=2, expert_top_k=3)
    with pytest.raises(ValueError, match="moe_every=3 > n_layer=2"):
        GPTConfig(**BASE, n_expert=2, moe_every=3)
    with pytest.raises(ValueError, match="expert_capacity_factor must be None"):
        GPTConfig(**BASE, n_expert=2, expert_capacity_factor=-1.0)


def test_the_size_bound_counts_the_experts_so_an_edited_config_is_refused():
    from tinyllm.nn.pretrained import check_sizes, min_parameters

    for kw in (dict(n_expert=4), dict(n_expert=3, moe_every=2, n_layer=3), dict(n_expert=8, expert_top_k=2)):
        c = GPTConfig(**{**BASE, **kw})
        model = GPT(c)
        n = sum(t.data.size for name, t in model.state_dict().items() if name != "lm_head.weight")
        assert GPTConfig(**BASE).n_expert == 0 and min_parameters(GPTConfig(**BASE)) < min_parameters(c) <= n
    with pytest.raises(ValueError, match="describes a model of at least"):
        check_sizes(GPTConfig(**{**BASE, "n_expert": 10**9}), n, "config.json", "model.safetensors")
