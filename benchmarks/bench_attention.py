"""Benchmark: full, memory-efficient and flash attention — time and peak memory against sequence length.

One attention call as a long-context model makes it: B = 1, 4 heads of 64, causal, float32,
T = S = 512 .. 16384 (--lengths), forward alone and forward + backward (the gradient of a fixed
random weighting of the output), for

    full              F.scaled_dot_product_attention: the (T, T) weights, kept for the backward
    memory_efficient  F.memory_efficient_attention: queries in chunks (--chunk), memory O(chunk · T)
    flash             F.flash_attention: tiles (--block), online softmax, memory O(T)

and the same with a sliding window (--windows, 256 and 1024), where the two tiled kernels skip the
tiles outside the window and full attention still computes all of them (and masks them).

1. Equivalence first: at T = 1024 the three give the same output and gradients (max |difference|).
2. Time: rounds that alternate the kernels (the machine's speed drifts), --repeats rounds; the median
   wall and CPU seconds per call. Long calls run fewer rounds (--budget seconds per kernel and length).
3. Peak memory: tracemalloc's peak (it sees NumPy's buffers) during one forward + backward, above what
   was allocated before it (the inputs); one untimed run per case. Full attention's peak grows as T²:
   lengths past --full-max are not run; its peak there is extrapolated from the largest measured
   (peak / T²), printed as such, and compared with the memory this machine has (MemAvailable).
4. The targets at T = 8192, forward + backward: flash's peak <= 5 % of full's, its time <= 1.3x full's.

    python benchmarks/bench_attention.py               # ~10 minutes on 2 cores; one thread (--threads)
    python benchmarks/bench_attention.py --quick       # seconds: T = 256, 512, a smoke test
    python benchmarks/bench_attention.py --plot-only   # figures from the saved JSON

Writes --json (default docs/figures/07_bench_attention.json) and two figures into --figures
(default docs/figures): 07_bench_time.png and 07_bench_memory.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("full", "memory_efficient", "flash")
H, HS = 4, 64


def set_threads(n: int) -> None:
    """n threads for BLAS (threadpoolctl) and for tinyllm's host kernels (TINYLLM_NUM_THREADS, read per call)."""
    os.environ["TINYLLM_NUM_THREADS"] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def describe_machine(threads: int) -> dict:
    """Cores, CPU model, memory, load, library versions: the properties the numbers depend on."""
    import numba
    import threadpoolctl

    import tinyllm

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    blas = ", ".join(f"{i['internal_api']} {i['version']}" for i in threadpoolctl.threadpool_info()
                     if i["user_api"] == "blas")
    d = dict(cores=len(os.sched_getaffinity(0)), cpu=cpu, numpy=np.__version__, numba=numba.__version__, blas=blas,
             python=platform.python_version(), tinyllm=tinyllm.__version__, threads=threads,
             mem_total=meminfo("MemTotal"), mem_available=meminfo("MemAvailable"), load_before=os.getloadavg()[0])
    gib = {k: d[k] / 2**30 for k in ("mem_total", "mem_available")}
    d["line"] = (f"machine: {d['cores']} cores, {cpu}, {gib['mem_total']:.1f} GiB ({gib['mem_available']:.1f}"
                 f" available); numpy {d['numpy']}, numba {d['numba']}, {blas}; python {d['python']}; {threads} "
                 f"thread(s); load average {d['load_before']:.2f} before the run")
    return d


def meminfo(field: str) -> int:
    """A /proc/meminfo field in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def inputs(T: int, seed: int = 0):
    """q, k, v (1, H, T, HS) and the output weighting, float32 host arrays."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, H, T, HS), dtype=np.float32) for _ in range(4)]


def attention(kernel: str, q, k, v, window, args):
    import tinyllm.functional as F

    if kernel == "full":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, window=window)
    if kernel == "memory_efficient":
        return F.memory_efficient_attention(q, k, v, is_causal=True, window=window, chunk_size=args.chunk)
    return F.flash_attention(q, k, v, is_causal=True, window=window, block_q=args.block, block_k=args.block)


def call(kernel, arrays, window, args, backward: bool):
    """One forward (and backward) on the arrays themselves (no copies); returns (out, grads) as arrays."""
    from tinyllm.tensor import Tensor

    q, k, v = (Tensor(a, requires_grad=backward) for a in arrays[:3])
    y = attention(kernel, q, k, v, window, args)
    if not backward:
        return y.data, None
    y.backward(Tensor(arrays[3]))
    return y.data, [t.grad.data for t in (q, k, v)]


def peak_traced(fn) -> int:
    """Peak bytes allocated (NumPy included, via tracemalloc) while fn runs, above what was allocated before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


# ----------------------------------------------------------------------------- the parts


def equivalence(args) -> dict:
    arrays = inputs(1024, seed=1)
    out = {}
    for window in (None, 256):
        ref = call("full", arrays, window, args, backward=True)
        for kernel in KERNELS[1:]:
            got = call(kernel, arrays, window, args, backward=True)
            diff = max(float(np.abs(a - b).max()) for a, b in zip([got[0]] + got[1], [ref[0]] + ref[1]))
            out[f"{kernel}, window {window}"] = diff
            print(f"  T = 1024, {kernel:<16} window {str(window):>4}: max |difference| from full (out, dq, dk, dv) "
                  f"= {diff:.2e}")
    return out


def cases(args):
    """(kernel, T, window) to run; full attention only up to --full-max."""
    for window in [None] + list(args.windows):
        for T in args.lengths:
            if window is not None and window >= T:
                continue
            for kernel in KERNELS:
                if kernel == "full" and T > args.full_max:
                    continue
                yield kernel, T, window


def measure_memory(args) -> list:
    rows = []
    for kernel, T, window in cases(args):
        arrays = inputs(T)
        peak = peak_traced(lambda: call(kernel, arrays, window, args, backward=True))
        rows.append(dict(kernel=kernel, T=T, window=window, peak=peak))
        print(f"  {kernel:<16} T {T:>6} window {str(window):>5}: peak {peak / 2**20:9.1f} MiB above the inputs")
    return rows


def measure_time(args) -> list:
    """Median wall and CPU seconds of forward and of forward + backward, the kernels alternated per round."""
    groups = {}
    for kernel, T, window in cases(args):
        groups.setdefault((T, window), []).append(kernel)
    rows = []
    for (T, window), kernels in groups.items():
        arrays = inputs(T)
        times = {(k, b): [] for k in kernels for b in (False, True)}
        rounds, spent = 0, 0.0
        while rounds < args.repeats and (rounds < 1 or spent / rounds * (rounds + 1) <= args.budget * len(kernels)):
            t0 = time.perf_counter()
            for kernel in kernels if rounds % 2 == 0 else kernels[::-1]:  # alternate the order
                for backward in (False, True):
                    times[(kernel, backward)].append(timed(lambda: call(kernel, arrays, window, args, backward)))
            spent += time.perf_counter() - t0
            rounds += 1
        for kernel in kernels:
            fw, fb = times[(kernel, False)], times[(kernel, True)]
            row = dict(kernel=kernel, T=T, window=window, rounds=rounds,
                       fwd_wall=statistics.median(w for w, _ in fw), fwd_cpu=statistics.median(c for _, c in fw),
                       fb_wall=statistics.median(w for w, _ in fb), fb_cpu=statistics.median(c for _, c in fb))
            rows.append(row)
            print(f"  {kernel:<16} T {T:>6} window {str(window):>5}: forward {row['fwd_wall']:8.3f} s, forward + "
                  f"backward {row['fb_wall']:8.3f} s wall ({row['fb_cpu']:8.3f} s CPU), {rounds} round(s)")
    return rows


def full_beyond(rows: list, args, machine: dict) -> list:
    """Full attention's peak past --full-max, extrapolated as peak / T² from the largest measured length."""
    full = [r for r in rows if r["kernel"] == "full" and r["window"] is None]
    if not full:
        return []
    last = max(full, key=lambda r: r["T"])
    out = []
    for T in args.lengths:
        if T > args.full_max:
            need = last["peak"] * (T / last["T"]) ** 2
            out.append(dict(T=T, predicted_peak=need, from_T=last["T"], fits=need < machine["mem_available"]))
            print(f"  full             T {T:>6}: not run; its peak would be ~{need / 2**30:.1f} GiB (the T = "
                  f"{last['T']} peak x {(T / last['T']) ** 2:.0f}), against {machine['mem_available'] / 2**30:.1f} "
                  f"GiB available on this machine")
    return out


def targets(mem: list, times: list, T: int = 8192) -> dict:
    def pick(rows, kernel):
        return next((r for r in rows if r["kernel"] == kernel and r["T"] == T and r["window"] is None), None)

    fm, ff, tm, tf = pick(mem, "full"), pick(mem, "flash"), pick(times, "full"), pick(times, "flash")
    if None in (fm, ff, tm, tf):
        return {}
    r = dict(T=T, memory_ratio=ff["peak"] / fm["peak"], time_ratio=tf["fb_wall"] / tm["fb_wall"],
             cpu_ratio=tf["fb_cpu"] / tm["fb_cpu"])
    r["memory_ok"], r["time_ok"] = r["memory_ratio"] <= 0.05, r["time_ratio"] <= 1.3
    print(f"  T = {T}, forward + backward: flash's peak is {100 * r['memory_ratio']:.1f} % of full's (target <= 5 %: "
          f"{'met' if r['memory_ok'] else 'MISSED'}); its time {r['time_ratio']:.2f}x full's wall, "
          f"{r['cpu_ratio']:.2f}x CPU (target <= 1.3x: {'met' if r['time_ok'] else 'MISSED'})")
    return r


# ----------------------------------------------------------------------------- figures

STYLE = {"full": ("tab:red", "o"), "memory_efficient": ("tab:blue", "s"), "flash": ("tab:green", "^")}
DASH = {None: "-", 256: ":", 1024: "--"}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    # CPU seconds: on a shared machine wall time also counts the other jobs' turns on the cores
    for what, key, name, ylabel in (("time", "fb_cpu", "07_bench_time.png", "forward + backward, CPU seconds"),
                                    ("memory", "peak", "07_bench_memory.png", "peak memory above the inputs, MiB")):
        rows = result["time"] if what == "time" else result["memory"]
        fig, ax = plt.subplots(figsize=(10, 5))
        for kernel in KERNELS:
            for window in sorted({r["window"] for r in rows}, key=lambda w: -1 if w is None else w):
                pts = sorted((r["T"], r[key]) for r in rows if r["kernel"] == kernel and r["window"] == window)
                if not pts:
                    continue
                color, marker = STYLE[kernel]
                scale = 2**20 if what == "memory" else 1
                label = kernel + ("" if window is None else f", window {window}")
                ax.plot([p[0] for p in pts], [p[1] / scale for p in pts], DASH.get(window, "-."), color=color,
                        marker=marker, label=label)
        if what == "memory" and result.get("full_beyond"):
            fb = result["full_beyond"]
            ax.plot([r["T"] for r in fb], [r["predicted_peak"] / 2**20 for r in fb], "o", mfc="none",
                    color=STYLE["full"][0], label="full, extrapolated (not run)")
            ax.axhline(result["machine"]["mem_available"] / 2**20, color="grey", lw=1)
            ax.text(min(r["T"] for r in rows), result["machine"]["mem_available"] / 2**20 * 1.15,
                    f"memory available on this machine ({result['machine']['mem_available'] / 2**30:.0f} GiB)",
                    color="grey", fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        if what == "memory":
            ax.set_ylim(top=result["machine"]["mem_available"] / 2**20 * 3)
        ax.set_xlabel("sequence length T (B = 1, 4 heads of 64, causal, float32)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the plot, off the curves
        ax.set_title(f"attention {what} against length ({result['machine']['threads']} thread)")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="T = 256, 512, window 128: a smoke test")
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192, 16384])
    p.add_argument("--windows", type=int, nargs="*", default=[256, 1024])
    p.add_argument("--full-max", type=int, default=8192, help="the longest T full attention is run at")
    p.add_argument("--repeats", type=int, default=3, help="timing rounds (fewer for long calls, see --budget)")
    p.add_argument("--budget", type=float, default=30.0, help="seconds of timing per kernel and length, about")
    p.add_argument("--block", type=int, default=128, help="flash attention's block_q = block_k")
    p.add_argument("--chunk", type=int, default=128, help="memory-efficient attention's chunk_size")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=ROOT / "docs/figures/07_bench_attention.json")
    p.add_argument("--figures", type=Path, default=ROOT / "docs/figures")
    p.add_argument("--plot-only", action="store_true", help="redraw the figures from --json")
    args = p.parse_args(argv)
    if args.plot_only:
        result = json.loads(args.json.read_text())
        plot(result, args.figures)
        return result
    if args.quick:
        args.lengths, args.windows, args.full_max, args.repeats = [256, 512], [128], 512, 2
    set_threads(args.threads)
    machine = describe_machine(args.threads)
    print(machine["line"])
    t0 = time.perf_counter()
    print("1. Equivalence")
    same = equivalence(args)
    print("2. Time")
    times = measure_time(args)
    print("3. Peak memory (tracemalloc)")
    mem = measure_memory(args)
    beyond = full_beyond(mem, args, machine)
    print("4. Targets")
    goal = targets(mem, times)
    machine.update(load_after=os.getloadavg()[0])
    result = dict(machine=machine, args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  equivalence=same, time=times, memory=mem, full_beyond=beyond, targets=goal,
                  seconds=time.perf_counter() - t0)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    plot(result, args.figures)
    print(f"wrote {args.json} and {args.figures}/07_bench_{{time,memory}}.png ({result['seconds']:.0f} s; load "
          f"average {machine['load_after']:.2f} after)")
    return result


if __name__ == "__main__":
    main()
