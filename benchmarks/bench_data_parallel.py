"""Benchmark: data-parallel training over MPI — the all-reduce's cost, its model, and throughput.

Three measurements, each in its own `mpiexec -n 2` (or plain) process, started from here:

    1. all-reduce time against message size (1 KiB .. 64 MiB of float32) between 2 ranks,
       and the ring model fitted to it:  t(B) = α + 2(N-1)/N · B / β   (α latency, β bandwidth;
       Patarasuk & Yuan 2009), so the cost for N ranks on another network can be read off:
       the bytes each rank sends per step stay ~2B whatever N is.
    2. training throughput of the recipe shakespeare-char-cpu (0.8M parameters, batch 64) through
       `tinyllm train`: one process on all cores against `mpiexec -n 2 ... --data-parallel` with the
       cores split, and the gradient bytes all-reduced per step;
    3. optimizer-state memory per rank, plain data parallel against ZeRO stage 1 (`--zero 1`).

    python benchmarks/bench_data_parallel.py                   # about 3 minutes on 2 cores
    python benchmarks/bench_data_parallel.py --iters 60        # shorter training runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.abspath(__file__)


def allreduce_child(reps: int) -> None:
    """Under mpiexec: median all-reduce seconds per size, printed as JSON by rank 0."""
    from tinyllm.distributed import MPIGroup

    group = MPIGroup()
    out = []
    for size in [2**k for k in range(10, 27, 2)]:  # bytes: 1 KiB .. 64 MiB
        buf = np.ones(size // 4, np.float32)
        times = []
        for _ in range(reps):
            group.barrier()
            t0 = time.perf_counter()
            group.allreduce_([buf])
            times.append(time.perf_counter() - t0)
        out.append(dict(bytes=size, seconds=statistics.median(times)))
    if group.rank == 0:
        print(json.dumps(dict(ranks=group.size, rows=out)))


def zero_child() -> None:
    """Under mpiexec: AdamW state bytes per rank for the recipe's model, plain and ZeRO-1 (after one step)."""
    import tinyllm
    from tinyllm.distributed import DataParallel, MPIGroup, ZeroOptimizer
    from tinyllm.nn import GPT, GPTConfig
    from tinyllm.optim import AdamW

    group = MPIGroup()
    result = {}
    for zero in (0, 1):
        tinyllm.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=65, context_length=256, n_layer=6, n_head=6, d_model=384))
        opt = AdamW(model.parameters(), lr=1e-3)
        opt = ZeroOptimizer(opt, group) if zero else opt
        dp = DataParallel(model.parameters(), group)
        x = tinyllm.tensor(np.random.default_rng(group.rank).integers(0, 65, (2, 256)))
        _, loss = model(x, x)
        loss.backward()
        dp.reduce_gradients()
        opt.step()
        held = (opt.state_bytes() if zero else
                sum(int(v.nbytes) for s in opt.state.values() for v in s.values() if hasattr(v, "nbytes")))
        result[zero] = group.allgather_json(held)
        result["parameters"] = model.num_parameters()
    if group.rank == 0:
        print(json.dumps(result))


def _mpiexec(n: int) -> list:
    exe = shutil.which("mpiexec")
    if exe is None:
        raise SystemExit("no mpiexec: pip install mpi4py mpich")
    return [exe, "-n", str(n)]


def _last_json(cmd: list, env=None) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()
    return json.loads(out[-1])


def _train(cmd_prefix: list, flags: list, out: str, iters: int) -> dict:
    """Wall seconds and the median logged tokens/s (after the first record) of one `tinyllm train`."""
    cmd = [*cmd_prefix, sys.executable, "-m", "tinyllm", "train", "--preset", "shakespeare-char-cpu", "--out", out,
           "--max-iters", str(iters), "--eval-interval", str(iters), "--eval-iters", "2", "--sample-tokens", "0",
           "--no-progress", "--log-interval", "10", *flags]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    speeds = [r["tokens_per_s"] for r in map(json.loads, open(os.path.join(out, "metrics.jsonl")))
              if "tokens_per_s" in r][1:]
    return dict(wall_s=wall, tokens_per_s=statistics.median(speeds))


def fit_ring(rows: list, n: int) -> tuple[float, float]:
    """α, β of t = α + 2(n-1)/n · bytes / β, least squares in relative error over the measured rows.

    Relative, not absolute: the times span three orders of magnitude, and absolute residuals would let
    the largest messages alone set both numbers (the latency of a 1 KiB message is then off by 30x).
    """
    x = np.array([2 * (n - 1) / n * r["bytes"] for r in rows])
    t = np.array([r["seconds"] for r in rows])
    A = np.stack([np.ones_like(x), x], axis=1) / t[:, None]  # each row divided by its time: residuals relative
    (alpha, inv_beta), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return float(alpha), float(1.0 / inv_beta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="data parallel over MPI: all-reduce cost, throughput, ZeRO memory")
    ap.add_argument("--iters", type=int, default=150, help="training iterations per run (default 150)")
    ap.add_argument("--reps", type=int, default=20, help="all-reduces per size (default 20)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--allreduce-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--zero-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.allreduce_child:
        allreduce_child(args.reps)
        return 0
    if args.zero_child:
        zero_child()
        return 0

    import mpi4py
    import numba

    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores, NumPy {np.__version__}, Numba {numba.__version__}, mpi4py {mpi4py.__version__} "
          f"(MPICH); load average {os.getloadavg()[0]:.2f} before", flush=True)
    results: dict = {}

    # 1. the all-reduce and its model
    ar = _last_json([*_mpiexec(2), sys.executable, HERE, "--allreduce-child", "--reps", str(args.reps)])
    alpha, beta = fit_ring(ar["rows"], 2)
    results["allreduce"] = dict(rows=ar["rows"], alpha_s=alpha, beta_bytes_per_s=beta)
    print("\n1. all-reduce between 2 ranks on this machine, and the ring model t = α + 2(N-1)/N · B / β fitted to it")
    print(f"   α = {alpha * 1e6:.1f} µs, β = {beta / 1e9:.2f} GB/s")
    print("       bytes   measured ms   model ms")
    for r in ar["rows"]:
        model = alpha + r["bytes"] / beta
        print(f"   {r['bytes']:>9,}   {r['seconds'] * 1e3:11.3f}   {model * 1e3:8.3f}")

    # 2. training throughput, 1 process against 2 ranks
    with tempfile.TemporaryDirectory() as tmp:
        one = _train([], [], os.path.join(tmp, "one"), args.iters)
        two = _train(_mpiexec(2), ["--data-parallel"], os.path.join(tmp, "two"), args.iters)
    import tinyllm
    from tinyllm.distributed import DataParallel, SingleProcess
    from tinyllm.train import preset

    _, fields = preset("shakespeare-char-cpu")
    tinyllm.manual_seed(0)
    from tinyllm.nn import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=65, **fields))
    step_bytes = DataParallel(model.parameters(), SingleProcess()).bytes_per_step
    results["training"] = dict(one=one, two=two, gradient_bytes=step_bytes)
    print(f"\n2. shakespeare-char-cpu, {args.iters} iterations: gradients of {step_bytes:,} bytes all-reduced per step")
    print(f"   1 process on {cores} cores:            {one['tokens_per_s']:9,.0f} tokens/s  "
          f"({one['wall_s']:.1f} s wall)")
    print(f"   2 ranks x {max(1, cores // 2)} core(s), --data-parallel: {two['tokens_per_s']:9,.0f} tokens/s  "
          f"({two['wall_s']:.1f} s wall), {two['tokens_per_s'] / one['tokens_per_s']:.2f}x")
    print(f"   the ring model's all-reduce per step: {(alpha + step_bytes / beta) * 1e3:.2f} ms on this machine")
    print("   the same bytes between N machines at 1.25 GB/s (10 Gb Ethernet), 2(N-1)/N · B / β (model, not measured):")
    print("   " + ", ".join(f"N={n}: {2 * (n - 1) / n * step_bytes / 1.25e9 * 1e3:.2f} ms" for n in (2, 4, 8, 16)))

    # 3. ZeRO-1's memory
    z = _last_json([*_mpiexec(2), sys.executable, HERE, "--zero-child"])
    results["zero"] = z
    print(f"\n3. AdamW state per rank, a GPT of {z['parameters']:,} parameters (6 layers, d_model 384), 2 ranks:")
    print(f"   plain data parallel: {', '.join(f'{b:,}' for b in z['0'])} bytes")
    print(f"   ZeRO stage 1:        {', '.join(f'{b:,}' for b in z['1'])} bytes "
          f"({max(z['1']) / max(z['0']):.2f}x the plain rank's)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
