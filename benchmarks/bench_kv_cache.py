"""Benchmark: generation with and without the KV cache — speed, time per token, memory.

Without a cache, step s of generation runs the model over all P + s tokens so far
(quadratic total work); with one, it runs the model over the one new token and
attends to the stored keys and values (linear total work). Measured here on a
small GPT with random weights (speed does not depend on what the weights learned):
4 layers, 4 heads, d_model 128, learned positions, context 2304, vocabulary 65,
a 64-token prompt, greedy decoding.

1. Equivalence first: greedy ``model.generate`` with and without the cache gives the same tokens.
2. Decode speed. One greedy generation of max(--lengths) tokens with the cache and one of
   --max-uncached tokens without, each token timed (wall and CPU seconds) in a loop that does
   what generate does (cached: prefill the prompt, then one token per step; uncached: the
   next-token logits of every token so far, each step). The time of N tokens is the sum of
   the first N steps; tokens/s = N / that. Uncached N beyond --max-uncached are NOT run: the
   time of one uncached step is measured at --grid positions up to the last, interpolated,
   and summed; those rows say "ESTIMATED". Part 1 prints generate's own time next to the
   loops' for the same tokens.
3. Time per token vs position: the same steps, against the number of tokens read so far.
4. Memory: the cache's measured bytes (KVCache.nbytes of make_cache(max_len=T)) against
   2 · n_layer · n_kv_head · head_dim · T · 4 bytes (KVCache.bytes_needed), and the peak of
   the memory allocated (tracemalloc, which sees NumPy's buffers) during a cached generation
   to T tokens and during one uncached forward over T tokens (an uncached generation's largest step).

    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_kv_cache.py          # ~3-8 minutes on one core
    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_kv_cache.py --quick  # seconds, a smoke test

Writes --json (default docs/figures/06_bench_kv_cache.json) and three figures into --figures
(default docs/figures): 06_bench_speed.png, 06_bench_per_token.png, 06_bench_memory.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build_model(context_length: int):
    import tinyllm
    from tinyllm.nn import GPT, GPTConfig

    tinyllm.manual_seed(0)
    cfg = GPTConfig(vocab_size=65, context_length=context_length, n_layer=4, n_head=4, d_model=128,
                    pos_encoding="learned", bias=False)
    return GPT(cfg).eval()


def clock():
    return time.perf_counter(), time.process_time()


def cached_steps(model, prompt, n):
    """Wall and CPU seconds of each of n greedy tokens with the cache: [prefill + argmax, decode step, ...]."""
    import tinyllm

    cache = model.make_cache(batch_size=1, max_len=prompt.shape[1] + n)
    wall, cpu = [], []
    idx = prompt
    with tinyllm.no_grad():
        for _ in range(n):
            w0, c0 = clock()
            logits, _ = model(idx, cache=cache)  # the prompt first (prefill), then one token at a time
            idx = tinyllm.to_numpy(logits.data)[:, -1].argmax(-1)[:, None]  # (B, 1)
            w1, c1 = clock()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
    return wall, cpu


def uncached_steps(model, prompt, n):
    """Wall and CPU seconds of each of n greedy tokens without a cache: a forward over every token so far."""
    ids = prompt
    wall, cpu = [], []
    for _ in range(n):
        w0, c0 = clock()
        nxt = model.next_token_logits(ids).argmax(-1)[:, None]  # (B, 1)
        ids = np.concatenate([ids, nxt], axis=1)  # (B, T) -> (B, T+1)
        w1, c1 = clock()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    return wall, cpu


def uncached_step_at(model, ids, t, repeats):
    """Median (wall, CPU) seconds of one uncached step at position t: next-token logits of the first t tokens."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = clock()
        model.next_token_logits(ids[:, :t]).argmax(-1)
        w1, c1 = clock()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    return statistics.median(wall), statistics.median(cpu)


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


def main(argv=None):
    ap = argparse.ArgumentParser(description="KV cache: decode speed with and without it, time per token, memory")
    ap.add_argument("--lengths", default="128,256,512,1024,2048", help="generated tokens (default 128,...,2048)")
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens (default 64)")
    ap.add_argument("--max-uncached", type=int, default=1024,
                    help="tokens of the one uncached generation actually run; longer N are estimated (default 1024)")
    ap.add_argument("--grid", type=int, default=8, help="positions past --max-uncached at which one uncached step "
                    "is timed, for the estimate (default 8)")
    ap.add_argument("--repeats", type=int, default=2, help="timings per grid position, median (default 2)")
    ap.add_argument("--quick", action="store_true", help="lengths 16,32,64, 48 uncached: a smoke test")
    ap.add_argument("--json", default=str(ROOT / "docs/figures/06_bench_kv_cache.json"))
    ap.add_argument("--figures", default=str(ROOT / "docs/figures"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the figures from --json, measure nothing")
    args = ap.parse_args(argv)
    if args.plot_only:
        result = json.loads(Path(args.json).read_text())
        plot(result, Path(args.figures))
        return result

    import tinyllm
    from tinyllm.inference.kv_cache import KVCache

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        print("(threadpoolctl not installed: set OPENBLAS_NUM_THREADS=1 for one BLAS thread)")
    lengths = [16, 32, 64] if args.quick else [int(x) for x in args.lengths.split(",")]
    max_unc = 48 if args.quick else args.max_uncached
    P, top = args.prompt, max(lengths)
    model = build_model(context_length=P + top + (0 if args.quick else 256))
    c = model.config
    prompt = np.random.default_rng(0).integers(0, c.vocab_size, (1, P))
    print(f"model: {c.n_layer} layers, {c.n_head} heads, d_model {c.d_model}, context {c.context_length}, "
          f"{model.num_parameters() / 1e6:.2f}M parameters; prompt {P} tokens; greedy; one thread; "
          f"numpy {np.__version__}; {platform.machine()}")
    t_start = time.perf_counter()

    # 1. the same tokens, and the library's generate against the step-by-step loops timed below
    n_check = min(128, top)
    for use_cache in (True, False):  # warm-up: first calls pay for imports and first-use set-up
        model.generate(prompt, 8, temperature=0, use_cache=use_cache)
    gen = {}
    for use_cache in (True, False):
        w0, c0 = clock()
        gen[use_cache] = model.generate(prompt, n_check, temperature=0, use_cache=use_cache)
        w1, c1 = clock()
        gen[use_cache, "s"] = (w1 - w0, c1 - c0)
    same = bool((gen[True] == gen[False]).all())
    print(f"1. greedy, {n_check} tokens: identical with and without the cache: {same}; model.generate took "
          f"{gen[True, 's'][1]:.2f} s CPU with the cache, {gen[False, 's'][1]:.2f} s without")
    if not same:
        raise SystemExit("the cached and uncached generations differ: fix the cache before timing it")

    # 2 + 3. one cached generation of `top` tokens, one uncached of max_unc, each token timed
    c_wall, c_cpu = cached_steps(model, prompt, top)
    u_wall, u_cpu = uncached_steps(model, prompt, min(max_unc, top))
    print(f"   the loops below, for the same {n_check} tokens: {sum(c_cpu[:n_check]):.2f} s CPU cached, "
          f"{sum(u_cpu[:n_check]):.2f} s uncached (what generate adds: sampling, bookkeeping)")
    ids = np.concatenate([prompt, np.random.default_rng(1).integers(0, c.vocab_size, (1, top))], axis=1)
    grid = [int(t) for t in np.unique(np.linspace(P + len(u_cpu), P + top - 1, args.grid).round())] \
        if top > len(u_cpu) else []
    at_grid = [uncached_step_at(model, ids, t, args.repeats) for t in grid]  # the step that reads t tokens
    positions = list(range(P, P + len(u_cpu))) + grid  # step i reads P + i tokens

    def uncached_total(n, which):  # measured steps, then the grid's interpolation over the rest (estimated)
        steps = u_wall if which == 0 else u_cpu
        if n <= len(steps):
            return sum(steps[:n])
        xs, ys = positions, list(steps) + [g[which] for g in at_grid]
        return sum(steps) + float(np.interp(np.arange(P + len(steps), P + n), xs, ys).sum())

    rows = []
    print("2.      N   cached tok/s   uncached tok/s   speedup (wall)   speedup (CPU)   uncached")
    for n in lengths:
        measured = n <= len(u_cpu)
        row = dict(n=n, uncached_measured=measured,
                   cached_wall_s=sum(c_wall[:n]), cached_cpu_s=sum(c_cpu[:n]),
                   uncached_wall_s=uncached_total(n, 0), uncached_cpu_s=uncached_total(n, 1))
        row.update(cached_tok_s=n / row["cached_wall_s"], uncached_tok_s=n / row["uncached_wall_s"],
                   speedup_wall=row["uncached_wall_s"] / row["cached_wall_s"],
                   speedup_cpu=row["uncached_cpu_s"] / row["cached_cpu_s"])
        rows.append(row)
        print(f"  {n:>6} {row['cached_tok_s']:>13.1f} {row['uncached_tok_s']:>16.2f} {row['speedup_wall']:>15.1f}x "
              f"{row['speedup_cpu']:>14.1f}x   " + ("measured" if measured else "ESTIMATED from the timed steps"))
    print(f"3. CPU ms per token at a number of tokens read, cached: {1e3 * statistics.median(c_cpu[1:65]):.2f} "
          f"(steps 1-64), {1e3 * statistics.median(c_cpu[-64:]):.2f} (last 64); uncached: "
          + ", ".join(f"{P + i}: {1e3 * u_cpu[i]:.1f}" for i in range(0, len(u_cpu), max(1, len(u_cpu) // 5)))
          + "".join(f", {t}: {1e3 * g[1]:.1f}" for t, g in zip(grid[::2], at_grid[::2])))

    # 4. memory
    mem = []
    print("4.      T   cache bytes  2·L·nkv·hs·T·4  peak allocated, cached generation  peak, one uncached forward")
    for n in lengths:
        T = P + n
        cache_bytes = model.make_cache(batch_size=1, max_len=T).nbytes
        formula = KVCache.bytes_needed(c.n_layer, c.kv_heads, c.head_dim, T)
        peak_c = peak_traced(lambda: cached_steps(model, prompt, n))
        peak_u = peak_traced(lambda: model.next_token_logits(ids[:, :T]))
        mem.append(dict(T=T, cache_bytes=int(cache_bytes), formula_bytes=int(formula), peak_cached=int(peak_c),
                        peak_uncached_forward=int(peak_u)))
        print(f"  {T:>6} {cache_bytes:>13,} {formula:>15,} {peak_c:>34,} {peak_u:>27,}")

    result = dict(model=c.to_dict(), prompt=P, lengths=lengths, max_uncached=len(u_cpu), speed=rows,
                  generate_check=dict(n=n_check, cached_s=gen[True, "s"], uncached_s=gen[False, "s"]),
                  per_token=dict(cached_positions=list(range(P, P + top)), cached_wall_s=c_wall, cached_cpu_s=c_cpu,
                                 uncached_positions=positions, uncached_wall_s=list(u_wall) + [g[0] for g in at_grid],
                                 uncached_cpu_s=list(u_cpu) + [g[1] for g in at_grid], uncached_measured=len(u_wall)),
                  memory=mem, same_tokens=same, seconds=time.perf_counter() - t_start,
                  numpy=np.__version__, tinyllm=tinyllm.__version__)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    plot(result, Path(args.figures))
    print(f"wrote {args.json} and {args.figures}/06_bench_*.png ({result['seconds']:.0f} s)")
    return result


def plot(r, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out.mkdir(parents=True, exist_ok=True)
    speed = r["speed"]
    n = [s["n"] for s in speed]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax.loglog(n, [s["cached_tok_s"] for s in speed], "o-", label="with KV cache")
    meas = [s for s in speed if s["uncached_measured"]]
    est = [s for s in speed if not s["uncached_measured"]]
    ax.loglog([s["n"] for s in meas], [s["uncached_tok_s"] for s in meas], "s-", color="C1", label="without (measured)")
    if est:
        link = [meas[-1]] if meas else []
        ax.loglog([s["n"] for s in link + est], [s["uncached_tok_s"] for s in link + est], "--", color="C1")
        ax.loglog([s["n"] for s in est], [s["uncached_tok_s"] for s in est], "s", color="C1", mfc="white",
                  label="without (estimated)")
    ax.set_xlabel("generated tokens N")
    ax.set_ylabel("decode tokens / s")
    ax.set_title("greedy decoding, 4 layers × 128, one thread")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    ax2.semilogx(n, [s["speedup_wall"] for s in speed], "o-", color="C2", label="wall time")
    ax2.semilogx(n, [s["speedup_cpu"] for s in speed], "^:", color="C3", label="CPU time")
    for s in speed:
        ax2.annotate(f"{s['speedup_wall']:.0f}×" + ("" if s["uncached_measured"] else " (est.)"),
                     (s["n"], s["speedup_wall"]), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax2.axhline(20, color="gray", ls=":", label="target 20× at 1024")
    ax2.set_xlabel("generated tokens N")
    ax2.set_ylabel("speedup (uncached time / cached time)")
    ax2.legend()
    ax2.grid(alpha=0.3, which="both")
    for a in (ax, ax2):
        a.set_xticks(n, [str(x) for x in n], minor=False)
        a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fig.savefig(out / "06_bench_speed.png", dpi=120)
    plt.close(fig)

    pt = r["per_token"]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    ax.semilogy(pt["cached_positions"][1:], 1e3 * np.asarray(pt["cached_cpu_s"][1:]), ".", ms=2, alpha=0.5,
                label="with KV cache (decode steps)")
    k = pt["uncached_measured"]
    ax.semilogy(pt["uncached_positions"][:k], 1e3 * np.asarray(pt["uncached_cpu_s"][:k]), ".", ms=2, color="C1",
                label="without")
    if len(pt["uncached_positions"]) > k:
        ax.semilogy(pt["uncached_positions"][k:], 1e3 * np.asarray(pt["uncached_cpu_s"][k:]), "s", color="C1",
                    mfc="white", label="without (single steps, for the estimate)")
    ax.set_xlabel("tokens read so far (prompt + generated)")
    ax.set_ylabel("CPU ms per token")
    ax.set_title("time per generated token vs position")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.savefig(out / "06_bench_per_token.png", dpi=120)
    plt.close(fig)

    m = r["memory"]
    T = [x["T"] for x in m]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    mib = 1 / 2**20
    ax.plot(T, [x["formula_bytes"] * mib for x in m], "k-", lw=3, alpha=0.3, label="2·L·nkv·hs·T·4 bytes")
    ax.plot(T, [x["cache_bytes"] * mib for x in m], "o", color="C0", label="KV cache, measured nbytes")
    ax.plot(T, [x["peak_cached"] * mib for x in m], "^-", color="C2", label="peak allocated, cached generation")
    ax.plot(T, [x["peak_uncached_forward"] * mib for x in m], "s-", color="C1",
            label="peak allocated, one uncached forward")
    ax.set_xlabel("sequence length T (prompt + generated)")
    ax.set_ylabel("MiB")
    ax.set_title("memory vs sequence length")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(out / "06_bench_memory.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
