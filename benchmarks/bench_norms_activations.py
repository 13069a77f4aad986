"""Benchmark: RMSNorm against LayerNorm, and the fused SwiGLU gate against its composition; forward + backward.

N rows of width C, the same input and upstream gradient for every contender:

    layer_norm        F.layer_norm(x, (C,), w, b): mean, variance, (x - μ) r w + b   (tinyllm's fused op)
    rms_norm          F.rms_norm(x, (C,), w): mean of squares, x r w                  (no mean, no bias)
    swiglu fused      F.swiglu(g, u): one ufunc pass forward, one per gradient backward (functional/gated.py)
    silu(g) * u       F.silu(g) * u: the same math as two ops (three saved arrays, more passes)

and, where PyTorch is installed, torch's layer_norm, rms_norm and silu(g) * u on the same arrays (its CPU
kernels, as a reference for what the ratio looks like elsewhere).

RMSNorm saves the mean and its subtraction: per row one reduction instead of two, and in the
backward one correction term instead of two; both are memory-bound, so the expected ratio is
below 1 but well above 1/2. The contenders are timed in rounds, each round in a rotated order,
each call after an untimed one of the same op; ratios are medians of per-round ratios. Wall and
CPU time (the process's) are both kept: on a shared machine the CPU time is the steadier one.

    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_norms_activations.py   # the chapter's run
    python benchmarks/bench_norms_activations.py --quick
Writes docs/figures/10_bench_norms_activations.json.
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
    d = dict(cores=len(os.sched_getaffinity(0)), cpu=cpu, numpy=np.__version__, numba=numba.__version__,
             python=platform.python_version(), load_before=os.getloadavg()[0],
             threads=os.environ.get("TINYLLM_NUM_THREADS", "default"))
    d["line"] = (f"{d['cores']} cores, {cpu}; numpy {d['numpy']}, numba {d['numba']}, python {d['python']}; "
                 f"TINYLLM_NUM_THREADS={d['threads']}; load average {d['load_before']:.2f} before the run")
    return d


def contenders(N: int, C: int, seed: int = 0) -> dict:
    """name -> a function running one forward + backward on fixed (N, C) arrays."""
    import tinyllm
    from tinyllm import functional as F

    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((N, C)).astype(np.float32) for _ in range(3)]
    x, g, go = (tinyllm.tensor(a, requires_grad=i < 2) for i, a in enumerate(arrays))
    w = tinyllm.tensor(np.ones(C, np.float32), requires_grad=True)
    b = tinyllm.tensor(np.zeros(C, np.float32), requires_grad=True)

    def run(make, leaves):
        def step():
            for t in leaves:
                t.grad = None
            make().backward(go)
        return step

    fns = {"layer_norm": run(lambda: F.layer_norm(x, (C,), w, b), (x, w, b)),
           "rms_norm": run(lambda: F.rms_norm(x, (C,), w), (x, w)),
           "swiglu fused": run(lambda: F.swiglu(g, x), (g, x)),
           "silu(g) * u": run(lambda: F.silu(g) * x, (g, x))}
    try:
        import torch
    except ImportError:
        return fns
    from tinyllm.functional import kernels

    torch.set_num_threads(kernels.num_threads())  # the benchmark's choice, visible: torch on as many threads as ours
    tx, tg = (torch.tensor(a, requires_grad=True) for a in arrays[:2])
    tgo = torch.tensor(arrays[2])
    tw, tb = torch.ones(C, requires_grad=True), torch.zeros(C, requires_grad=True)
    tf = torch.nn.functional

    def trun(make, leaves):
        def step():
            for t in leaves:
                t.grad = None
            make().backward(tgo)
        return step

    fns.update({"torch layer_norm": trun(lambda: tf.layer_norm(tx, (C,), tw, tb), (tx, tw, tb)),
                "torch rms_norm": trun(lambda: tf.rms_norm(tx, (C,), tw, eps=1e-5), (tx, tw)),
                "torch silu(g) * u": trun(lambda: tf.silu(tg) * tx, (tg, tx))})
    return fns


def bench(N: int, C: int, repeats: int) -> dict:
    fns = contenders(N, C)
    names = list(fns)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fns[name]()  # untimed: warm caches (and compile, the first time)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    def summary(times):
        def ratio(a, b):
            return statistics.median(x / y for x, y in zip(times[a], times[b])) if b in times else None

        out = {"ms": {n: 1e3 * statistics.median(t) for n, t in times.items()},
               "rms_over_layer_norm": ratio("rms_norm", "layer_norm"),
               "fused_over_composed": ratio("swiglu fused", "silu(g) * u")}
        if "torch rms_norm" in times:
            out["torch_rms_over_layer_norm"] = ratio("torch rms_norm", "torch layer_norm")
            out["layer_norm_over_torch"] = ratio("layer_norm", "torch layer_norm")
            out["rms_norm_over_torch"] = ratio("rms_norm", "torch rms_norm")
        return out

    return {"N": N, "C": C, "repeats": repeats, "wall": summary(wall), "cpu": summary(cpu)}


def main(argv=None):
    ap = argparse.ArgumentParser(description="RMSNorm vs LayerNorm, fused SwiGLU gate vs silu(g)*u: forward+backward")
    ap.add_argument("--quick", action="store_true", help="two small shapes, 5 rounds")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 15; --quick 5)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "10_bench_norms_activations.json")
    args = ap.parse_args(argv)
    shapes = [(1024, 256), (4096, 256)] if args.quick else [(4096, 256), (4096, 768), (16384, 768), (4096, 2048)]
    repeats = args.repeats or (5 if args.quick else 15)
    machine = describe_machine()
    print(machine["line"])
    results = []
    for N, C in shapes:
        r = bench(N, C, repeats)
        results.append(r)
        for clock in ("cpu", "wall"):
            s = r[clock]
            extra = "" if "torch_rms_over_layer_norm" not in s else (
                f"; torch rms/ln x{s['torch_rms_over_layer_norm']:.2f}, ours/torch: ln "
                f"x{s['layer_norm_over_torch']:.2f}, rms x{s['rms_norm_over_torch']:.2f}")
            print(f"  N={N:>5} C={C:>4} {clock:>4}: layer_norm {s['ms']['layer_norm']:7.2f} ms, rms_norm "
                  f"{s['ms']['rms_norm']:7.2f} ms (x{s['rms_over_layer_norm']:.2f}); swiglu fused "
                  f"{s['ms']['swiglu fused']:7.2f} ms, silu(g)*u {s['ms']['silu(g) * u']:7.2f} ms "
                  f"(x{s['fused_over_composed']:.2f}){extra}")
    command = "python benchmarks/bench_norms_activations.py" + (" --quick" if args.quick else "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(command=command, machine=machine, results=results), indent=1) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
