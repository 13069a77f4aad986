"""Benchmark: the main job as a user runs it, `tinyllm train` against nanoGPT's train.py, wall clock.

benchmarks/bench_train.py times training steps in one process; a user waits for more than
that: Python's start, imports, reading and encoding the data, compiling the Numba kernels
(the first run only: they are cached in NUMBA_CACHE_DIR), evaluations, checkpoints and the
final sample. So this benchmark runs, as separate processes, alternating,

    tinyllm train --preset shakespeare-char-cpu --data tinyshakespeare.txt --out ...
    python benchmarks/nanogpt_train.py --data tinyshakespeare.txt --out ...     (the same recipe)

and prints each wall time and CPU time (user + system of the process and its threads), the
ratios (median tinyllm / median PyTorch) and both final val losses. On an idle machine the wall
time is what a user waits; on a busy one it depends on the other jobs, and the CPU time is the
steadier comparison of the work each does (a thread that spins waiting for another counts too).
With --cold it first runs tinyllm once on an empty Numba cache (a first run on a new machine).
With --phases it runs tinyllm once more in-process and splits its wall time: import, data (read,
tokenizer, encode), compile (Numba, wherever it happens), steps, evals, checkpoints, sample, the rest.

    python benchmarks/bench_cli_train.py --rounds 2 --cold --phases     # about 15 minutes on 2 cores
    python benchmarks/bench_cli_train.py --quick                        # 200 iterations: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_path(given: str | None) -> str:
    path = given or os.path.join(os.environ.get("TINYLLM_DATA_DIR", ""), "tinyshakespeare.txt")
    if not os.path.isfile(path):
        raise SystemExit(f"no tinyshakespeare.txt at {path!r}: pass --data FILE or set TINYLLM_DATA_DIR")
    return path


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_tinyllm(data, out, iters, env) -> dict:
    """Wall and CPU seconds and the final val loss of one `tinyllm train` process."""
    cmd = [sys.executable, "-m", "tinyllm", "train", "--preset", "shakespeare-char-cpu", "--data", data,
           "--out", out, "--no-progress", "--max-iters", str(iters)]
    t0, c0 = time.perf_counter(), _children_cpu()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    evals = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if '"eval"' in line]
    return dict(wall_s=wall, cpu_s=cpu, val_loss=evals[-1]["val_loss"])


def run_torch(data, out, iters) -> dict:
    """Wall and CPU seconds and the final val loss of one nanogpt_train.py process."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "nanogpt_train.py"), "--data", data, "--out", out,
           "--max-iters", str(iters)]
    t0, c0 = time.perf_counter(), _children_cpu()
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    val = float(next(line for line in reversed(lines) if line.startswith("val_loss")).split()[1])
    return dict(wall_s=wall, cpu_s=cpu, val_loss=val)


def _line(r: dict) -> str:
    return f"{r['wall_s']:7.1f} s wall, {r['cpu_s']:7.1f} s CPU, val loss {r['val_loss']:.4f}"


def phases_child(data: str, out: str, iters: int) -> None:
    """Run `tinyllm train` in this process with timers around its parts; print the split as JSON."""
    t_start = time.perf_counter()
    import tinyllm.cli as cli  # the import phase: tinyllm, NumPy, Numba (loading cached kernels is later)
    from tinyllm.train import loop

    t_imported = time.perf_counter()
    from numba.core import event

    compiling = event.TimingListener()  # every top-level Numba compile, wherever it happens
    event.register("numba:compile", compiling)
    spent = dict(data=0.0, steps=0.0, evals=0.0, checkpoints=0.0, sample=0.0)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0, c0 = time.perf_counter(), _compiled(compiling)
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += (time.perf_counter() - t0) - (_compiled(compiling) - c0)
        return wrapper

    loop.prepare = timed("data", loop.prepare)
    loop.estimate_loss = timed("evals", loop.estimate_loss)
    loop.save_checkpoint = timed("checkpoints", loop.save_checkpoint)
    cli._generate_text = timed("sample", cli._generate_text)
    train = loop.train
    loop.train = timed("steps", train)  # the whole loop; evals and checkpoints are taken out below
    argv = ["train", "--preset", "shakespeare-char-cpu", "--data", data, "--out", out, "--no-progress",
            "--max-iters", str(iters)]
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            assert cli.main(argv) == 0
        finally:
            sys.stdout = stdout
    wall = time.perf_counter() - t_start
    spent["steps"] -= spent["evals"] + spent["checkpoints"]
    result = dict(import_=t_imported - t_start, compile=_compiled(compiling), **spent)
    result["rest"] = wall - sum(result.values())
    result["wall"] = wall
    print(json.dumps(result))


def _compiled(listener) -> float:
    """Seconds of Numba compilation so far (the listener sums every outermost compile event)."""
    return listener.duration if listener.done else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="`tinyllm train` vs nanoGPT's train.py, end to end, wall clock")
    ap.add_argument("--data", default=None, help="tinyshakespeare.txt (default: $TINYLLM_DATA_DIR/tinyshakespeare.txt)")
    ap.add_argument("--rounds", type=int, default=2, help="warm runs of each, alternating (default 2)")
    ap.add_argument("--max-iters", type=int, default=2000, help="(default: the recipe's 2000)")
    ap.add_argument("--cold", action="store_true", help="also one tinyllm run on an empty Numba cache, first")
    ap.add_argument("--phases", action="store_true", help="also split one warm tinyllm run into its phases")
    ap.add_argument("--quick", action="store_true", help="200 iterations, one round: a smoke test")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--phases-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    data = data_path(args.data)
    iters = 200 if args.quick else args.max_iters
    if args.phases_child:
        phases_child(data, args.out, iters)
        return 0
    rounds = 1 if args.quick else args.rounds

    import numba
    import numpy as np
    import torch

    print(f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}, NumPy {np.__version__}, Numba "
          f"{numba.__version__}, PyTorch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"{iters} iterations of shakespeare-char-cpu; load average {os.getloadavg()[0]:.2f} before", flush=True)
    results: dict = dict(iters=iters, tinyllm=[], torch=[])
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.cold:
            cold_env = dict(env, NUMBA_CACHE_DIR=os.path.join(tmp, "empty-numba-cache"))
            results["tinyllm_cold"] = r = run_tinyllm(data, os.path.join(tmp, "cold"), iters, cold_env)
            print(f"tinyllm, empty Numba cache: {_line(r)}", flush=True)
        else:  # warm the cache (and the file cache) without counting it
            run_tinyllm(data, os.path.join(tmp, "warmup"), 1, env)
        for i in range(rounds):
            pair = [("tinyllm", run_tinyllm, (data, os.path.join(tmp, f"t{i}"), iters, env)),
                    ("torch", run_torch, (data, os.path.join(tmp, f"p{i}"), iters))]
            for name, fn, fargs in (pair if i % 2 == 0 else pair[::-1]):
                results[name].append(r := fn(*fargs))
                print(f"round {i + 1}: {name:8s} {_line(r)}  (load average {os.getloadavg()[0]:.2f})", flush=True)
        for kind in ("wall", "cpu"):
            t = statistics.median(r[f"{kind}_s"] for r in results["tinyllm"])
            p = statistics.median(r[f"{kind}_s"] for r in results["torch"])
            results[f"ratio_warm_{kind}"] = t / p
            print(f"median {kind}: tinyllm {t:.1f} s, PyTorch {p:.1f} s -> tinyllm / PyTorch = {t / p:.2f}x "
                  "(warm cache)")
            if args.cold:
                results[f"ratio_cold_{kind}"] = results["tinyllm_cold"][f"{kind}_s"] / p
                print(f"  first run (empty Numba cache), {kind}: {results[f'ratio_cold_{kind}']:.2f}x PyTorch's median")
        if args.phases:
            out = subprocess.run([sys.executable, __file__, "--phases-child", "--data", data, "--out",
                                  os.path.join(tmp, "phases"), "--max-iters", str(iters)],
                                 check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            phases = json.loads(out)
            results["phases"] = phases
            print("tinyllm's wall time by phase (one warm run, in-process): " + ", ".join(
                f"{k.rstrip('_')} {v:.1f} s" for k, v in phases.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
