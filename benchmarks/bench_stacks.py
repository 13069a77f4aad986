"""Benchmark: one model in several inference stacks — prefill and decode tokens/s, latency, peak memory.

The same random weights (speed does not depend on what they learned) run in each stack that is
installed, with the same thread count:

    tinyllm       F32, its raw-array Decoder (tinyllm/inference/decode.py): what model.generate runs
    tinyllm-q8_0  the block matrices in Q8_0, multiplied as stored (tinyllm/quant/), through the modules
    transformers  eager PyTorch (GPT2LMHeadModel), its KV cache, torch.no_grad
    onnxruntime   the ONNX graph optimum traces from the transformers model (tinyllm/interop/onnx.py),
                  with the KV cache as graph inputs and outputs
    llama.cpp     the GGUF file of tinyllm export gguf (F32 and Q8_0), through llama-cpp-python,
                  when both are installed

Two shapes, GPT-2 style (learned positions, LayerNorm, GELU-tanh, tied head): "tiny" (4 layers,
d_model 256, vocabulary 4096) and "gpt2-small" (12 layers, d_model 768, 12 heads, vocabulary
50257: 124 M parameters). For each: first the stacks' greedy tokens are checked equal, then,
round after round, each stack in turn (alternating, so a busy machine slows them alike) runs

    prefill   a --prompt-token prompt, batch 1 (its time is the time to first token, TTFT) and batch 8
    decode    --new-tokens greedy steps after it, batch 1 (each step timed: p50 and p95 latency) and batch 8

and the median of the rounds is reported. Peak memory (RSS) is measured in a fresh process per
stack that loads the model and runs one batch-8 prefill and decode (VmHWM; it includes the
stack's own libraries, e.g. PyTorch's, which is what a user pays).

The bandwidth bound: a decode step at batch 1 must read every weight matrix once (the blocks and
the head; an embedding row is one read), so no stack can beat bytes / bandwidth, with the
bandwidth measured here as the fastest large matrix-vector product (8192 x 8192 float32,
NumPy, the same threads), measured before the stacks and again in every round, the best kept
(on a busy machine a single measurement can land in a slow moment).

    python benchmarks/bench_stacks.py                                  # both shapes, every stack installed
    python benchmarks/bench_stacks.py --sizes tiny --rounds 3          # a quick look
    python benchmarks/bench_stacks.py --json docs/figures/15_bench_stacks.json --plot docs/figures/15_bench_stacks.png

Needs torch, transformers; optimum-onnx + onnxruntime for ONNX Runtime; gguf + llama-cpp-python
for llama.cpp. A stack that is not installed is listed as not run, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

SIZES = {"tiny": dict(vocab_size=4096, context_length=512, n_layer=4, n_head=4, d_model=256),
         "gpt2-small": dict(vocab_size=50257, context_length=1024, n_layer=12, n_head=12, d_model=768)}
STACKS = ("tinyllm", "tinyllm-q8_0", "transformers", "onnxruntime", "llama.cpp-f32", "llama.cpp-q8_0")


def machine(threads: int) -> str:
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"NumPy {np.__version__}"]
    for name in ("torch", "transformers", "onnxruntime", "llama_cpp"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return f"{os.cpu_count()} cores, {cpu}, {threads} threads; " + ", ".join(versions)


# ----------------------------------------------------------------------------- the stacks
# each: prefill(ids (B, P) int64) -> last logits (B, V) float32; step(ids (B,)) -> (B, V); a fresh state per prefill


class Tinyllm:
    def __init__(self, work: pathlib.Path, threads: int):
        from threadpoolctl import threadpool_limits

        from tinyllm.functional import kernels
        from tinyllm.nn import GPT

        threadpool_limits(threads)
        kernels.set_num_threads(threads)
        self.model = GPT.from_pretrained(work / "tinyllm")

    def prefill(self, ids):
        self.dec = self.model.make_decoder(ids.shape[0], max_len=self.model.config.context_length)
        return self.dec.prefill(ids)

    def step(self, ids):
        return self.dec.step(ids)


class TinyllmQ8(Tinyllm):
    """tinyllm with its block matrices in Q8_0 (tinyllm/quant/linear.py), multiplied as stored; the module path with
    its KV cache (the raw-array Decoder covers float models only)."""

    def __init__(self, work: pathlib.Path, threads: int):
        from tinyllm.quant import quantize_model

        super().__init__(work, threads)
        quantize_model(self.model, "q8_0")

    def prefill(self, ids):
        import tinyllm

        self.cache = self.model.make_cache(ids.shape[0])
        with tinyllm.no_grad():
            return tinyllm.to_numpy(self.model(ids, cache=self.cache)[0].data[:, -1])

    def step(self, ids):
        import tinyllm

        with tinyllm.no_grad():
            return tinyllm.to_numpy(self.model(ids[:, None], cache=self.cache)[0].data[:, -1])


class Transformers:
    def __init__(self, work: pathlib.Path, threads: int):
        import torch
        import transformers

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(work / "hf", attn_implementation="eager").eval()

    def prefill(self, ids):
        with self.torch.no_grad():
            out = self.model(input_ids=self.torch.from_numpy(ids), use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].numpy()

    def step(self, ids):
        with self.torch.no_grad():
            out = self.model(input_ids=self.torch.from_numpy(ids)[:, None], past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].numpy()


class OnnxRuntime:
    def __init__(self, work: pathlib.Path, threads: int):
        import onnxruntime
        import torch
        from optimum.onnxruntime import ORTModelForCausalLM

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.torch = torch
        self.model = ORTModelForCausalLM.from_pretrained(work / "onnx", session_options=options)

    def prefill(self, ids):
        self.length = ids.shape[1]
        mask = self.torch.ones(ids.shape, dtype=self.torch.long)
        out = self.model(input_ids=self.torch.from_numpy(ids), attention_mask=mask, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].numpy()

    def step(self, ids):
        self.length += 1
        mask = self.torch.ones((ids.shape[0], self.length), dtype=self.torch.long)
        out = self.model(input_ids=self.torch.from_numpy(ids)[:, None], attention_mask=mask, past_key_values=self.past,
                         use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1].numpy()


class LlamaCpp:
    """llama-cpp-python over the GGUF file; batch 1 only (one sequence per context), logits of the last token."""

    def __init__(self, work: pathlib.Path, threads: int, dtype: str):
        import llama_cpp

        n_ctx = json.loads((work / "tinyllm" / "config.json").read_text())["context_length"]
        self.llm = llama_cpp.Llama(str(work / f"model-{dtype}.gguf"), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, n_batch=512, logits_all=False, verbose=False,
                                   type_k=0, type_v=0)

    def prefill(self, ids):
        import numpy as np

        if ids.shape[0] != 1:
            raise NotImplementedError("llama-cpp-python runs one sequence per context")
        self.llm.reset()
        self.llm.eval(ids[0].tolist())
        return np.asarray(self.llm.scores[self.llm.n_tokens - 1], np.float32)[None]

    def step(self, ids):
        import numpy as np

        self.llm.eval([int(ids[0])])
        return np.asarray(self.llm.scores[self.llm.n_tokens - 1], np.float32)[None]



def open_stack(name: str, work: pathlib.Path, threads: int):
    if name == "tinyllm":
        return Tinyllm(work, threads)
    if name == "tinyllm-q8_0":
        return TinyllmQ8(work, threads)
    if name == "transformers":
        return Transformers(work, threads)
    if name == "onnxruntime":
        return OnnxRuntime(work, threads)
    return LlamaCpp(work, threads, name.split("-")[1])


def prepare(size: str, root: pathlib.Path, stacks) -> tuple[pathlib.Path, dict]:
    """The model in the files of each of `stacks` under root/size; -> (folder, {stack: why it cannot run})."""
    import tinyllm
    from tinyllm.interop import export_onnx, save_hf
    from tinyllm.nn import GPT, GPTConfig

    work = root / size
    skipped = {}
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(**SIZES[size], activation="gelu_tanh")).eval()
    if not (work / "tinyllm").is_dir():
        model.save_pretrained(work / "tinyllm")
        save_hf(model, None, work / "hf")
    if "onnxruntime" in stacks and not (work / "onnx").is_dir():
        try:
            export_onnx(model, None, work / "onnx")
        except ImportError as e:
            skipped["onnxruntime"] = str(e)
    for dtype in ("f32", "q8_0"):
        if f"llama.cpp-{dtype}" not in stacks or (work / f"model-{dtype}.gguf").is_file():
            continue
        try:
            import llama_cpp  # noqa: F401

            from tinyllm.interop.gguf import export_gguf
            from tinyllm.tokenizer import CharTokenizer

            ascii_chars = CharTokenizer([chr(c) for c in range(32, 127)])  # GGUF needs a vocabulary; ids are random
            export_gguf(model, ascii_chars, work / f"model-{dtype}.gguf", dtype=dtype)
        except ImportError as e:  # llama-cpp-python or gguf
            skipped[f"llama.cpp-{dtype}"] = f"{e.name} cannot be imported: {e}"
    return work, skipped


# ----------------------------------------------------------------------------- measuring

def greedy(stack, ids, n: int):
    import numpy as np

    logits, out = stack.prefill(ids), []
    for _ in range(n):
        nxt = logits.argmax(-1)
        out.append(nxt)
        logits = stack.step(nxt)
    return np.stack(out, 1)


def run_once(stack, prompt, new_tokens: int, batch: int) -> dict:
    """Prefill then greedy decode of `new_tokens` at `batch` rows -> prefill seconds and every step's seconds."""
    import numpy as np

    ids = np.repeat(prompt, batch, axis=0)
    t = time.perf_counter()
    logits = stack.prefill(ids)
    prefill = time.perf_counter() - t
    steps = []
    for _ in range(new_tokens):
        nxt = logits.argmax(-1)
        t = time.perf_counter()
        logits = stack.step(nxt)
        steps.append(time.perf_counter() - t)
    return {"prefill": prefill, "steps": steps}


def matvec_bandwidth(threads: int, repeats: int = 7) -> float:
    """Bytes/s of the fastest of `repeats` 8192 x 8192 float32 matrix-vector products (the matrix read once)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    w = np.random.default_rng(0).standard_normal((8192, 8192), dtype=np.float32)
    x = np.ones(8192, np.float32)
    best = float("inf")
    with threadpool_limits(threads):
        for _ in range(repeats):
            t = time.perf_counter()
            w @ x
            best = min(best, time.perf_counter() - t)
    return w.nbytes / best


def decode_bytes(size: str) -> int:
    """Weight bytes a batch-1 decode step reads: every block matrix and bias, the norms, the head (tied wte)."""
    s = SIZES[size]
    C, L, V = s["d_model"], s["n_layer"], s["vocab_size"]
    per_block = 12 * C * C + 13 * C  # c_attn 3C², c_proj C², c_fc 4C², mlp.c_proj 4C², their biases, 2 norms
    return 4 * (L * per_block + V * C + 2 * C)


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory in MB, from /proc/self/status.

    # subtle: not ru_maxrss: Linux keeps that high-water mark across exec, so a child started by a big
    # parent would report the parent's peak
    """
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def memory_child(stack: str, size: str, root: pathlib.Path, threads: int, prompt_tokens: int, new_tokens: int) -> dict:
    """In a fresh process: load the stack, one batch-8 (batch 1 for llama.cpp) prefill + decode -> peak RSS MB."""
    code = (f"import sys, json, pathlib; sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r}); "
            f"import bench_stacks as b, numpy as np; w = pathlib.Path({str(root / size)!r}); "
            f"s = b.open_stack({stack!r}, w, {threads}); loaded = b.rss_mb('VmRSS'); "
            f"p = np.random.default_rng(0).integers(0, {SIZES[size]['vocab_size']}, (1, {prompt_tokens})); "
            f"b.run_once(s, p, {new_tokens}, {1 if stack.startswith('llama') else 8}); "
            f"print(json.dumps({{'loaded_mb': loaded, 'peak_mb': b.rss_mb()}}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200)
    if done.returncode:
        return {"memory_error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_size(size: str, root: pathlib.Path, args, bandwidths: list) -> dict:
    """One shape in every stack; `bandwidths` gets a matrix-vector bandwidth measured in each round too."""
    import numpy as np

    work, skipped = prepare(size, root, args.stacks)
    names = [s for s in args.stacks if s not in skipped]
    stacks = {name: open_stack(name, work, args.threads) for name in names}
    prompt = np.random.default_rng(1).integers(0, SIZES[size]["vocab_size"], (1, args.prompt_tokens))
    want = greedy(stacks["tinyllm"], prompt, 8)
    agree = {name: bool((greedy(s, prompt, 8) == want).all()) for name, s in stacks.items()}
    runs = {name: {"b1": [], "b8": []} for name in names}
    for name, s in stacks.items():  # warm up: first calls allocate and (Numba) compile
        run_once(s, prompt, 2, 1)
    for _ in range(args.rounds):
        bandwidths.append(matvec_bandwidth(args.threads, 3))  # alternated with the stacks: the best is the bound
        for name, s in stacks.items():
            runs[name]["b1"].append(run_once(s, prompt, args.new_tokens, 1))
            if not name.startswith("llama"):
                runs[name]["b8"].append(run_once(s, prompt, args.new_tokens, 8))
    rows = {}
    for name in names:
        b1 = runs[name]["b1"]
        steps = np.array([r["steps"] for r in b1])  # (rounds, new_tokens)
        row = {"greedy_equal_to_tinyllm": agree[name],
               "ttft_ms": 1e3 * float(np.median([r["prefill"] for r in b1])),
               "prefill_tok_s_b1": float(np.median([args.prompt_tokens / r["prefill"] for r in b1])),
               "decode_tok_s_b1": float(np.median([args.new_tokens / sum(r["steps"]) for r in b1])),
               "token_ms_p50": 1e3 * float(np.percentile(steps, 50)),
               "token_ms_p95": 1e3 * float(np.percentile(steps, 95))}
        if runs[name]["b8"]:
            b8 = runs[name]["b8"]
            row["prefill_tok_s_b8"] = float(np.median([8 * args.prompt_tokens / r["prefill"] for r in b8]))
            row["decode_tok_s_b8"] = float(np.median([8 * args.new_tokens / sum(r["steps"]) for r in b8]))
        rows[name] = row
    del stacks
    for name in names:
        rows[name].update(memory_child(name, size, root, args.threads, args.prompt_tokens, args.new_tokens))
    return {"stacks": rows, "not_run": skipped, "decode_weight_bytes": decode_bytes(size)}


def plot(result: dict, path: str) -> None:
    """Bars per stack: prefill (batch 1 and 8) and decode (batch 1 and 8) tokens/s, one panel per size, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [("prefill_tok_s_b1", "prefill, batch 1"), ("prefill_tok_s_b8", "prefill, batch 8"),
               ("decode_tok_s_b1", "decode, batch 1"), ("decode_tok_s_b8", "decode, batch 8")]
    sizes = list(result["sizes"])
    fig, axes = plt.subplots(len(sizes), 1, figsize=(10, 4.2 * len(sizes)), squeeze=False)  # one above the other
    for ax, size in zip(axes[:, 0], sizes):
        r = result["sizes"][size]
        names = list(r["stacks"])
        x = np.arange(len(metrics))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [r["stacks"][name].get(key, np.nan) for key, _ in metrics]
            ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.axhline(r["decode_bound_tok_s_b1"], color="k", ls=":", lw=1, label="batch-1 decode bound (bandwidth)")
        ax.set_xticks(x, [label for _, label in metrics], fontsize=10)
        ax.set_yscale("log")
        ax.set_ylabel("tokens / s", fontsize=11)
        ax.set_title(f"{size}", fontsize=12)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=9.5, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the bars, not on them
    fig.suptitle(f"The same weights in each stack ({result['threads']} thread(s); "
                 f"prompt {result['prompt_tokens']}, {result['new_tokens']} new tokens)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--stacks", nargs="+", default=list(STACKS), choices=list(STACKS))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--work", default=None, help="where the exported models go (default: a temporary folder)")
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None, help="draw the tokens/s bars here (PNG)")
    p.add_argument("--plot-from", default=None, metavar="JSON", help="only draw --plot from an earlier --json")
    args = p.parse_args(argv)
    if args.plot_from:
        plot(json.loads(pathlib.Path(args.plot_from).read_text()), args.plot)
        return 0
    if "tinyllm" not in args.stacks:
        args.stacks.insert(0, "tinyllm")  # the reference for the greedy check and the ratios
    root = pathlib.Path(args.work or tempfile.mkdtemp(prefix="bench_stacks-"))
    bandwidths = [matvec_bandwidth(args.threads)]
    result = {"machine": machine(args.threads), "date": time.strftime("%Y-%m-%d"), "threads": args.threads,
              "rounds": args.rounds, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
              "load_average": os.getloadavg()[0], "sizes": {}}
    for size in args.sizes:
        r = bench_size(size, root, args, bandwidths)
        bandwidth = max(bandwidths)  # the machine's best: other jobs only slow a measurement down
        r["matvec_bandwidth_gb_s"] = bandwidth / 1e9
        r["decode_bound_tok_s_b1"] = bandwidth / r["decode_weight_bytes"]
        result["sizes"][size] = r
        mb = r["decode_weight_bytes"] / 1e6
        print(f"\n{size}: bound {r['decode_bound_tok_s_b1']:.1f} tok/s at batch 1 ({mb:.0f} MB of weights per step at "
              f"{bandwidth / 1e9:.1f} GB/s)")
        head = (f"{'stack':16s} {'greedy':>6s} {'TTFT ms':>8s} {'prefill b1':>10s} {'prefill b8':>10s} "
                f"{'decode b1':>9s} {'decode b8':>9s} {'p50 ms':>7s} {'p95 ms':>7s} {'peak MB':>8s}")
        print(head)
        for name, row in r["stacks"].items():
            print(f"{name:16s} {'same' if row['greedy_equal_to_tinyllm'] else 'DIFF':>6s} {row['ttft_ms']:8.1f} "
                  f"{row['prefill_tok_s_b1']:10.0f} {row.get('prefill_tok_s_b8', float('nan')):10.0f} "
                  f"{row['decode_tok_s_b1']:9.1f} {row.get('decode_tok_s_b8', float('nan')):9.1f} "
                  f"{row['token_ms_p50']:7.2f} {row['token_ms_p95']:7.2f} {row.get('peak_mb', float('nan')):8.0f}")
        for name, why in r["not_run"].items():
            print(f"{name:16s} not run: {why}")
        decode = {name: row["decode_tok_s_b1"] for name, row in r["stacks"].items()}
        r["ratios"] = {"tinyllm_of_bound": decode["tinyllm"] / r["decode_bound_tok_s_b1"]}
        print(f"tinyllm F32 decode at batch 1: {r['ratios']['tinyllm_of_bound']:.2f} of the bandwidth bound")
        for mine, peer in (("tinyllm", "transformers"), ("tinyllm-q8_0", "llama.cpp-q8_0"),
                           ("tinyllm", "llama.cpp-f32")):
            if mine in decode and peer in decode:
                r["ratios"][f"{mine}/{peer}"] = decode[mine] / decode[peer]
                print(f"{mine} / {peer} decode at batch 1: {r['ratios'][f'{mine}/{peer}']:.2f}x")
    result["load_average_after"] = os.getloadavg()[0]
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
