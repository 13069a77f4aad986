"""Which settings change the numbers of a training run, and which only its time.

A floating-point sum depends on its order: (a + b) + c and a + (b + c) can differ in the
last bit, and a training run feeds every such bit into the next step, so two runs that
differ anywhere in how they add drift apart, slowly, in the third or fourth decimal of
the loss after a few hundred steps. This script trains the README's main job (the preset
`stories-char`, what `tinyllm train` runs) several times, each in a fresh process with one
setting changed, and prints the val loss at every evaluation and a digest of the final
weights, so "the same numbers" can be checked bit for bit:

    same            the reference run again (same process settings): is a run deterministic?
    blas1           NumPy's BLAS on one thread           (OPENBLAS_NUM_THREADS=1)
    kernels1        tinyllm's host kernels on one thread (TINYLLM_NUM_THREADS=1)
    blas-haswell    OpenBLAS's AVX2 kernels, as on a CPU without AVX-512 (OPENBLAS_CORETYPE=Haswell)
    numba-haswell   Numba compiling for an AVX2 CPU      (NUMBA_CPU_NAME=haswell, a fresh cache)

The reference is NumPy's and tinyllm's default thread counts (the cores this process may
use) on this machine's own CPU. OpenBLAS picks its kernels for the CPU it finds at run time,
and Numba compiles for it, so the last two stand in for another machine of the same kind
whose CPU lacks AVX-512.

    python benchmarks/reproducibility.py                            # 800 steps, six runs: about 8 minutes on 2 cores
    python benchmarks/reproducibility.py --max-iters 200 --only same,blas1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "reference": {},
    "same": {},
    "blas1": {"OPENBLAS_NUM_THREADS": "1"},
    "kernels1": {"TINYLLM_NUM_THREADS": "1"},
    "blas-haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "numba-haswell": {"NUMBA_CPU_NAME": "haswell"},
}

# the run itself, in a fresh process so that the environment applies before NumPy and Numba load
CHILD = r"""
import hashlib, json, sys, tempfile
import numpy as np
from tinyllm.train import preset, read_metrics, train
with tempfile.TemporaryDirectory() as out:
    cfg, fields = preset("stories-char", out_dir=out, max_iters=int(sys.argv[1]), sample_tokens=0)
    result = train(cfg, fields)
    evals = [(r["step"], r["val_loss"]) for r in read_metrics(f"{out}/metrics.jsonl") if r.get("eval")]
digest = hashlib.sha256()
for name, p in sorted(result.model.state_dict().items()):
    digest.update(name.encode()); digest.update(np.ascontiguousarray(p.numpy()).tobytes())
try:
    from threadpoolctl import threadpool_info
    blas = [(i["internal_api"], i["version"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]
except ImportError:
    blas = []
print(json.dumps({"evals": evals, "digest": digest.hexdigest()[:16], "blas": blas}))
"""


def run(name: str, max_iters: int) -> dict:
    env = dict(os.environ, **SETTINGS[name])
    with tempfile.TemporaryDirectory() as cache:
        if name == "numba-haswell":  # code compiled for another CPU: never mixed into the usual cache
            env["NUMBA_CACHE_DIR"] = cache
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CHILD, str(max_iters)], env=env, cwd=ROOT, capture_output=True,
                           text=True)
    if p.returncode:
        raise SystemExit(f"the run {name!r} failed:\n{p.stderr[-3000:]}")
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - t0
    return result


def machine() -> str:
    import numba
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return (f"{os.cpu_count()} cores, {cpu}{', AVX-512' if 'avx512f' in flags else ''}; Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}, Numba {numba.__version__}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-iters", type=int, default=800)
    p.add_argument("--only", default=",".join(SETTINGS), help="comma-separated settings to run (reference always runs)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    names = ["reference"] + [n for n in args.only.split(",") if n and n != "reference"]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {sorted(SETTINGS)}")

    print(f"machine: {machine()}")
    print(f"the main job (preset stories-char), {args.max_iters} steps, each run in a fresh process")
    results = {}
    for name in names:
        results[name] = r = run(name, args.max_iters)
        ref = results["reference"]
        losses = "  ".join(f"{s}: {v:.6f}" for s, v in r["evals"])
        same = "bit-identical weights" if r["digest"] == ref["digest"] else "weights differ"
        if name == "reference":
            same = f"BLAS {r['blas']}"
        print(f"  {name:<14} {r['seconds']:5.0f} s  val loss  {losses}   [{same}]")
    last = {n: r["evals"][-1][1] for n, r in results.items()}
    spread = max(last.values()) - min(last.values())
    print(f"val loss at step {args.max_iters}: {min(last.values()):.4f} to {max(last.values()):.4f} "
          f"(spread {spread:.4f}) over {len(last)} runs")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "max_iters": args.max_iters, "runs": results},
                                        indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
