"""Where does a GPT block's forward + backward spend its time? tinyllm and PyTorch, op by op.

Runs the block of bench_autograd.py under cProfile (tinyllm: time inside each
Function's forward/backward, i.e. the array work it launches) and under
torch.profiler (PyTorch: self time of each aten op), and prints both tables
per step, plus the page faults and the CPU time (user/system) per step of each.

    python benchmarks/profile_autograd.py                  # (16, 256, 384)
    python benchmarks/profile_autograd.py --shape 12,64,128
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import time

import numpy as np
from bench_autograd import make_weights, setup_tinyllm, setup_torch


def function_classes():
    """{(file, first line) of each Function's forward/backward: 'Class.forward'}."""
    import tinyllm.functional  # noqa: F401  (registers the fused ops)
    from tinyllm.function import Function

    names, todo = {}, [Function]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        for method in ("forward", "backward"):
            fn = cls.__dict__.get(method)
            if isinstance(fn, staticmethod):
                code = fn.__func__.__code__
                names[(code.co_filename, code.co_firstlineno)] = f"{cls.__name__}.{method}"
    return names


def usage(step, n):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(n):
        step()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return {"wall_ms": 1e3 * (t1 - t0) / n, "user_ms": 1e3 * (r1.ru_utime - r0.ru_utime) / n,
            "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / n, "page_faults": (r1.ru_minflt - r0.ru_minflt) / n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="16,256,384", help="B,T,C")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--no-keep-memory", action="store_true", help="leave glibc's malloc at its defaults")
    args = ap.parse_args(argv)
    if not args.no_keep_memory:
        from tinyllm.runtime import keep_host_memory

        keep_host_memory()
    B, T, C = (int(v) for v in args.shape.split(","))
    n_head = max(1, C // 64)
    rng = np.random.default_rng(1)
    weights = make_weights(C)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    grad = rng.standard_normal((B, T, C)).astype(np.float32)

    tl_step, _ = setup_tinyllm(weights, x, grad, n_head, "cpu")
    for _ in range(3):
        tl_step()
    tl_usage = usage(tl_step, args.steps)
    prof = cProfile.Profile()
    prof.runcall(lambda: [tl_step() for _ in range(args.steps)])
    names = function_classes()
    rows = [(names[(f, line)], ct) for (f, line, _), (_, _, _, ct, _) in pstats.Stats(prof).stats.items()
            if (f, line) in names]  # time inside forward/backward, including the kernels they call
    print(f"tinyllm, (B, T, C) = ({B}, {T}, {C}), per step: " + ", ".join(f"{k} {v:.1f}" for k, v in tl_usage.items()))
    for name, ct in sorted(rows, key=lambda r: -r[1])[:args.top]:
        print(f"  {name:40s} {1e3 * ct / args.steps:8.2f} ms")

    import torch
    from torch.profiler import ProfilerActivity, profile

    pt_step, _ = setup_torch(weights, x, grad, n_head, "cpu")
    for _ in range(3):
        pt_step()
    pt_usage = usage(pt_step, args.steps)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(args.steps):
            pt_step()
    print(f"PyTorch {torch.__version__}, per step: " + ", ".join(f"{k} {v:.1f}" for k, v in pt_usage.items()))
    for e in sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"  {e.key[:40]:40s} {e.self_cpu_time_total / args.steps / 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
