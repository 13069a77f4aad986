"""Benchmark: training on an idle and on a busy machine, at a fixed thread count and with ThreadTuner.

A busy machine is one more process spinning on one core (``while True: pass``), as a
browser or a second job would. For each condition the recipe shakespeare-char-cpu trains
--iters iterations in this process three ways, in turn:

    default    NumPy's BLAS and tinyllm's kernels at the core count (what a library user gets)
    one        both at one thread (what OPENBLAS_NUM_THREADS=1 gives)
    tuned      tinyllm.runtime.ThreadTuner chooses, by timing the run (what `tinyllm train` does)

and prints the wall time of each, and each against the idle machine's best.

    python benchmarks/bench_threads.py                 # 300 iterations per run, 2 rounds (about 5 minutes)
    python benchmarks/bench_threads.py --iters 60 --rounds 1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time


@contextlib.contextmanager
def hog(on: bool):
    """One process spinning on a core while the block runs (nothing when on is False)."""
    if not on:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        p.kill()
        p.wait()


def run(mode: str, iters: int, tmp: str) -> float:
    """Wall seconds of `iters` training iterations of the recipe with the thread policy `mode`."""
    from threadpoolctl import threadpool_limits

    from tinyllm import runtime
    from tinyllm.functional import kernels
    from tinyllm.train import preset, train

    cfg, fields = preset("shakespeare-char-cpu", max_iters=iters, eval_interval=iters, eval_iters=2,
                         sample_tokens=0, out_dir=tempfile.mkdtemp(dir=tmp))
    cores = len(os.sched_getaffinity(0))
    t0 = time.perf_counter()
    if mode == "tuned":
        with runtime.ThreadTuner() as tuner:
            train(cfg, fields, on_step=tuner.observe)
        print(f"  (tuned: probes at steps {[step for step, _, _ in tuner.history]} chose {tuner.n}; "
              + ", ".join(f"{n} threads {speed:,.0f} tokens/s" for _, n, speed in tuner.history) + ")", flush=True)
    else:
        n = 1 if mode == "one" else cores
        kernels.set_num_threads(n)
        try:
            with threadpool_limits(n, user_api="blas"):
                train(cfg, fields)
        finally:
            kernels.set_num_threads(None)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="training time on an idle and a busy machine, by thread policy")
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    import numpy as np

    from tinyllm import runtime
    from tinyllm.data import load_text

    runtime.keep_host_memory()
    load_text("tinyshakespeare")  # fetched (or found) before any timing
    modes = ("default", "one", "tuned")
    print(f"{len(os.sched_getaffinity(0))} cores, NumPy {np.__version__}; shakespeare-char-cpu, {args.iters} "
          f"iterations per run, median of {args.rounds}; busy = one more process spinning on a core; "
          f"load average {os.getloadavg()[0]:.2f} before (idle means: no spinning process added)", flush=True)
    times: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        run("one", 20, tmp)  # load the kernels once, uncounted
        for busy in (False, True):
            with hog(busy):
                for r in range(args.rounds):
                    for mode in (modes if r % 2 == 0 else modes[::-1]):
                        times.setdefault((busy, mode), []).append(run(mode, args.iters, tmp))
                        print(f"  {'busy' if busy else 'idle'} {mode:8s} {times[(busy, mode)][-1]:6.1f} s "
                              f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    best_idle = min(statistics.median(times[(False, m)]) for m in modes)
    for busy in (False, True):
        for mode in modes:
            t = statistics.median(times[(busy, mode)])
            print(f"{'busy' if busy else 'idle'} {mode:8s} {t:6.1f} s   {t / best_idle:4.2f}x the idle machine's best")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
