"""Benchmark: grouped-query attention against multi-head, in memory and in time (§9).

One model shape, n_head = 8 query heads of 64 (d_model 512, 4 layers, RoPE, random
weights), with n_kv_head = 8 (multi-head), 4, 2 and 1 (multi-query):

    1. KV-cache bytes against the sequence length S: the cache's measured nbytes, and the formula
           2 · n_layer · n_kv_head · head_dim · S · B · 4 bytes           (keys and values, float32)
    2. decode tokens/s with S = 512 .. 8192 positions already cached: one token per step through
       the raw-array Decoder (tinyllm/inference/decode.py); the cache is filled with random keys and
       values (a step's time does not depend on them), so no long prefill is needed. A step reads
       every weight once and the cached keys and values once: bytes per step, against the model's
       weight bytes, say how much GQA can save at each S
    3. prefill time of T = 512 and 2048 tokens through the modules: GQA shrinks only the k and v
       projections; the attention arithmetic (every query head against its keys) stays the same

The configurations are timed in rounds, each visiting them in a rotated order; times are medians,
ratios the medians of per-round ratios against multi-head. Wall and CPU time (the process's) are
both kept: on a shared machine CPU time is the steadier one.

    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_gqa.py    # the chapter's run
    python benchmarks/bench_gqa.py --quick          # S up to 2048, fewer steps
    python benchmarks/bench_gqa.py --replot         # the figure again from the JSON
Writes docs/figures/09_bench_gqa.json and docs/figures/09_bench_gqa.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_moe import describe_machine  # noqa: E402  (the same machine line)

KV_HEADS = (8, 4, 2, 1)


def make_model(n_kv_head: int, context: int, n_layer: int = 4, d_model: int = 512, seed: int = 0):
    import tinyllm
    from tinyllm.nn import GPT, GPTConfig

    tinyllm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=256, context_length=context, n_layer=n_layer, n_head=8, n_kv_head=n_kv_head,
                    d_model=d_model, pos_encoding="rope", bias=False)
    return GPT(cfg).eval()


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def cache_bytes(models: dict, lengths: list) -> list:
    from tinyllm.inference.kv_cache import KVCache

    rows = []
    for S in lengths:
        for nkv, m in models.items():
            c = m.config
            measured = m.make_cache(batch_size=1, max_len=S).nbytes
            rows.append({"S": S, "n_kv_head": nkv, "bytes": measured,
                         "formula": KVCache.bytes_needed(c.n_layer, nkv, c.head_dim, S)})
    return rows


def decode(models: dict, lengths: list, steps: int, rounds: int, seed: int = 0) -> list:
    """Per S: the median step time of each configuration, S positions already cached."""
    rng = np.random.default_rng(seed)
    rows = []
    for S in lengths:
        decs = {}
        for nkv, m in models.items():
            c = m.config
            dec = m.make_decoder(batch_size=1, max_len=S + steps * rounds + 1)
            shape = (c.n_layer, 1, nkv, S, c.head_dim)
            dec.cache.set_prefix(rng.standard_normal(shape, dtype=np.float32),
                                 rng.standard_normal(shape, dtype=np.float32))
            decs[nkv] = dec
        wall = {nkv: [] for nkv in models}
        cpu = {nkv: [] for nkv in models}
        names = list(models)
        tok = np.array([1])
        for r in range(rounds):
            for nkv in names[r % len(names):] + names[:r % len(names)]:
                dec = decs[nkv]
                dec.cache.crop(S)
                dec.step(tok)  # untimed
                dec.cache.crop(S)
                for _ in range(steps):
                    _, w, c = timed(lambda: dec.step(tok))  # noqa: B023
                    wall[nkv].append(w)
                    cpu[nkv].append(c)
        for nkv, m in models.items():
            c = m.config
            weights = 4 * sum(p.numel() for p in m.parameters())
            kv = 2 * c.n_layer * nkv * c.head_dim * S * 4
            rows.append({"S": S, "n_kv_head": nkv, "wall_ms": 1e3 * statistics.median(wall[nkv]),
                         "cpu_ms": 1e3 * statistics.median(cpu[nkv]),
                         "tok_per_s_wall": 1 / statistics.median(wall[nkv]),
                         "tok_per_s_cpu": 1 / statistics.median(cpu[nkv]),
                         "speedup_cpu": statistics.median(a / b for a, b in zip(cpu[8], cpu[nkv])),
                         "speedup_wall": statistics.median(a / b for a, b in zip(wall[8], wall[nkv])),
                         "weight_bytes": weights, "kv_bytes_read": kv,
                         "bytes_ratio": (weights + 2 * c.n_layer * 8 * c.head_dim * S * 4) / (weights + kv)})
        del decs
        line = "  ".join(f"nkv={r['n_kv_head']}: {r['tok_per_s_cpu']:6.1f} tok/s ({r['speedup_cpu']:.2f}x)"
                         for r in rows[-len(models):])
        print(f"  decode at S={S:>5}: {line}; load {os.getloadavg()[0]:.1f}", flush=True)
    return rows


def prefill(models: dict, lengths: list, rounds: int, seed: int = 0) -> list:
    import tinyllm

    rng = np.random.default_rng(seed)
    rows = []
    for T in lengths:
        ids = rng.integers(0, 256, (1, T))
        wall = {nkv: [] for nkv in models}
        cpu = {nkv: [] for nkv in models}
        names = list(models)
        for r in range(rounds):
            for nkv in names[r % len(names):] + names[:r % len(names)]:
                m = models[nkv]
                with tinyllm.no_grad():
                    _, w, c = timed(lambda: m(ids, cache=m.make_cache(1, T)))  # noqa: B023
                wall[nkv].append(w)
                cpu[nkv].append(c)
        for nkv in models:
            rows.append({"T": T, "n_kv_head": nkv, "wall_ms": 1e3 * statistics.median(wall[nkv]),
                         "cpu_ms": 1e3 * statistics.median(cpu[nkv]),
                         "speedup_cpu": statistics.median(a / b for a, b in zip(cpu[8], cpu[nkv]))})
        line = "  ".join(f"nkv={r['n_kv_head']}: {r['cpu_ms']:7.1f} ms ({r['speedup_cpu']:.2f}x)"
                         for r in rows[-len(models):])
        print(f"  prefill T={T:>5}: {line}", flush=True)
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {8: "#e6550d", 4: "#fd8d3c", 2: "#6baed6", 1: "#08519c"}
    plt.rcParams.update({"font.size": 12})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9))
    for nkv in KV_HEADS:
        b = [r for r in result["cache"] if r["n_kv_head"] == nkv]
        axes[0].plot([r["S"] for r in b], [r["bytes"] / 2**20 for r in b], "o-", color=colors[nkv], label=f"nkv={nkv}")
        axes[0].plot([r["S"] for r in b], [r["formula"] / 2**20 for r in b], "k:", lw=0.8)
        d = [r for r in result["decode"] if r["n_kv_head"] == nkv]
        axes[1].plot([r["S"] for r in d], [r["tok_per_s_cpu"] for r in d], "o-", color=colors[nkv], label=f"nkv={nkv}")
        axes[2].plot([r["S"] for r in d], [r["speedup_cpu"] for r in d], "o-", color=colors[nkv], label=f"nkv={nkv}")
        if nkv != 8:
            axes[2].plot([r["S"] for r in d], [r["bytes_ratio"] for r in d], ":", color=colors[nkv], lw=1)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("cached positions S")
        ax.legend(fontsize=11)
    axes[0].set_ylabel("KV cache, MiB (dotted: formula)")
    axes[0].set_yscale("log", base=2)
    axes[1].set_ylabel("decode tokens/s (CPU time)")
    axes[2].set_ylabel("speedup over nkv=8 (dotted: bytes-read ratio)")
    fig.suptitle("n_head=8, head_dim=64, 4 layers, d_model 512; batch 1, float32")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="GQA vs multi-head: KV-cache bytes, decode tokens/s, prefill time")
    ap.add_argument("--quick", action="store_true", help="S up to 2048, fewer steps and rounds")
    ap.add_argument("--steps", type=int, default=None, help="decode steps timed per round (default 8; quick 4)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 3)")
    ap.add_argument("--json", default=str(ROOT / "docs/figures/09_bench_gqa.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs/figures/09_bench_gqa.png"))
    ap.add_argument("--replot", action="store_true", help="redraw --figure from --json, no timing")
    args = ap.parse_args(argv)
    if args.replot:
        result = json.loads(Path(args.json).read_text())
        plot(result, Path(args.figure))
        return result
    from tinyllm.runtime import keep_host_memory

    keep_host_memory()
    lengths = [512, 1024, 2048] if args.quick else [512, 1024, 2048, 4096, 8192]
    steps, rounds = args.steps or (4 if args.quick else 8), args.rounds or (3 if args.quick else 5)
    machine = describe_machine()
    print(f"GQA vs multi-head, n_head=8, head_dim=64, 4 layers, d_model 512, RoPE, float32, batch 1\n"
          f"machine: {machine['line']}")
    t0 = time.perf_counter()
    context = max(lengths) + steps * rounds + 2
    models = {nkv: make_model(nkv, context) for nkv in KV_HEADS}
    result = {"cache": cache_bytes(models, lengths), "machine": machine,
              "params": {nkv: m.num_parameters() for nkv, m in models.items()}}
    for r in result["cache"]:
        assert r["bytes"] == r["formula"], r
    print("1. KV cache MiB (= the formula, every row):")
    for S in lengths:
        print(f"  S={S:>5}: " + "  ".join(f"nkv={r['n_kv_head']}: {r['bytes'] / 2**20:7.2f}"
                                          for r in result["cache"] if r["S"] == S))
    print(f"2. decode, {steps} steps x {rounds} rounds per configuration (speedup: CPU time against nkv=8)")
    result["decode"] = decode(models, lengths, steps, rounds)
    print("3. prefill through the modules")
    result["prefill"] = prefill(models, [512, 2048] if not args.quick else [512], rounds)
    result.update(seconds=time.perf_counter() - t0, load_after=os.getloadavg()[0],
                  command="python benchmarks/bench_gqa.py" + (" --quick" if args.quick else ""))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    plot(result, Path(args.figure))
    print(f"wrote {args.json} and {args.figure} ({result['seconds']:.0f} s; load average {result['load_after']:.2f})")
    return result


if __name__ == "__main__":
    main()
