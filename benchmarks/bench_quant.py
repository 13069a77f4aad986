"""Benchmark: y = x Wᵀ with W quantized (tinyllm/quant/qmatmul.py) against NumPy float32, same thread count.

At batch 1 a matrix-vector product reads each weight once, so its time is the time to stream W
from memory: the fewer bytes a weight, the faster, if the kernel's arithmetic keeps up. For each
size (8192 x 8192: 268 MB in float32, far past the 32 MiB L3; 4096 x 4096: 67 MB in float32, 9.4 MB
in Q4_0, which the L3 holds) and each batch, the formats are timed in turn, round after round
(alternating, so a busy machine slows them alike), and the best of the rounds is kept. Printed per
format: the time, the bytes the product must read (W as stored, x and y), the bandwidth that
implies, and the speedup over float32 in the same run.

    python benchmarks/bench_quant.py                          # both sizes, batches 1 and 4, all cores
    python benchmarks/bench_quant.py --sizes 8192 --batches 1 --rounds 9
    python benchmarks/bench_quant.py --threads 1              # NumPy's BLAS and the kernels both at 1
    python benchmarks/bench_quant.py --json docs/figures/14_bench_quant.json

The target: at 8192 x 8192, batch 1, Q8_0 and Q4_0 at least 1.5x float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

FORMATS = ("f32", "q8_0", "q4_0", "int8", "int4")


def machine() -> str:
    import numba
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, NumPy {np.__version__}, Numba {numba.__version__}"


def measure(size: int, batch: int, rounds: int, seed: int = 0) -> list[dict]:
    import numpy as np

    from tinyllm.quant.qmatmul import bytes_moved
    from tinyllm.quant.weight import QuantizedWeight

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((size, size), dtype=np.float32)
    x = rng.standard_normal((batch, size), dtype=np.float32)
    wt = w.T  # x @ w.T: what a Linear does (BLAS reads W row-major, transposed in place)
    fns, nbytes = {"f32": lambda: x @ wt}, {"f32": w.nbytes + 4 * batch * 2 * size}
    for fmt in FORMATS[1:]:
        qw = QuantizedWeight.from_float(w, fmt, group_size=32 if fmt == "int4" else None)
        fns[fmt] = lambda qw=qw: qw.matmul(x)
        nbytes[fmt] = bytes_moved(qw, batch)
    ref = fns["f32"]()
    for fmt, fn in fns.items():  # warm up (compiles on a cold cache) and check the answer is the product
        err = float(np.abs(fn() - ref).max() / np.abs(ref).max())
        assert err < 0.2, f"{fmt}: relative error {err}"
    best = {fmt: float("inf") for fmt in fns}
    cpu = dict(best)
    for _ in range(rounds):
        for fmt, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            best[fmt] = min(best[fmt], time.perf_counter() - t0)
            cpu[fmt] = min(cpu[fmt], time.process_time() - c0)
    return [dict(size=size, batch=batch, format=fmt, seconds=best[fmt], cpu_seconds=cpu[fmt], bytes=nbytes[fmt],
                 gb_per_s=nbytes[fmt] / best[fmt] / 1e9, speedup=best["f32"] / best[fmt],
                 speedup_cpu=cpu["f32"] / cpu[fmt]) for fmt in fns]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="quantized matrix-vector products against NumPy float32")
    ap.add_argument("--sizes", default="8192,4096", help="square matrix sizes, comma-separated")
    ap.add_argument("--batches", default="1,4", help="rows of x, comma-separated")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="BLAS and kernel threads (default: the cores)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from tinyllm.functional import kernels

    n = args.threads or len(os.sched_getaffinity(0))
    kernels.set_num_threads(n)  # the benchmark opts in: the same thread count for BLAS and the kernels
    print(f"{machine()}; {n} thread{'s' if n > 1 else ''} for NumPy's BLAS and the kernels; "
          f"best of {args.rounds} alternating rounds")
    rows = []
    with threadpool_limits(n, user_api="blas"):
        for size in map(int, args.sizes.split(",")):
            for batch in map(int, args.batches.split(",")):
                print(f"\n{size} x {size}, batch {batch}")
                print(f"  {'format':<8}{'wall ms':>9}{'CPU ms':>9}{'MB moved':>10}{'GB/s':>7}{'vs f32':>9}"
                      f"{'(CPU)':>8}")
                for r in measure(size, batch, args.rounds):
                    rows.append(r)
                    print(f"  {r['format']:<8}{r['seconds'] * 1e3:9.2f}{r['cpu_seconds'] * 1e3:9.2f}"
                          f"{r['bytes'] / 1e6:10.1f}{r['gb_per_s']:7.1f}{r['speedup']:8.2f}x{r['speedup_cpu']:7.2f}x",
                          flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "threads": n, "rounds": args.rounds, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
