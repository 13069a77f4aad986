"""tinyllm <-> Hugging Face transformers, checked by transformers itself (skipped when it is absent).

Export: a tinyllm GPT-2-style and Llama-style (grouped-query) model, saved with save_hf, loaded with
AutoModelForCausalLM and AutoTokenizer: logits within 1e-4, greedy generation equal, every text
encoded to the same ids (special tokens included) and decoded back. Import: random models built by
transformers (GPT2LMHeadModel; LlamaForCausalLM with GQA, attention biases, an untied head) and a
byte-level BPE trained by the tokenizers library, read by load_hf: the same logits, tokens and ids.
Nothing is downloaded.
"""

import numpy as np
import pytest

import tinyllm
from tinyllm.interop import load_hf, save_hf
from tinyllm.nn import GPT, GPTConfig
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

transformers = pytest.importorskip("transformers", reason="transformers is not installed: pip install transformers")
torch = pytest.importorskip("torch")

TEXTS = ["The quick brown fox jumps over the lazy dog. It's 1234 o'clock, isn't it?",
         "Ünïcödé wörds — and emoji 🙂 too;\ttabs,   spaces  \n\n\nend  ",
         "two<|endoftext|>texts<|endoftext|>", "   leading spaces", "", "x"]
CORPUS = " ".join(TEXTS[:2]) * 8


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def hf_greedy(hf, ids, n):
    hf.generation_config.eos_token_id = None  # tinyllm's generate does not stop at a token either
    hf.generation_config.pad_token_id = 0
    with torch.no_grad():
        return hf.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                           max_new_tokens=n, do_sample=False).numpy()


def check_same_model(model, hf, vocab_size):
    ids = np.random.default_rng(0).integers(0, vocab_size, (2, 17))
    with torch.no_grad():
        want = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(host(model(ids)[0]), want, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(model.generate(ids[:, :4], 12, temperature=0), hf_greedy(hf, ids[:, :4], 12))


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(CORPUS, vocab_size=340, pattern="gpt4", special_tokens=["<|endoftext|>"],
                              progress=False)


@pytest.mark.parametrize("cfg", [
    GPTConfig(vocab_size=340, context_length=32, n_layer=2, n_head=4, d_model=32, activation="gelu_tanh"),
    GPTConfig(vocab_size=340, context_length=32, n_layer=2, n_head=4, d_model=32, activation="gelu", bias=False,
              tie_embeddings=False),
    GPTConfig(vocab_size=340, context_length=32, n_layer=2, n_head=4, n_kv_head=2, d_model=32, pos_encoding="rope",
              norm="rmsnorm", activation="swiglu", bias=False, tie_embeddings=False, rope_theta=500.0),
    GPTConfig(vocab_size=340, context_length=32, n_layer=1, n_head=2, n_kv_head=1, d_model=32, pos_encoding="rope",
              norm="rmsnorm", activation="geglu", bias=True),
], ids=["gpt2", "gpt2-nobias", "llama-gqa", "llama-geglu-bias"])
def test_exported_model_runs_the_same_in_transformers(tmp_path, bpe, cfg):
    model = GPT(cfg).eval()
    for p in model.parameters():  # biases and norms away from their init, so a mix-up shows
        p.data += tinyllm.backend.asarray(np.random.default_rng(1).normal(0, 0.02, p.shape).astype(np.float32),
                                          device=p.device)
    save_hf(model, bpe, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf).__name__ == {"learned": "GPT2LMHeadModel", "rope": "LlamaForCausalLM"}[cfg.pos_encoding]
    check_same_model(model, hf, cfg.vocab_size)


def test_exported_tokenizers_encode_as_tinyllm(tmp_path, bpe):
    model = GPT(GPTConfig(vocab_size=340, context_length=16, n_layer=1, n_head=1, d_model=8))
    for tok in (bpe, BPETokenizer.train(CORPUS, vocab_size=300, pattern="gpt2", progress=False),
                BPETokenizer.train(CORPUS, vocab_size=300, pattern=None, progress=False),
                CharTokenizer.from_text(CORPUS + "<|endoftext|>", special_tokens=["<|endoftext|>"])):
        save_hf(model, tok, tmp_path / tok.name)
        hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / tok.name)
        for text in TEXTS:
            ids = tok.encode(text, allowed_special="all")
            assert hf_tok(text)["input_ids"] == ids, (tok, text)
            assert hf_tok.decode(ids) == text


def test_gpt2_vocabulary_in_transformers_encodes_as_tiktoken(tmp_path):
    from shared_data import data_file

    tok = BPETokenizer.gpt2(data_file("gpt2.tiktoken"))
    tok = BPETokenizer(tok.ranks, "gpt2", {"<|endoftext|>": 50256})
    save_hf(GPT(GPTConfig(vocab_size=50257, context_length=8, n_layer=1, n_head=1, d_model=4)), tok, tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert hf_tok(text)["input_ids"] == tok.encode(text, allowed_special="all")


def test_transformers_models_import_into_tinyllm(tmp_path):
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=97, n_positions=32, n_embd=24, n_layer=2, n_head=3, bos_token_id=0, eos_token_id=0))
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=97, max_position_embeddings=32, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, attention_bias=True, tie_word_embeddings=False,
        rope_theta=1000.0, rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=0))
    for hf in (gpt2, llama):
        with torch.no_grad():  # norms and biases away from 1 and 0, so a mix-up shows
            for p in hf.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        hf.eval().save_pretrained(tmp_path / type(hf).__name__)
        model, tok = load_hf(tmp_path / type(hf).__name__)
        assert tok is None
        check_same_model(model, hf, 97)


def test_tokenizers_library_bpe_imports_into_tinyllm(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    hf_tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    hf_tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel
                                             .alphabet(), show_progress=False)
    hf_tok.train_from_iterator([CORPUS], trainer)
    hf_tok.add_special_tokens(["<|endoftext|>"])
    hf_tok.save(str(tmp_path / "tokenizer.json"))
    from tinyllm.interop import load_hf_tokenizer

    tok = load_hf_tokenizer(tmp_path)
    for text in TEXTS:
        assert tok.encode(text, allowed_special="all") == hf_tok.encode(text).ids, text
