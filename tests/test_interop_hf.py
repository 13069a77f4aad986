"""Hugging Face interop (tinyllm/interop/hf*.py): every check that needs no third-party tool.

The configs map both ways and refuse what no standard architecture expresses (naming the field);
the weights survive save_hf -> load_hf bit for bit; tokenizers survive tokenizer.json and back;
safetensors reading handles BF16, F16, shards, and refuses pickles and damaged headers.
The comparisons against transformers itself are in tests/test_stacks_hf.py.
"""

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.interop import from_hf_config, hf_architecture, load_hf, save_hf, to_hf_config, tokenizer_from_hf
from tinyllm.interop.hf_tokenizer import tokenizer_json
from tinyllm.interop.hf_weights import read_hf_weights, read_safetensors
from tinyllm.nn import GPT, GPTConfig
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

TEXT = ("The quick brown fox jumps over the lazy dog. It's 1234 o'clock, isn't it?\n\n"
        "Ünïcödé wörds — and emoji 🙂 too;\ttabs,   spaces  \n") * 3

GPT2_STYLE = GPTConfig(vocab_size=300, context_length=24, n_layer=2, n_head=2, d_model=16, activation="gelu_tanh")
LLAMA_STYLE = GPTConfig(vocab_size=300, context_length=24, n_layer=2, n_head=4, n_kv_head=2, d_model=32,
                        pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False, tie_embeddings=False,
                        rope_theta=500.0, norm_eps=1e-6)


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXT, vocab_size=299, special_tokens=["<|endoftext|>"], progress=False)


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize("cfg", [GPT2_STYLE, LLAMA_STYLE,
                                 dataclasses.replace(GPT2_STYLE, activation="relu", tie_embeddings=False, dropout=0.1),
                                 dataclasses.replace(LLAMA_STYLE, activation="geglu", bias=True, n_kv_head=None)])
def test_config_round_trip(cfg):
    hf = to_hf_config(cfg)
    assert hf["architectures"] == [{"learned": "GPT2LMHeadModel", "rope": "LlamaForCausalLM"}[cfg.pos_encoding]]
    assert from_hf_config(json.loads(json.dumps(hf))) == cfg


@pytest.mark.parametrize("change, field", [
    (dict(pos_encoding="alibi"), "pos_encoding"), (dict(pos_encoding="sinusoidal"), "pos_encoding"),
    (dict(norm="rmsnorm"), "norm"), (dict(activation="swiglu"), "activation"), (dict(n_kv_head=1), "n_kv_head"),
    (dict(norm_position="post"), "norm_position"), (dict(causal=False), "causal"), (dict(n_expert=4), "n_expert"),
])
def test_inexpressible_configs_are_refused_by_field(change, field):
    with pytest.raises(ValueError, match=f"GPTConfig.{field}="):
        hf_architecture(dataclasses.replace(GPT2_STYLE, **change))


def test_llama_needs_rmsnorm_and_a_gate():
    for change, field in ((dict(norm="layernorm"), "norm"), (dict(activation="gelu"), "activation")):
        with pytest.raises(ValueError, match=f"GPTConfig.{field}="):
            hf_architecture(dataclasses.replace(LLAMA_STYLE, **change))


def test_unused_fields_do_not_block_export():
    assert hf_architecture(dataclasses.replace(GPT2_STYLE, rope_theta=123.0, moe_every=2,
                                               attention="flash")) == "gpt2"


def test_hf_configs_tinyllm_cannot_compute_are_refused():
    llama = to_hf_config(LLAMA_STYLE)
    for key, value, words in (("rope_scaling", {"rope_type": "linear", "factor": 2.0}, "rope_scaling"),
                              ("head_dim", 4, "head_dim"), ("hidden_act", "relu", "hidden_act")):
        with pytest.raises(ValueError, match=words):
            from_hf_config({**llama, key: value})
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        from_hf_config({**to_hf_config(GPT2_STYLE), "scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(ValueError, match="'bert' .* not one tinyllm reads"):
        from_hf_config({"model_type": "bert"})


# ----------------------------------------------------------------------------- weights

@pytest.mark.parametrize("cfg", [GPT2_STYLE, LLAMA_STYLE, dataclasses.replace(GPT2_STYLE, bias=False),
                                 dataclasses.replace(LLAMA_STYLE, bias=True, tie_embeddings=True)])
def test_save_then_load_gives_the_same_model(tmp_path, bpe, cfg):
    model = GPT(cfg).eval()
    save_hf(model, bpe, tmp_path)
    back, tok = load_hf(tmp_path)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 11))
    np.testing.assert_array_equal(host(back(ids)[0]), host(model(ids)[0]))
    # a config without biases comes back from GPT-2 with zero biases: the same function
    assert back.config == (dataclasses.replace(cfg, bias=True) if cfg.pos_encoding == "learned" else cfg)
    assert tok.ranks == bpe.ranks and tok.special_tokens == bpe.special_tokens
    files = json.loads((tmp_path / "config.json").read_text())
    assert files["eos_token_id"] == bpe.special_tokens["<|endoftext|>"]


def test_layouts_are_huggingface_s(tmp_path, bpe):
    save_hf(GPT(GPT2_STYLE), bpe, tmp_path / "g")
    g = read_safetensors(tmp_path / "g" / "model.safetensors")
    assert g["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)  # Conv1D: (in, out)
    assert "lm_head.weight" not in g  # tied: left out, as transformers writes it
    model = GPT(LLAMA_STYLE)
    save_hf(model, bpe, tmp_path / "l")
    w = read_safetensors(tmp_path / "l" / "model.safetensors")
    qkv = host(model.transformer.h[1].attn.c_attn.weight)  # (32 + 2·16, 32): q | k | v rows
    np.testing.assert_array_equal(w["model.layers.1.self_attn.k_proj.weight"], qkv[32:48])
    np.testing.assert_array_equal(w["model.layers.1.self_attn.v_proj.weight"], qkv[48:])
    assert w["lm_head.weight"].shape == (300, 32)


def test_save_refuses_before_writing(tmp_path, bpe):
    with pytest.raises(ValueError, match="GPTConfig.pos_encoding='alibi'"):
        save_hf(GPT(dataclasses.replace(GPT2_STYLE, pos_encoding="alibi")), bpe, tmp_path / "x")
    with pytest.raises(ValueError, match="tokenizer has 299 tokens but the model's vocab_size is 64"):
        save_hf(GPT(dataclasses.replace(GPT2_STYLE, vocab_size=64)), bpe, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _safetensors(tensors: dict, metadata=None) -> bytes:
    """A safetensors file by hand: tensors name -> (dtype, shape, raw bytes)."""
    header, body = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


def test_bf16_f16_and_shards_read_as_float32(tmp_path):
    x = np.array([[1.5, -2.25], [3.0e-3, 65504.0]], np.float32)
    bf16 = (x.view(np.uint32) >> 16).astype("<u2").tobytes()  # the top 16 bits (3e-3 loses some)
    (tmp_path / "a.safetensors").write_bytes(_safetensors({"w": ("BF16", (2, 2), bf16)}))
    (tmp_path / "b.safetensors").write_bytes(_safetensors({"v": ("F16", (2, 2), x.astype("<f2").tobytes())}))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w": "a.safetensors", "v": "b.safetensors"}}))
    got = read_hf_weights(tmp_path)
    truncated = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)  # bfloat16 keeps the top 16 bits
    np.testing.assert_array_equal(got["w"], truncated)
    np.testing.assert_array_equal(got["v"], x.astype(np.float16).astype(np.float32))
    assert got["w"].dtype == got["v"].dtype == np.float32


def test_bad_weight_files_are_refused_with_a_fix(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="pickle.*safe_serialization=True"):
        read_hf_weights(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(_safetensors({"w": ("F32", (4,), b"\0" * 12)}))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_hf_weights(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(_safetensors({"w": ("I8", (4,), b"\0" * 4)}))
    with pytest.raises(ValueError, match="dtype I8"):
        read_hf_weights(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../x.safetensors"}}))
    with pytest.raises(ValueError, match="outside its folder"):
        read_hf_weights(tmp_path)


def test_missing_tensor_is_named(tmp_path, bpe):
    save_hf(GPT(LLAMA_STYLE), bpe, tmp_path)
    w = read_safetensors(tmp_path / "model.safetensors")
    del w["model.layers.1.mlp.up_proj.weight"]
    from tinyllm.interop.hf_weights import write_safetensors

    write_safetensors(w, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="model.layers.1.mlp.up_proj.weight"):
        load_hf(tmp_path)


# ----------------------------------------------------------------------------- tokenizers

def test_vocab_and_merges_worked_example():
    ranks = {bytes([b]): b for b in range(256)} | {b" a": 256, b" ab": 257}
    model = tokenizer_json(BPETokenizer(ranks, "gpt2"))["model"]
    assert model["vocab"]["Ġab"] == 257 and model["vocab"]["!"] == ord("!")
    assert model["merges"] == ["Ġ a", "Ġa b"]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", None])
def test_bpe_tokenizer_round_trips_through_tokenizer_json(pattern):
    tok = BPETokenizer.train(TEXT, vocab_size=320, pattern=pattern, special_tokens=["<|endoftext|>", "<|pad|>"],
                             progress=False)
    back = tokenizer_from_hf(json.loads(json.dumps(tokenizer_json(tok))))
    assert back.ranks == tok.ranks and back.pattern == tok.pattern and back.special_tokens == tok.special_tokens


def test_char_tokenizer_round_trips_through_tokenizer_json():
    tok = CharTokenizer.from_text(TEXT, special_tokens=["[MASK]"])
    d = tokenizer_json(tok)
    assert d["model"]["merges"] == [] and d["decoder"] == {"type": "Fuse"}
    assert tokenizer_from_hf(json.loads(json.dumps(d))) == tok


def test_foreign_tokenizers_are_refused():
    with pytest.raises(ValueError, match="'Unigram'"):
        tokenizer_from_hf({"model": {"type": "Unigram", "vocab": []}})
    tok = BPETokenizer.train(TEXT, vocab_size=280, progress=False)
    d = tokenizer_json(tok)
    d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a|aa)+$"
    with pytest.raises(ValueError, match="not one tinyllm knows"):
        tokenizer_from_hf(d)
    assert tokenizer_from_hf(d, trust_pattern=True).pattern == "(a|aa)+$"
    d = tokenizer_json(tok)
    d["model"]["merges"] = d["model"]["merges"][::-1]
    with pytest.raises(ValueError, match="order of its merges"):
        tokenizer_from_hf(d)


# ----------------------------------------------------------------------------- the commands

def test_export_and_import_commands_round_trip(tmp_path, bpe, capsys):
    from tinyllm.cli import main
    from tinyllm.data import save_tokenizer
    from tinyllm.train import load_run

    model = GPT(LLAMA_STYLE)
    model.save_pretrained(tmp_path / "run")
    save_tokenizer(bpe, tmp_path / "run")
    export = ["export", "hf", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]
    assert main(export) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    assert main(export) == 2
    assert "already holds" in capsys.readouterr().err
    assert main(export + ["--force"]) == 0
    assert any(p.name.startswith(".replaced-") for p in (tmp_path / "hf").iterdir())
    assert main(["import", "hf", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    back, tok = load_run(tmp_path / "back")
    ids = np.arange(12)[None] % 300
    np.testing.assert_array_equal(host(back(ids)[0]), host(model(ids)[0]))
    assert tok.ranks == bpe.ranks
    assert main(["sample", "--ckpt", str(tmp_path / "back"), "--prompt", "The", "--max-new-tokens", "5",
                 "--seed", "0"]) == 0


def test_commands_refuse_with_one_line(tmp_path, bpe, capsys):
    from tinyllm.cli import main

    GPT(dataclasses.replace(GPT2_STYLE, pos_encoding="alibi")).save_pretrained(tmp_path / "alibi")
    from tinyllm.data import save_tokenizer

    save_tokenizer(bpe, tmp_path / "alibi")
    for kind in ("hf", "onnx"):
        assert main(["export", kind, "--ckpt", str(tmp_path / "alibi"), "--out", str(tmp_path / "hf")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinyllm export: GPTConfig.pos_encoding='alibi'") and err.count("\n") == 1
    assert not (tmp_path / "hf").exists()
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text(json.dumps(to_hf_config(GPT2_STYLE)))
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    assert main(["import", "hf", str(tmp_path / "pickled"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm import: ") and "pickle" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, bpe):
    folder = tmp_path_factory.mktemp("hf")
    save_hf(GPT(LLAMA_STYLE), bpe, folder)
    return {name: (folder / name).read_bytes() for name in ("config.json", "tokenizer.json", "model.safetensors")}


@settings(max_examples=30)
@given(data=st.data())
def test_a_damaged_hf_folder_loads_or_is_refused(tmp_path_factory, hf_folder, data):
    """Whatever a stranger's folder holds, load_hf gives a model or a ValueError/OSError, never another exception."""
    folder = tmp_path_factory.mktemp("damaged")
    name = data.draw(st.sampled_from(sorted(hf_folder)))
    for other, raw in hf_folder.items():
        (folder / other).write_bytes(raw)
    raw = bytearray(hf_folder[name])
    limit = min(len(raw), 4000)  # the JSON texts and the safetensors header
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, limit - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    (folder / name).write_bytes(bytes(raw))
    try:
        load_hf(folder)
    except (ValueError, OSError):
        pass
