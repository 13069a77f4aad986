"""Lab 15: a tinyllm model in the real stacks — exported, loaded by the other tool, and proven the same model.

1. Hugging Face transformers, out: the labs' trained character model (GPT-2 style) is written
   with save_hf and loaded by AutoModelForCausalLM and AutoTokenizer, with no custom code.
   The same prompt gives the same ids, logits within float32 rounding, the same greedy text.
   A Llama-style model (RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases) goes out
   as LlamaForCausalLM the same way.
2. And back in: each folder read again with load_hf gives tinyllm's logits bit for bit; a
   model built by transformers itself (random LlamaForCausalLM) gives transformers' logits.
3. What has no standard counterpart: configs that GPT-2 and Llama cannot express, and the
   field each error names.
4. ONNX Runtime (not in --quick): the GPT-2-style model traced by optimum, run by ONNX Runtime,
   logits and greedy text compared.

Figure docs/figures/15_agreement.png: the largest |logit difference| of every port, against the
1e-4 the tests allow; numbers in docs/figures/15_stacks.json. Speed and memory across stacks are
benchmarks/bench_stacks.py's; DeepSpeed's training and tensor parallelism, benchmarks/stacks/deepspeed_check.py's.

    python examples/15_stacks.py            # the chapter's numbers (the shared shakespeare-char model)
    python examples/15_stacks.py --quick    # a tiny model, the Hugging Face round trip only (CI)
    python examples/15_stacks.py --ckpt DIR # your own run folder

The checks in the other tools need them installed (pip install -e '.[stacks]': torch, transformers,
optimum-onnx, onnxruntime); without them the lab says what it skipped and does the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm.interop import export_onnx, hf_architecture, load_hf, save_hf  # noqa: E402
from tinyllm.labs import lab_model  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402

PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"
LLAMA = dict(n_layer=2, n_head=4, n_kv_head=2, d_model=64, pos_encoding="rope", norm="rmsnorm", activation="swiglu",
             bias=False, tie_embeddings=False)


def host(t):
    return tinyllm.to_numpy(t.data)


def compare(model, hf, ids: np.ndarray, n_new: int) -> dict:
    """tinyllm's logits and greedy tokens against a transformers (or ONNX Runtime) model's, for the same ids."""
    import torch

    ours = host(model(ids)[0])
    mask = torch.ones(ids.shape, dtype=torch.long)
    with torch.no_grad():
        theirs = hf(input_ids=torch.from_numpy(ids), attention_mask=mask).logits.numpy()
    hf.generation_config.eos_token_id, hf.generation_config.pad_token_id = None, 0  # no early stop: as generate
    with torch.no_grad():
        their_tokens = hf.generate(torch.from_numpy(ids), attention_mask=mask, max_new_tokens=n_new,
                                   do_sample=False).numpy()
    our_tokens = model.generate(ids, n_new, temperature=0)
    return dict(max_abs_diff=float(np.abs(ours - theirs).max()), logit_range=float(np.ptp(theirs)),
                same_greedy=bool((our_tokens == their_tokens).all()), tokens=our_tokens[0].tolist())


# ---------------------------------------------------------------------------- 1, 2. Hugging Face, out and back in


def huggingface(model, tok, work: Path, n_new: int) -> dict:
    out = {}
    save_hf(model, tok, work / "char")
    files = sorted(p.name for p in (work / "char").iterdir())
    ids = tok.encode(PROMPT)
    prompt = np.asarray([ids[-model.config.context_length // 2:]], dtype=np.int64)
    back, back_tok = load_hf(work / "char")
    out["gpt2_import_max_abs_diff"] = float(np.abs(host(back(prompt)[0]) - host(model(prompt)[0])).max())
    out["gpt2_import_same_tokenizer"] = back_tok == tok
    print(f"  wrote {', '.join(files)}")
    print(f"  load_hf of that folder: max |logit difference| to the original {out['gpt2_import_max_abs_diff']:.1e}, "
          f"the same tokenizer: {out['gpt2_import_same_tokenizer']}")
    try:
        import transformers
    except ImportError as e:
        print(f"  skipped the rest: {e.name} is not installed (pip install -e '.[stacks]')")
        out["skipped"] = str(e)
        return out

    hf = transformers.AutoModelForCausalLM.from_pretrained(work / "char").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(work / "char")
    same_ids = hf_tok(PROMPT)["input_ids"] == ids
    r = compare(model, hf, prompt, n_new)
    r.update(architecture=type(hf).__name__, files=files, same_ids=same_ids,
             text=hf_tok.decode(r["tokens"]) == tok.decode(r["tokens"]))
    print(f"  transformers built a {type(hf).__name__} from it")
    print(f"  AutoTokenizer gives the same {len(ids)} ids: {same_ids}; max |logit difference| "
          f"{r['max_abs_diff']:.1e} (logits span {r['logit_range']:.1f}); greedy {n_new} tokens equal: "
          f"{r['same_greedy']}")
    print(f"  their greedy text: {hf_tok.decode(r['tokens'][prompt.shape[1]:])!r}")
    out["gpt2_export"] = r

    tinyllm.manual_seed(0)
    llama = GPT(GPTConfig(vocab_size=model.config.vocab_size, context_length=model.config.context_length,
                          **LLAMA)).eval()
    save_hf(llama, tok, work / "llama")
    hf_llama = transformers.AutoModelForCausalLM.from_pretrained(work / "llama").eval()
    r = compare(llama, hf_llama, prompt, n_new)
    r["architecture"] = type(hf_llama).__name__
    out["llama_export"] = r
    print(f"  a Llama-style tinyllm model (random weights) -> {type(hf_llama).__name__} "
          f"({hf_llama.config.num_key_value_heads} KV heads for {hf_llama.config.num_attention_heads}): max |logit "
          f"difference| {r['max_abs_diff']:.1e}, greedy equal: {r['same_greedy']}")

    import torch

    torch.manual_seed(0)
    theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=model.config.vocab_size, max_position_embeddings=model.config.context_length, hidden_size=64,
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)).eval()
    theirs.save_pretrained(work / "theirs")
    mine, _ = load_hf(work / "theirs")
    r = compare(mine, theirs, prompt, n_new)
    out["llama_import"] = r
    print(f"  a LlamaForCausalLM built by transformers, read by load_hf: max |logit difference| "
          f"{r['max_abs_diff']:.1e}, greedy equal: {r['same_greedy']}")
    return out


# ---------------------------------------------------------------------------- 3. what does not export


def refusals(model) -> list[dict]:
    rows = []
    for change in (dict(pos_encoding="alibi"), dict(pos_encoding="sinusoidal"), dict(norm_position="post"),
                   dict(causal=False), dict(n_expert=4, expert_top_k=2), dict(norm="rmsnorm")):
        cfg = dataclasses.replace(model.config, **change)
        try:
            hf_architecture(cfg)
            rows.append(dict(change=change, error=None))
        except ValueError as e:
            rows.append(dict(change=change, error=str(e).split(":")[0]))
    print("  " + "\n  ".join(f"{json.dumps(r['change']):40s} -> {r['error']}" for r in rows))
    return rows


# ---------------------------------------------------------------------------- 4. ONNX Runtime


def onnx_runtime(model, tok, work: Path, n_new: int) -> dict:
    try:
        from optimum.onnxruntime import ORTModelForCausalLM
    except ImportError as e:
        print(f"  skipped: {e.name} is not installed (pip install -e '.[stacks]')")
        return dict(skipped=str(e))

    export_onnx(model, tok, work / "onnx")
    session = ORTModelForCausalLM.from_pretrained(work / "onnx")
    prompt = np.asarray([tok.encode(PROMPT)[-model.config.context_length // 2:]], dtype=np.int64)
    r = compare(model, session, prompt, n_new)
    r["onnx_bytes"] = (work / "onnx" / "model.onnx").stat().st_size
    print(f"  model.onnx ({r['onnx_bytes']:,} bytes) in ONNX Runtime: max |logit difference| {r['max_abs_diff']:.1e}, "
          f"greedy {n_new} tokens equal: {r['same_greedy']}")
    return r


def plot_agreement(report: dict, path: Path) -> None:
    """The largest |logit difference| of each port, log scale, with the tests' 1e-4 line."""
    hf = report["huggingface"]
    bars = {}
    for key, label in (("gpt2_export", "GPT-2 style -> transformers"), ("llama_export", "Llama style -> transformers"),
                       ("llama_import", "transformers Llama -> tinyllm")):
        if key in hf:  # absent when transformers is not installed
            bars[label] = hf[key]["max_abs_diff"]
    bars["tinyllm -> HF -> tinyllm"] = hf["gpt2_import_max_abs_diff"]
    if "max_abs_diff" in report.get("onnx", {}):
        bars["GPT-2 style -> ONNX Runtime"] = report["onnx"]["max_abs_diff"]
    floor = 1e-9  # a bit-identical round trip (0) drawn at the axis' bottom
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = list(bars)
    ax.barh(names, [max(v, floor) for v in bars.values()], color="#4C72B0")
    ax.axvline(1e-4, color="crimson", ls="--", lw=1.2, label="the tests' tolerance, 1e-4")
    for i, v in enumerate(bars.values()):
        ax.text(max(v, floor) * 1.4, i, "0 (bit for bit)" if v == 0 else f"{v:.1e}", va="center", fontsize=10)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_xlabel("max |logit difference| over a prompt (float32)", fontsize=11)
    ax.tick_params(labelsize=10)
    ax.invert_yaxis()
    ax.legend(fontsize=10, loc="center right")
    ax.set_title("The same model in each stack: logits agree to float32 rounding", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a tiny model, the Hugging Face round trip only")
    p.add_argument("--ckpt", default=None, help="a run folder of yours (GPT-2 or Llama style)")
    p.add_argument("--out", default="docs/figures", help="where the figure and JSON go")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick_dir = Path("out/labs/15_stacks-quick") if args.quick else None
    model, tok = lab_model(ckpt=args.ckpt, quick_dir=quick_dir)
    n_new = 16 if args.quick else model.config.context_length // 2  # the prompt takes the other half of the context
    report = {"model": model.config.to_dict(), "prompt": PROMPT}
    with tempfile.TemporaryDirectory() as tmp:
        print("1-2. Hugging Face transformers, out and back in")
        report["huggingface"] = huggingface(model, tok, Path(tmp), n_new)
        print("3. configs with no standard architecture")
        report["refusals"] = refusals(model)
        if not args.quick:
            print("4. ONNX Runtime")
            report["onnx"] = onnx_runtime(model, tok, Path(tmp), n_new)
    plot_agreement(report, out / "15_agreement.png")
    (out / "15_stacks.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
