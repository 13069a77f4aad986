"""Lab 14: quantization — the block formats byte by byte, where the error goes, outlier channels and AWQ,
accuracy against size, which layers are sensitive, and the GGUF file in llama.cpp.

1. Bytes: one block of 32 weights of a trained model in Q8_0 and Q4_0, byte by byte (figure).
2. Error: W - Q(W) over every block matrix, per format, relative to the weights' RMS (figure).
3. Outlier channels: the mean |x| of each input channel of the blocks' Linears on calibration
   text, and what AWQ's scales do to the output error of each group of Linears against plain
   rounding (figure).
4. Accuracy against size: the same trained model as F32, F16, int8, Q8_0, Q4_0, int4 (round to
   nearest), AWQ int4 and QAT int4 (and F32 finetuned the same steps as QAT, its control): bytes
   of the weights, the GGUF file's size, perplexity on held-out text, top-1 agreement with F32,
   decode speed. A table and a Pareto plot.
5. Sensitivity: one Linear at a time in Q4_0, the rest in F32: how much the held-out loss rises.
6. llama.cpp: the model exported to GGUF (F32, Q8_0, Q4_0) and run by llama.cpp
   (llama-cpp-python): tokens, logits and greedy text against tinyllm's; and a LLaMA-style model.
   Skipped, with a note, when llama-cpp-python or gguf is not installed.

    python examples/14_quantization.py            # the chapter's numbers and figures (docs/figures/14_*.png, .json)
    python examples/14_quantization.py --quick    # a tiny model, few steps, for CI (figures go to --out)
    python examples/14_quantization.py --ckpt DIR # a `tinyllm train` run of a character model instead
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import backend, runtime  # noqa: E402
from tinyllm.data import encode_corpus, load_text, split_tokens  # noqa: E402
from tinyllm.labs import lab_model  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.quant import QuantizedWeight, ggml, model_nbytes, quantize_model  # noqa: E402
from tinyllm.quant.awq import apply_awq, collect_inputs  # noqa: E402
from tinyllm.quant.linear import block_linears  # noqa: E402
from tinyllm.quant.qat import convert_qat, prepare_qat, qat_finetune  # noqa: E402

GROUP = 128  # int4's group size (AutoAWQ's default): one scale per 128 inputs (32 for a model narrower than 128)


def host(a):
    return backend.to_numpy(a.data if hasattr(a, "data") else a)


def copy_of(model, config=None):
    """A new GPT with model's weights (config: another architecture reading the same weights)."""
    m = GPT(config or model.config)
    m.load_state_dict(model.state_dict())
    return m.eval()


def windows(tokens, T: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n consecutive, non-overlapping windows of tokens: x (n, T), y = x shifted by one."""
    n = min(n, (len(tokens) - 1) // T)
    x = np.asarray(tokens[:n * T], dtype=np.int64).reshape(n, T)
    y = np.asarray(tokens[1:n * T + 1], dtype=np.int64).reshape(n, T)
    return x, y


def evaluate(model, x, y, ref_top1=None) -> dict:
    """Mean loss (nats/token), perplexity, the argmax at every position, top-1 agreement with ref_top1."""
    losses, top1 = [], []
    with tinyllm.no_grad():
        for i in range(0, len(x), 32):
            logits, loss = model(x[i:i + 32], y[i:i + 32])
            losses.append(float(loss.item()) * len(x[i:i + 32]))
            top1.append(host(logits).argmax(-1))
    top1 = np.concatenate(top1)
    loss = sum(losses) / len(x)
    agree = None if ref_top1 is None else float((top1 == ref_top1).mean())
    return dict(loss=loss, ppl=float(np.exp(loss)), top1=top1, agree=agree)


# ---------------------------------------------------------------------------- 1. bytes


def bytes_part(model, out: Path) -> dict:
    w = host(model.transformer.h[0].mlp.c_fc.weight)[:1, :32].copy()  # one block: 32 weights of one row
    r = {}
    fig, axes = plt.subplots(3, 1, figsize=(13, 6.2), gridspec_kw=dict(height_ratios=[1.2, 1, 1]))
    ax = axes[0]
    ax.bar(range(32), w[0], color="#90a4ae", label="float32 weight")
    for fmt, color in (("q8_0", "#1e88e5"), ("q4_0", "#e53935")):
        raw = ggml.quantize(w, fmt)
        back = ggml.dequantize(raw, fmt, w.shape)[0]
        d = float(raw[0, :2].copy().view(np.float16)[0])
        r[fmt] = dict(bytes=raw[0].tolist(), d=d, max_abs_err=float(np.abs(back - w[0]).max()))
        ax.plot(range(32), back, "o", ms=4, color=color, label=f"{fmt} (d = {d:.5f})")
        print(f"  {fmt}: {raw.shape[1]} bytes for 32 weights; d = {d:.6f} (bytes {raw[0, 0]:02x} {raw[0, 1]:02x}); "
              f"max |error| {r[fmt]['max_abs_err']:.5f}")
        print("    " + " ".join(f"{b:02x}" for b in raw[0]))
    ax.set_title("one block: 32 weights of transformer.h.0.mlp.c_fc, row 0", fontsize=11)
    ax.legend(fontsize=9, ncol=3)
    ax.set_xticks([])
    for ax, fmt in zip(axes[1:], ("q8_0", "q4_0")):
        b = r[fmt]["bytes"]
        for i, byte in enumerate(b):
            kind = "d" if i < 2 else "q"
            ax.add_patch(plt.Rectangle((i, 0), 0.95, 1, color="#ffb74d" if kind == "d" else
                                       ("#64b5f6" if fmt == "q8_0" else "#ef9a9a")))
            label = f"{byte:02x}"
            if fmt == "q4_0" and i >= 2:
                label = f"{byte & 15}|{byte >> 4}"  # low nibble: q[j], high: q[j+16]
            ax.text(i + 0.47, 0.5, label, ha="center", va="center", fontsize=7 if fmt == "q4_0" else 8)
        ax.set_xlim(0, 34)
        ax.set_ylim(0, 1)
        ax.axis("off")
        what = ("d (float16, little-endian), then 32 int8 q: x ≈ d·q" if fmt == "q8_0" else
                "d, then 16 bytes: q[j] | q[j+16]<<4 (shown low|high): x ≈ d·(q - 8)")
        ax.set_title(f"{fmt}: {len(b)} bytes — {what}", fontsize=10, loc="left")
    fig.tight_layout()
    fig.savefig(out / "14_bytes.png", dpi=110)
    plt.close(fig)
    return r


# ---------------------------------------------------------------------------- 2. error


def error_part(model, out: Path, group: int) -> list[dict]:
    mats = [host(m.weight) for _, m in block_linears(model)]
    rows = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fmt, g in [("f16", None), ("q8_0", None), ("int8", None), ("q5_0", None), ("q4_0", None), ("int4", 32),
                   ("int4", group)][:7 if group != 32 else 6]:
        errs, nbytes, n = [], 0, 0
        for w in mats:
            if fmt == "f16":
                back, size = w.astype(np.float16).astype(np.float32), w.size * 2
            else:
                qw = QuantizedWeight.from_float(w, fmt, group_size=g)
                back, size = qw.dequantize(), qw.nbytes
            errs.append(((back - w) / w.std()).ravel())
            nbytes, n = nbytes + size, n + w.size
        e = np.concatenate(errs)
        name = fmt if g is None else f"{fmt} g{g}"
        rows.append(dict(format=name, bits=8 * nbytes / n, rms_rel_err=float(np.sqrt((e ** 2).mean())),
                         max_rel_err=float(np.abs(e).max())))
        print(f"  {name:<10} {rows[-1]['bits']:5.2f} bits/weight   RMS error {rows[-1]['rms_rel_err']:.4f} σ   "
              f"max {rows[-1]['max_rel_err']:.3f} σ")
        if fmt != "f16":
            ax.hist(e, bins=201, range=(-0.4, 0.4), histtype="step", lw=1.3, label=f"{name} ({rows[-1]['bits']:.2f} b)")
    ax.set_yscale("log")
    ax.set_xlabel("W - Q(W), in units of the matrix's standard deviation σ")
    ax.set_ylabel("weights")
    ax.set_title("quantization error over every block matrix", fontsize=11)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "14_error.png", dpi=110)
    plt.close(fig)
    return rows


# ---------------------------------------------------------------------------- 3. outliers and AWQ


def outlier_part(model, calib, out: Path, group: int) -> dict:
    names = [n for n, _ in block_linears(model)]
    xs = collect_inputs(model, calib, names)
    ratio = {n: float(np.abs(x).mean(0).max() / np.median(np.abs(x).mean(0))) for n, x in xs.items()}
    for n in names:
        print(f"  {n:<30} max / median channel mean|x| = {ratio[n]:6.1f}")
    awq_model = copy_of(model)
    t0 = time.perf_counter()
    report = apply_awq(awq_model, calib, "int4", group)
    seconds = time.perf_counter() - t0
    scaled = [r for r in report if "alpha" in r]
    for r in scaled:
        less = 100 * (1 - r["error"] / r["error_rtn"])
        print(f"  AWQ {'+'.join(n.split('.', 3)[-1] for n in r['layers']):<28} α = {r['alpha']:.2f}   output error "
              f"{r['error']:.3e} vs {r['error_rtn']:.3e} rounding ({less:.0f}% less)")
    clips = [r["clip"] for r in report if "clip" in r]
    print(f"  clipping: r = {', '.join(f'{c:.2f}' for c in clips)}  (AWQ in {seconds:.0f} s)")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for n, color in ((names[0], "#1e88e5"), (names[-1], "#e53935")):
        m = np.abs(xs[n]).mean(0)
        axes[0].plot(np.sort(m)[::-1], color=color, label=f"{n.split('.', 1)[1]} ({len(m)} channels)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("input channel, largest mean |x| first")
    axes[0].set_ylabel("mean |x| on calibration text")
    axes[0].set_title("a few input channels carry most of the activation", fontsize=11)
    axes[0].legend(fontsize=8)
    labels = ["+".join(n.split(".", 3)[-1] for n in r["layers"]).replace("transformer.", "") for r in scaled]
    red = [100 * (1 - r["error"] / r["error_rtn"]) for r in scaled]
    axes[1].barh(range(len(red)), red, color="#43a047")
    axes[1].set_yticks(range(len(red)), labels, fontsize=7)
    axes[1].invert_yaxis()
    axes[1].set_xlabel(f"output error removed by AWQ's scales, % (int4, group {group}, calibration text)")
    axes[1].set_title("AWQ against plain rounding, per group of Linears", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "14_outliers.png", dpi=110)
    plt.close(fig)
    return dict(ratio=ratio, awq=scaled, clip=clips, awq_seconds=seconds, model=awq_model)


# ---------------------------------------------------------------------------- 4. accuracy against size


def decode_speed(model, prompt, n: int) -> float:
    """Greedy tokens/s through the modules (the same path for every format), best of two runs."""
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        model.generate(prompt, n, temperature=0, fast_decode=False)
        best = min(best, time.perf_counter() - t0)
    return n / best


def gguf_size(model, tok, dtype: str):
    """Bytes of the model's GGUF file in dtype (written to a temporary folder), or None without gguf."""
    try:
        from tinyllm.interop.gguf import export_gguf
        with tempfile.TemporaryDirectory() as d:
            return export_gguf(model, tok, Path(d) / "m.gguf", dtype=dtype, approximate_gelu=True).stat().st_size
    except ImportError:
        return None


def size_part(model, tok, train, val_xy, awq_model, qat_steps: int, out: Path, n_decode: int, group: int) -> list[dict]:
    x, y = val_xy
    ref = evaluate(model, x, y)
    prompt = x[:1, :16]
    variants = [("F32", None, None, "f32"), ("F16", "f16", None, "f16"), ("int8", "int8", None, None),
                ("Q8_0", "q8_0", None, "q8_0"), ("Q4_0", "q4_0", None, "q4_0"), ("int4 RTN", "int4", group, None),
                ("AWQ int4", "awq", group, None), ("QAT int4", "qat", group, None),
                (f"F32 +{qat_steps} steps", "control", None, None)]
    rows = []
    for name, method, g, gguf_dtype in variants:
        t0 = time.perf_counter()
        if method == "awq":
            m = quantize_model(copy_of(awq_model), "int4", group_size=g)
        elif method == "qat":
            m = prepare_qat(copy_of(model), "int4", group_size=g)
            qat_finetune(m, train, steps=qat_steps, lr=1e-4, seed=0)
            m = quantize_model(convert_qat(m), "int4", group_size=g)
        elif method == "control":
            m = copy_of(model)
            qat_finetune(m, train, steps=qat_steps, lr=1e-4, seed=0)
        else:
            m = copy_of(model) if method is None else quantize_model(copy_of(model), method, group_size=g)
        e = evaluate(m, x, y, ref["top1"])
        size = model_nbytes(m)
        rows.append(dict(name=name, weight_bytes=size["quantized"] + size["float"], quantized_bytes=size["quantized"],
                         gguf_bytes=gguf_size(model if method is None else m, tok, gguf_dtype) if gguf_dtype else None,
                         ppl=e["ppl"], loss=e["loss"], top1_agree=e["agree"],
                         tokens_per_s=decode_speed(m, prompt, n_decode), build_s=time.perf_counter() - t0))
        r = rows[-1]
        gg = f"{r['gguf_bytes'] / 1e3:8.1f}" if r["gguf_bytes"] else "       —"
        print(f"  {name:<16} {r['weight_bytes'] / 1e3:9.1f} {gg} {r['ppl']:8.4f} {r['top1_agree']:8.4f} "
              f"{r['tokens_per_s']:8.0f}", flush=True)
    plot_pareto(rows, out / "14_pareto.png")
    return rows


def plot_pareto(rows, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    pts = [(r["weight_bytes"] / 1e3, r["ppl"], r["name"]) for r in rows if "steps" not in r["name"]]
    placed = []  # labels to the right of their points; one that would sit on an earlier one goes below it
    yspan = max(p[1] for p in pts) - min(p[1] for p in pts) or 1
    for xk, yk, name in sorted(pts):
        ax.plot(xk, yk, "o", color="#e53935" if "4" in name else "#1e88e5", ms=7)
        clash = any(abs(xk / x0 - 1) < 0.1 and abs(yk - y0) < 0.04 * yspan for x0, y0 in placed)
        ax.annotate(name, (xk, yk), textcoords="offset points", xytext=(7, -14 if clash else -3), fontsize=9)
        placed.append((xk, yk))
    front, best = [], float("inf")
    for xk, yk, _ in sorted(p for p in pts if "QAT" not in p[2]):  # QAT trained longer: see its control instead
        if yk < best:
            front.append((xk, yk))
            best = yk
    ax.plot(*zip(*front), "--", color="#757575", lw=1, label="Pareto frontier of the post-training formats")
    ctrl = [r for r in rows if "steps" in r["name"]]
    for r in ctrl:
        ax.axhline(r["ppl"], color="#43a047", lw=0.8, ls=":", label=f"{r['name']} (QAT's control)")
    ax.set_xscale("log")
    ax.set_xlabel("bytes of weights, kB (log scale)")
    ax.set_ylabel("perplexity on held-out text")
    ax.set_title("accuracy against size: one trained model, many formats", fontsize=11)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- 5. sensitivity


def sensitivity_part(model, val_xy, out: Path, method: str = "q4_0") -> list[dict]:
    x, y = val_xy
    base = evaluate(model, x, y)["loss"]
    rows = []
    names = [n for n, _ in block_linears(model)]
    for name in names:
        m = quantize_model(copy_of(model), method, skip=[n for n in names if n != name])
        rows.append(dict(layer=name, delta_loss=evaluate(m, x, y)["loss"] - base))
    for r in sorted(rows, key=lambda r: -r["delta_loss"])[:4]:
        print(f"  {r['layer']:<30} {r['delta_loss']:+.5f} nats/token")
    allq = evaluate(quantize_model(copy_of(model), method), x, y)["loss"] - base
    print(f"  all {len(names)} layers together: {allq:+.5f}; the sum of the one-at-a-time rises: "
          f"{sum(r['delta_loss'] for r in rows):+.5f}")
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.bar(range(len(rows)), [r["delta_loss"] for r in rows], color="#8e24aa")
    ax.set_xticks(range(len(rows)), [r["layer"].replace("transformer.", "") for r in rows], rotation=70, fontsize=7)
    ax.set_ylabel("rise of held-out loss, nats/token")
    ax.set_title(f"one Linear at a time in {method}, the rest in F32", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "14_sensitivity.png", dpi=110)
    plt.close(fig)
    return dict(rows=rows, all_layers=allq)


# ---------------------------------------------------------------------------- 6. llama.cpp


def llama_cpp_part(model, tok, text: str, n_greedy: int) -> dict:
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as e:
        print(f"  skipped: {e.name} is not installed (pip install gguf; CMAKE_ARGS='-DLLAVA_BUILD=OFF' pip install "
              f"llama-cpp-python)")
        return dict(skipped=str(e))
    from tinyllm.interop.gguf import export_gguf
    from tinyllm.interop.llama_cpp import compare

    # llama.cpp's gpt2 graph computes GELU in its tanh form: the same weights read as a gelu_tanh model
    as_tanh = copy_of(model, dataclasses.replace(model.config, activation="gelu_tanh"))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for dtype in ("f32", "q8_0", "q4_0"):
            m = as_tanh if dtype == "f32" else quantize_model(copy_of(as_tanh), dtype)
            path = export_gguf(m, tok, Path(d) / f"{dtype}.gguf", dtype=dtype)
            r = compare(m, tok, path, text, n_greedy=n_greedy)
            rows.append(dict(model="gpt2 (this chapter's model)", dtype=dtype, **{k: r[k] for k in (
                "same_tokens", "max_rel_diff", "mean_rel_diff", "top1_agree", "same_greedy", "greedy_prefix")}))
        tinyllm.manual_seed(0)
        cfg = GPTConfig(vocab_size=tok.vocab_size, context_length=64, n_layer=2, n_head=4, n_kv_head=2, d_model=128,
                        pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False)
        llama = GPT(cfg).eval()
        for p in llama.parameters():  # random weights, large enough that the logits are peaked
            if p.ndim == 2:
                p.data = p.data * 10
        path = export_gguf(llama, tok, Path(d) / "llama.gguf", dtype="f32")
        r = compare(llama, tok, path, text, n_greedy=n_greedy)
        rows.append(dict(model="llama (random weights, GQA 4/2)", dtype="f32", **{k: r[k] for k in (
            "same_tokens", "max_rel_diff", "mean_rel_diff", "top1_agree", "same_greedy", "greedy_prefix")}))
    for r in rows:
        print(f"  {r['model']:<32} {r['dtype']:<5} tokens equal {r['same_tokens']}; logits max rel diff "
              f"{r['max_rel_diff']:.1e} (mean {r['mean_rel_diff']:.1e}); top-1 {r['top1_agree']:.3f}; greedy "
              f"{n_greedy} tokens equal {r['same_greedy']} (first {r['greedy_prefix']} equal)")
    return dict(rows=rows)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    runtime.keep_host_memory()  # QAT trains: reuse freed memory between steps
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model, few steps (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for figures and JSON (default docs/figures; "
                   "--quick: out/labs/14_quantization-quick)")
    p.add_argument("--ckpt", default=None, help="a `tinyllm train` run folder of a character model to use instead")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/14_quantization-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    model, tok = lab_model(args.ckpt, quick_dir=args.out / "model-quick" if args.quick else None)
    c = model.config
    text = load_text("tinyshakespeare")
    train, val = split_tokens(encode_corpus(text, tok), 0.1)
    val_xy = windows(val, c.context_length, 64 if args.quick else 1000)
    calib = windows(train, c.context_length, 16 if args.quick else 64)[0]
    group = GROUP if c.d_model % GROUP == 0 else 32
    report = dict(model=dict(config=c.to_dict(), parameters=model.num_parameters()), group_size=group)
    print(f"a character model of tinyshakespeare: {c.n_layer} layers, d_model {c.d_model}, "
          f"{model.num_parameters():,} parameters; held-out: {val_xy[0].size:,} tokens")

    print("\n1. One block of weights, byte by byte")
    report["bytes"] = bytes_part(model, args.out)
    print("\n2. Quantization error over every block matrix")
    report["error"] = error_part(model, args.out, group)
    print(f"\n3. Outlier channels, and AWQ's scales (int4, group {group}) on {calib.size:,} calibration tokens")
    outl = outlier_part(model, calib, args.out, group)
    awq_model = outl.pop("model")
    report["outliers"] = outl
    steps = 20 if args.quick else 300
    print(f"\n4. Accuracy against size (perplexity on {val_xy[0].size:,} held-out tokens; decode: greedy, through the "
          f"modules)\n  {'format':<16} {'kB weights':>9} {'kB GGUF':>8} {'ppl':>8} {'top-1':>8} {'tok/s':>8}")
    rows = size_part(model, tok, train, val_xy, awq_model, steps, args.out, 16 if args.quick else 64, group)
    report["table"] = rows
    print("\n5. Sensitivity: one Linear at a time in Q4_0 (the largest rises)")
    report["sensitivity"] = sensitivity_part(model, val_xy, args.out)
    print("\n6. llama.cpp runs the exported files")
    report["llama_cpp"] = llama_cpp_part(model, tok, text[-2000:][:c.context_length - 8 if args.quick else 300],
                                         8 if args.quick else 32)
    report["seconds"] = time.perf_counter() - t_start
    (args.out / "14_quantization.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nfigures and 14_quantization.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
