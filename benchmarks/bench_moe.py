"""Benchmark: does a mixture of experts really skip the work? Forward + backward of one feed-forward layer.

N tokens of width C = d_model go through, in turn (same input, same upstream gradient):

    mlp          the dense MLP, C -> d_ff -> C: the same *active* size as one expert
    moe top-1    tinyllm.nn.MoE, E experts of that size, top-1 routing (router, softmax, top-k,
                 grouping by expert, dispatch, E expert products on their own tokens, combine)
    experts      the E experts on E pre-cut blocks of N/E tokens: the expert arithmetic of a
                 perfectly balanced top-1 layer with no routing at all (the floor)
    all experts  MoE(dense=True): every expert on every token, weighted by the same gates
                 (the same output; E times the expert work)

FLOPs are counted analytically (forward + backward = 3 x forward; a multiply-add is 2):

    mlp          3 · 2 · N · 2·C·d_ff
    moe top-k    3 · 2 · N · (k · 2·C·d_ff + C·E)          (the router: C·E per token)
    all experts  3 · 2 · N · (E · 2·C·d_ff + C·E)

Targets: moe top-1 <= 0.3 x all experts and <= 1.5 x mlp (routing overhead under 50%).
The layers are timed in rounds, each round visiting them in a rotated order, each
call after a short idle and an untimed call of the same layer; the ratios are the
medians of the per-round ratios, so a machine that speeds up or slows down
affects all alike. Wall and CPU time (the process's, all its threads) are both
kept: on a shared machine the CPU time is the steadier one, and with one BLAS
thread it is the work done.

    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_moe.py   # the chapter's run
    python benchmarks/bench_moe.py                 # N = 1024, 4096, 16384; C = 256, d_ff = 1024, E = 8
    python benchmarks/bench_moe.py --quick         # N = 1024, 4096, a few rounds
    python benchmarks/bench_moe.py --tokens 4096 --repeats 20
Writes docs/figures/08_bench_moe.json and docs/figures/08_bench_moe.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def describe_machine() -> dict:
    """Cores, CPU model, library versions, load: what the timings depend on."""
    import numba

    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.processor())
    try:
        import threadpoolctl

        blas = ", ".join(f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
                         for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        blas = "?"
    d = dict(cores=len(os.sched_getaffinity(0)), cpu=cpu, numpy=np.__version__, numba=numba.__version__,
             blas=blas, python=platform.python_version(), load_before=os.getloadavg()[0])
    d["line"] = (f"{d['cores']} cores, {cpu}; numpy {d['numpy']}, numba {d['numba']}, {blas}; python "
                 f"{d['python']}; load average {d['load_before']:.2f} before the run")
    return d


def make_layers(C: int, d_ff: int, E: int, seed: int = 0) -> dict:
    """The four contenders, sharing weights: expert 0 of the MoE is the MLP."""
    import tinyllm
    from tinyllm.nn import MLP, GPTConfig, MoE
    from tinyllm.nn.moe import Expert

    tinyllm.manual_seed(seed)
    moe = MoE(C, d_ff, E, top_k=1)
    rng = np.random.default_rng(seed)
    for p in moe.parameters():  # GPT-2's scale; a random router sends about N/E tokens to each expert
        p.data[...] = (0.02 * rng.standard_normal(p.shape)).astype(np.float32)
    mlp = MLP(GPTConfig(vocab_size=1, context_length=1, n_layer=1, n_head=1, d_model=C, d_ff=d_ff))
    mlp.load_state_dict({k: v for k, v in moe.experts[0].state_dict().items()})
    dense = MoE(C, d_ff, E, top_k=1, dense=True)
    dense.load_state_dict(moe.state_dict())
    experts = [Expert(C, d_ff) for _ in range(E)]
    for e, ex in enumerate(experts):
        ex.load_state_dict(moe.experts[e].state_dict())
    return dict(mlp=mlp, moe=moe, experts=experts, dense=dense)


def steps(layers: dict, x_np: np.ndarray, g_np: np.ndarray) -> dict:
    """name -> a function doing one forward + backward (parameters' and input's gradients)."""
    import tinyllm

    E = len(layers["experts"])
    N = x_np.shape[0]
    cuts = np.linspace(0, N, E + 1).astype(int)

    def run(fn, params):
        def step():
            for p in params:
                p.grad = None
            x = tinyllm.tensor(x_np, requires_grad=True)
            y = fn(x)
            y.backward(tinyllm.tensor(g_np))
            return y
        return step

    def blocks(x):  # each expert on its own contiguous block of N/E tokens
        return tinyllm.cat([ex(x[a:b]) for ex, a, b in zip(layers["experts"], cuts[:-1], cuts[1:])], dim=0)

    return {"mlp": run(layers["mlp"], list(layers["mlp"].parameters())),
            "moe top-1": run(layers["moe"], list(layers["moe"].parameters())),
            "experts": run(blocks, [p for ex in layers["experts"] for p in ex.parameters()]),
            "all experts": run(layers["dense"], list(layers["dense"].parameters()))}


def flops(N: int, C: int, d_ff: int, E: int) -> dict:
    f = 2 * C * d_ff  # an MLP's multiply-adds per token
    return {"mlp": 6 * N * f, "moe top-1": 6 * N * (f + C * E), "experts": 6 * N * f,
            "all experts": 6 * N * (E * f + C * E)}


def bench(N: int, C: int, d_ff: int, E: int, repeats: int, settle: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((N, C)).astype(np.float32)
    g = rng.standard_normal((N, C)).astype(np.float32)
    layers = make_layers(C, d_ff, E, seed)
    fns = steps(layers, x, g)
    import tinyllm

    diff = float(np.abs(tinyllm.to_numpy(fns["moe top-1"]().data) - tinyllm.to_numpy(fns["all experts"]().data)).max())
    counts = layers["moe"].stats.tokens_per_expert
    names = list(fns)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            time.sleep(settle)
            fns[name]()  # untimed: warm caches and BLAS threads
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    def summary(times):
        def ratio(a, b):
            return statistics.median(x / y for x, y in zip(times[a], times[b]))

        ms = {n: 1e3 * statistics.median(t) for n, t in times.items()}
        return {"ms": ms, "gflops_per_s": {n: fl[n] / (ms[n] * 1e6) for n in names},
                "moe_vs_all": ratio("moe top-1", "all experts"), "moe_vs_mlp": ratio("moe top-1", "mlp"),
                "experts_vs_mlp": ratio("experts", "mlp"), "moe_vs_experts": ratio("moe top-1", "experts")}

    fl = flops(N, C, d_ff, E)
    return {"N": N, "C": C, "d_ff": d_ff, "E": E, "repeats": repeats, "flops": fl, "wall": summary(wall),
            "cpu": summary(cpu), "tokens_per_expert": counts, "max_abs_diff_sparse_dense": diff}


def plot(results: list, path: Path, clock: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["mlp", "experts", "moe top-1", "all experts"]
    colors = ["#888888", "#9ecae1", "#3182bd", "#e6550d"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    w = 0.2
    xs = np.arange(len(results))
    for i, (n, c) in enumerate(zip(names, colors)):
        axes[0].bar(xs + (i - 1.5) * w, [r[clock]["ms"][n] for r in results], w, label=n, color=c)
    axes[0].set_yscale("log")
    axes[0].set_xticks(xs, [f"N={r['N']}" for r in results])
    axes[0].set_ylabel(f"forward + backward, {clock} ms (log)")
    axes[0].set_title(f"E={results[0]['E']} experts, C={results[0]['C']}, d_ff={results[0]['d_ff']}")
    axes[0].legend(fontsize=9)
    axes[1].plot(xs, [r[clock]["moe_vs_all"] for r in results], "o-", color="#e6550d", label="moe top-1 / all experts")
    axes[1].plot(xs, [r[clock]["moe_vs_mlp"] for r in results], "o-", color="#3182bd", label="moe top-1 / mlp")
    axes[1].axhline(0.3, color="#e6550d", ls=":", lw=1)
    axes[1].axhline(1.5, color="#3182bd", ls=":", lw=1)
    axes[1].set_xticks(xs, [f"N={r['N']}" for r in results])
    axes[1].set_ylabel(f"{clock} time ratio (median of rounds)")
    axes[1].set_title("targets (dotted): <= 0.3 and <= 1.5")
    axes[1].legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="MoE top-1 vs the dense MLP and all experts: forward + backward")
    ap.add_argument("--tokens", default=None, help="comma-separated token counts N (default 1024,4096,16384)")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 11; --quick 5)")
    ap.add_argument("--settle", type=float, default=0.05, help="idle seconds before each call")
    ap.add_argument("--quick", action="store_true", help="N = 1024, 4096 and 5 rounds")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                    help="which times the figure shows (both are printed and saved; on a shared machine CPU time "
                         "is the steadier one)")
    ap.add_argument("--json", default=str(ROOT / "docs/figures/08_bench_moe.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs/figures/08_bench_moe.png"))
    args = ap.parse_args(argv)
    from tinyllm.runtime import keep_host_memory

    keep_host_memory()
    tokens = [int(t) for t in (args.tokens or ("1024,4096" if args.quick else "1024,4096,16384")).split(",")]
    repeats = args.repeats or (5 if args.quick else 11)
    machine = describe_machine()
    print(f"MoE forward+backward, float32, E={args.experts} experts, top-1; C={args.d_model}, d_ff={args.d_ff}; "
          f"median of {repeats} rotated rounds\nmachine: {machine['line']}")
    print(f"{'N':>6} {'clock':>5} {'mlp ms':>8} {'experts':>8} {'moe ms':>8} {'all ms':>8} {'moe/all':>8} "
          f"{'moe/mlp':>8} {'moe/experts':>11}  GFLOP/s (mlp, moe, all)")
    t0 = time.perf_counter()
    results = []
    for N in tokens:
        r = bench(N, args.d_model, args.d_ff, args.experts, repeats, args.settle)
        results.append(r)
        for clock in ("wall", "cpu"):
            ms, gf, q = r[clock]["ms"], r[clock]["gflops_per_s"], r[clock]
            print(f"{N:>6} {clock:>5} {ms['mlp']:>8.1f} {ms['experts']:>8.1f} {ms['moe top-1']:>8.1f} "
                  f"{ms['all experts']:>8.1f} {q['moe_vs_all']:>7.3f}x {q['moe_vs_mlp']:>7.3f}x "
                  f"{q['moe_vs_experts']:>10.3f}x  {gf['mlp']:>5.0f} {gf['moe top-1']:>5.0f} {gf['all experts']:>5.0f}",
                  flush=True)
        print(f"{'':>6} tokens per expert {r['tokens_per_expert']}; load average {os.getloadavg()[0]:.2f}", flush=True)
    met = {clock: {"vs_all": all(r[clock]["moe_vs_all"] <= 0.3 for r in results),
                   "vs_mlp": all(r[clock]["moe_vs_mlp"] <= 1.5 for r in results)} for clock in ("wall", "cpu")}
    for clock, m in met.items():
        print(f"targets ({clock} time): moe top-1 <= 0.3 x all experts: {'met' if m['vs_all'] else 'MISSED'}; "
              f"<= 1.5 x mlp: {'met' if m['vs_mlp'] else 'MISSED'}")
    print(f"max |sparse - dense| = {max(r['max_abs_diff_sparse_dense'] for r in results):.2e}")
    out = {"results": results, "machine": machine, "seconds": time.perf_counter() - t0,
           "load_after": os.getloadavg()[0], "targets_met": met,
           "command": "python benchmarks/bench_moe.py" + (" --quick" if args.quick else "")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    plot(results, Path(args.figure), args.clock)
    print(f"wrote {args.json} and {args.figure} ({out['seconds']:.0f} s; load average {out['load_after']:.2f} after)")
    return out


if __name__ == "__main__":
    main()
