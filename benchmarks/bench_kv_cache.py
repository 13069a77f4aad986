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

Parts 1-4 decode through the modules (``model(ids, cache=cache)``, ``fast_decode=False``).
Parts 5-7 measure the raw-array Decoder (tinyllm/inference/decode.py), what ``model.generate``
uses by default:

5. Speedup at --decode-tokens (1024) generated tokens on several configs (context 1100):
   ``model.generate`` without the cache (run once), with the cache through the modules and with
   the Decoder (these two alternated, --decode-repeats times each, medians); all three must give
   the same tokens.
6. The curve over N = 128 .. 4096 on the 2-layer, d_model 64 model (context 4160): the Decoder's
   and the modules' greedy loops timed per token (two runs each, alternated; the median total),
   against the uncached total, which is integrated from single uncached steps timed at
   --decode-grid positions (a 4096-token uncached generation would take the better part of an hour).
7. GPT-2 small's shape (12 layers, d_model 768, 12 heads, vocabulary 50257, random weights):
   time per decode step (after a 64-token prompt; Decoder and modules alternated) against the
   time to read its weights once at the memory bandwidth measured here (the fastest of several
   streaming reads of as many bytes: a Numba SIMD sum and np.sum), with one thread and with every core.

    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_kv_cache.py          # ~6-12 minutes
    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_kv_cache.py --decode-only  # parts 5-7
    OPENBLAS_NUM_THREADS=1 TINYLLM_NUM_THREADS=1 python benchmarks/bench_kv_cache.py --quick  # seconds, a smoke test

Writes --json (default docs/figures/06_bench_kv_cache.json) and four figures into --figures
(default docs/figures): 06_bench_speed.png, 06_bench_per_token.png, 06_bench_memory.png (parts 2-4)
and 06_bench_decode.png (parts 5-6).
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

# ----------------------------------------------------------------------------- parts 5-7: the raw-array Decoder

# name: GPTConfig keywords; every one at context 1100 (a 64-token prompt + 1024 new tokens fit)
CONFIGS = {
    "2L x 64, 4 heads, learned": dict(n_layer=2, n_head=4, d_model=64),
    "4L x 128, 4 heads, learned": dict(n_layer=4, n_head=4, d_model=128, bias=False),
    "4L x 128, GQA 8q/2kv, rope, rmsnorm, silu": dict(n_layer=4, n_head=8, n_kv_head=2, d_model=128,
                                                      pos_encoding="rope", norm="rmsnorm", activation="silu",
                                                      bias=False),
}
GPT2_SMALL = dict(vocab_size=50257, context_length=1024, n_layer=12, n_head=12, d_model=768)


def random_gpt(**kw):
    import tinyllm
    from tinyllm.nn import GPT, GPTConfig

    tinyllm.manual_seed(0)
    return GPT(GPTConfig(**kw)).eval()


def timed(fn):
    """(fn(), wall seconds, CPU seconds)."""
    w0, c0 = clock()
    out = fn()
    w1, c1 = clock()
    return out, w1 - w0, c1 - c0


def three_ways(model, prompt, n, repeats):
    """Part 5: greedy generate of n tokens without the cache (once), through the modules' cache and with the
    Decoder (alternated, `repeats` each): medians of wall and CPU seconds, and whether the tokens agree."""
    plain, u_wall, u_cpu = timed(lambda: model.generate(prompt, n, temperature=0, use_cache=False))
    runs, same = {"decoder": [], "modules": []}, True
    for _ in range(repeats):
        for name, fast in (("decoder", True), ("modules", False)):
            out, w, c = timed(lambda: model.generate(prompt, n, temperature=0, fast_decode=fast))
            same = same and bool((out == plain).all())
            runs[name].append((w, c))
    row = dict(n=n, uncached_wall_s=u_wall, uncached_cpu_s=u_cpu, same_tokens=same)
    for name, r in runs.items():
        row[f"{name}_wall_s"] = statistics.median(w for w, _ in r)
        row[f"{name}_cpu_s"] = statistics.median(c for _, c in r)
        row[f"{name}_speedup_wall"] = u_wall / row[f"{name}_wall_s"]
        row[f"{name}_speedup_cpu"] = u_cpu / row[f"{name}_cpu_s"]
    return row


def decoder_steps(model, prompt, n):
    """Wall and CPU seconds of each of n greedy tokens with the Decoder: [prefill + argmax, step, ...]."""
    dec = model.make_decoder(batch_size=1, max_len=prompt.shape[1] + n)
    wall, cpu, nxt = [], [], None
    for _ in range(n):
        w0, c0 = clock()
        logits = dec.prefill(prompt) if nxt is None else dec.step(nxt)
        nxt = logits.argmax(-1)  # greedy: (B, V) -> (B,)
        w1, c1 = clock()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    return wall, cpu


def curve(model, prompt, lengths, grid, repeats):
    """Part 6: for each N in lengths, the seconds of N greedy tokens: Decoder, modules, uncached (integrated)."""
    P, top = prompt.shape[1], max(lengths)
    runs = {"decoder": [], "modules": []}
    for _ in range(2):  # alternated, so both see the same machine
        runs["decoder"].append(decoder_steps(model, prompt, top))
        runs["modules"].append(cached_steps(model, prompt, top))
    ids = np.concatenate([prompt, np.random.default_rng(1).integers(0, model.config.vocab_size, (1, top))], axis=1)
    positions = [int(t) for t in np.unique(np.geomspace(P, P + top - 1, grid).round())]  # tokens read by a step
    steps = [uncached_step_at(model, ids, t, repeats) for t in positions]  # (wall, CPU) median each
    rows = []
    for n in lengths:
        reads = np.arange(P, P + n)  # step i reads P + i tokens
        row = dict(n=n)
        for k, which in ((0, "wall"), (1, "cpu")):
            row[f"uncached_{which}_s"] = float(np.interp(reads, positions, [st[k] for st in steps]).sum())
            for name, r in runs.items():
                row[f"{name}_{which}_s"] = statistics.median(sum(run[k][:n]) for run in r)
                row[f"{name}_speedup_{which}"] = row[f"uncached_{which}_s"] / row[f"{name}_{which}_s"]
        rows.append(row)
    return dict(rows=rows, uncached_positions=positions, uncached_step_wall_s=[st[0] for st in steps],
                uncached_step_cpu_s=[st[1] for st in steps])


def _stream_kernel():
    import numba

    # subtle: no cache=True: a script's kernel cached under one module name (imported) fails to load under
    # another (runpy's, in the tests)
    @numba.njit(fastmath=True, nogil=True)
    def stream_sum(a):  # every byte of a read once; fastmath lets LLVM vectorise the sum
        s = np.float32(0.0)
        for i in range(a.size):
            s += a[i]
        return s

    return stream_sum


def read_bandwidth(nbytes: int, threads: int, repeats: int = 7) -> dict:
    """Bytes/s of the fastest of `repeats` streaming reads of an nbytes float32 array, split over threads."""
    from concurrent.futures import ThreadPoolExecutor

    stream_sum = _stream_kernel()
    a = np.ones(nbytes // 4, np.float32)
    parts = np.array_split(a, threads)
    stream_sum(parts[0][:16])  # compile
    best = {"numba_sum": 0.0, "np_sum": 0.0}
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            for name, fn in (("numba_sum", stream_sum), ("np_sum", np.sum)):
                w0 = time.perf_counter()
                list(pool.map(fn, parts))  # NumPy's sum and the Numba kernel both release the GIL
                best[name] = max(best[name], a.nbytes / (time.perf_counter() - w0))
    return best


def step_times(model, prompt, n, rounds):
    """Part 7: median wall seconds of a decode step after the prompt, Decoder and modules alternated per round."""
    P = prompt.shape[1]
    dec = model.make_decoder(batch_size=1, max_len=P + n)
    dec.prefill(prompt)
    cache = model.make_cache(batch_size=1, max_len=P + n)
    model.next_token_logits(prompt, cache=cache)
    tok = np.array([7])
    times = {"decoder": [], "modules": []}
    for _ in range(rounds):
        dec.cache.crop(P)
        for _ in range(n):
            times["decoder"].append(timed(lambda: dec.step(tok))[1])
        cache.crop(P)
        for _ in range(max(2, n // 4)):  # the module path is the slow one: fewer steps
            times["modules"].append(timed(lambda: model.next_token_logits(tok[:, None], cache=cache))[1])
    return {k: statistics.median(v) for k, v in times.items()}


def set_threads(n: int) -> None:
    """n threads for BLAS (threadpoolctl) and for tinyllm's host kernels (TINYLLM_NUM_THREADS, read per call)."""
    os.environ["TINYLLM_NUM_THREADS"] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def decode_parts(args, quick: bool) -> dict:
    """Parts 5-7 (module docstring); prints as it goes and returns everything measured."""
    out = {}
    n, P = (64, 16) if quick else (args.decode_tokens, args.prompt)
    ctx = P + n + (8 if quick else 12)
    print(f"5. greedy generate of {n} tokens after a {P}-token prompt, context {ctx}: no cache / cache through the "
          f"modules / Decoder ({args.decode_repeats} alternated runs each, medians; no cache run once)")
    print("   config                                       no cache s   modules s  Decoder s   speedup modules  "
          "speedup Decoder (CPU)   same tokens")
    out["configs"] = {}
    for name, kw in CONFIGS.items():
        model = random_gpt(vocab_size=65, context_length=ctx, **kw)
        prompt = np.random.default_rng(0).integers(0, 65, (1, P))
        model.generate(prompt, 4, temperature=0)  # warm-up (Numba's first calls)
        row = three_ways(model, prompt, n, args.decode_repeats)
        row["parameters"] = model.num_parameters()
        out["configs"][name] = row
        print(f"   {name:<44} {row['uncached_cpu_s']:>10.2f} {row['modules_cpu_s']:>11.3f} "
              f"{row['decoder_cpu_s']:>10.3f} {row['modules_speedup_cpu']:>16.1f}x "
              f"{row['decoder_speedup_cpu']:>15.1f}x   {row['same_tokens']}")
        if not row["same_tokens"]:
            raise SystemExit(f"{name}: the three generations differ; fix the Decoder before timing it")

    lengths = [16, 32, 64] if quick else [int(x) for x in args.curve.split(",")]
    model = random_gpt(vocab_size=65, context_length=P + max(lengths), **CONFIGS["2L x 64, 4 heads, learned"])
    prompt = np.random.default_rng(0).integers(0, 65, (1, P))
    out["curve"] = curve(model, prompt, lengths, 6 if quick else args.decode_grid, 1 if quick else 3)
    print(f"6. 2 layers x d_model 64, context {model.config.context_length}: CPU seconds for N greedy tokens "
          f"(uncached: integrated from single steps timed at {len(out['curve']['uncached_positions'])} positions)")
    print("        N   uncached s   modules s   Decoder s   speedup modules   speedup Decoder")
    for r in out["curve"]["rows"]:
        print(f"   {r['n']:>6} {r['uncached_cpu_s']:>12.2f} {r['modules_cpu_s']:>11.3f} {r['decoder_cpu_s']:>11.3f} "
              f"{r['modules_speedup_cpu']:>16.1f}x {r['decoder_speedup_cpu']:>16.1f}x")

    model = random_gpt(**{**GPT2_SMALL, **(dict(n_layer=2) if quick else {})})
    c = model.config
    prompt = np.random.default_rng(0).integers(0, c.vocab_size, (1, 64))
    # bytes one decode step reads: every weight once (wte as the tied LM head), not wpe (one row of it)
    weight_bytes = sum(p.data.nbytes for name, p in model.named_parameters() if "wpe" not in name)
    cache_bytes = 2 * c.n_layer * c.kv_heads * c.head_dim * 4 * (64 + 16)  # K, V read at ~80 positions
    print(f"7. GPT-2 small's shape ({c.n_layer} layers, d_model {c.d_model}, {c.n_head} heads, vocabulary "
          f"{c.vocab_size}, random weights): a decode step reads {weight_bytes / 1e6:.1f} MB of weights "
          f"(+ {cache_bytes / 1e6:.1f} MB of cached K, V at ~80 positions)")
    out["gpt2"] = dict(config=c.to_dict(), weight_bytes=weight_bytes, cache_bytes=cache_bytes, threads={})
    cores = len(os.sched_getaffinity(0))
    for threads in sorted({1, cores}):
        set_threads(threads)
        model.generate(prompt[:, :8], 2, temperature=0)  # warm-up
        bw = read_bandwidth(weight_bytes, threads, 3 if quick else 7)
        t = step_times(model, prompt, 8 if quick else 32, 2 if quick else 3)
        best = max(bw.values())
        stream_s = weight_bytes / best
        row = dict(bandwidth=bw, bandwidth_best=best, stream_s=stream_s, **{f"{k}_step_s": v for k, v in t.items()},
                   ratio=t["decoder"] / stream_s, ratio_modules=t["modules"] / stream_s)
        out["gpt2"]["threads"][threads] = row
        print(f"   {threads} thread(s): read bandwidth {best / 1e9:.1f} GB/s (Numba sum {bw['numba_sum'] / 1e9:.1f}, "
              f"np.sum {bw['np_sum'] / 1e9:.1f}) -> weights streamed once in {1e3 * stream_s:.1f} ms; "
              f"decode step {1e3 * t['decoder']:.1f} ms with the Decoder (= {row['ratio']:.2f}x that), "
              f"{1e3 * t['modules']:.1f} ms through the modules ({row['ratio_modules']:.2f}x)")
    set_threads(1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="KV cache: decode speed with and without it, time per token, memory")
    ap.add_argument("--lengths", default="128,256,512,1024,2048", help="generated tokens (default 128,...,2048)")
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens (default 64)")
    ap.add_argument("--max-uncached", type=int, default=1024,
                    help="tokens of the one uncached generation actually run; longer N are estimated (default 1024)")
    ap.add_argument("--grid", type=int, default=8, help="positions past --max-uncached at which one uncached step "
                    "is timed, for the estimate (default 8)")
    ap.add_argument("--repeats", type=int, default=2, help="timings per grid position, median (default 2)")
    ap.add_argument("--decode-tokens", type=int, default=1024, help="part 5: tokens generated (default 1024)")
    ap.add_argument("--decode-repeats", type=int, default=3, help="part 5: runs of each cached way (default 3)")
    ap.add_argument("--curve", default="128,256,512,1024,2048,4096", help="part 6: generated tokens")
    ap.add_argument("--decode-grid", type=int, default=12, help="part 6: positions of the timed uncached steps")
    ap.add_argument("--decode-only", action="store_true", help="parts 5-7 only (the Decoder)")
    ap.add_argument("--quick", action="store_true", help="lengths 16,32,64, 48 uncached: a smoke test")
    ap.add_argument("--json", default=str(ROOT / "docs/figures/06_bench_kv_cache.json"))
    ap.add_argument("--figures", default=str(ROOT / "docs/figures"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the figures from --json, measure nothing")
    args = ap.parse_args(argv)
    decode_json = Path(args.json).with_name("06_bench_decode.json")  # parts 5-7, beside parts 1-4's
    if args.plot_only:
        result = json.loads(Path(args.json).read_text())
        plot(result, Path(args.figures))
        if decode_json.exists():
            plot_decode(json.loads(decode_json.read_text()), Path(args.figures))
        return result

    import tinyllm
    from tinyllm.inference.kv_cache import KVCache

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        print("(threadpoolctl not installed: set OPENBLAS_NUM_THREADS=1 for one BLAS thread)")
    machine = describe_machine()
    print(machine["line"])
    if args.decode_only:
        return run_decode(args, machine, decode_json)
    lengths = [16, 32, 64] if args.quick else [int(x) for x in args.lengths.split(",")]
    max_unc = 48 if args.quick else args.max_uncached
    P, top = args.prompt, max(lengths)
    model = build_model(context_length=P + top + (0 if args.quick else 256))
    c = model.config
    prompt = np.random.default_rng(0).integers(0, c.vocab_size, (1, P))
    print(f"parts 1-4, through the modules: {c.n_layer} layers, {c.n_head} heads, d_model {c.d_model}, context "
          f"{c.context_length}, {model.num_parameters() / 1e6:.2f}M parameters; prompt {P} tokens; greedy; one thread")
    t_start = time.perf_counter()

    # 1. the same tokens, and the library's generate against the step-by-step loops timed below
    n_check = min(128, top)
    for use_cache in (True, False):  # warm-up: first calls pay for imports and first-use set-up
        model.generate(prompt, 8, temperature=0, use_cache=use_cache)
    gen = {}
    for use_cache in (True, False):
        w0, c0 = clock()
        gen[use_cache] = model.generate(prompt, n_check, temperature=0, use_cache=use_cache, fast_decode=False)
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
    result["decode"] = run_decode(args, machine, decode_json)
    return result


def describe_machine() -> dict:
    """Cores, CPU model, load, library versions: the properties the timings depend on."""
    import tinyllm

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    try:
        import threadpoolctl

        blas = ", ".join(f"{i['internal_api']} {i['version']}" for i in threadpoolctl.threadpool_info()
                         if i["user_api"] == "blas")
    except ImportError:
        blas = "?"
    import numba

    d = dict(cores=len(os.sched_getaffinity(0)), cpu=model, machine=platform.machine(), numpy=np.__version__,
             numba=numba.__version__, blas=blas, python=platform.python_version(), tinyllm=tinyllm.__version__,
             load_before=os.getloadavg()[0])
    d["line"] = (f"machine: {d['cores']} cores, {d['cpu']} ({d['machine']}); numpy {d['numpy']}, numba {d['numba']}, "
                 f"{blas}; python {d['python']}; load average {d['load_before']:.2f} before the run")
    return d


def run_decode(args, machine: dict, decode_json: Path) -> dict:
    """Parts 5-7, written to decode_json and drawn into 06_bench_decode.png."""
    t0 = time.perf_counter()
    r = decode_parts(args, args.quick)
    r.update(machine=machine, seconds=time.perf_counter() - t0, load_after=os.getloadavg()[0])
    decode_json.parent.mkdir(parents=True, exist_ok=True)
    decode_json.write_text(json.dumps(r, indent=1) + "\n")
    plot_decode(r, Path(args.figures))
    print(f"wrote {decode_json} and {args.figures}/06_bench_decode.png ({r['seconds']:.0f} s; load average "
          f"{r['load_after']:.2f} after)")
    return r


def plot_decode(r, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = r["curve"]["rows"]
    n = [x["n"] for x in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax.loglog(n, [x["uncached_cpu_s"] / x["n"] * 1e3 for x in rows], "s--", color="C1", label="no cache (integrated)")
    ax.loglog(n, [x["modules_cpu_s"] / x["n"] * 1e3 for x in rows], "o-", color="C0", label="cache, through modules")
    ax.loglog(n, [x["decoder_cpu_s"] / x["n"] * 1e3 for x in rows], "^-", color="C2", label="cache, Decoder")
    ax.set_xlabel("generated tokens N")
    ax.set_ylabel("CPU ms per generated token (mean over N)")
    ax.set_title("2 layers × d_model 64, one thread")
    ax2.semilogx(n, [x["modules_speedup_cpu"] for x in rows], "o-", color="C0", label="cache, through modules")
    ax2.semilogx(n, [x["decoder_speedup_cpu"] for x in rows], "^-", color="C2", label="cache, Decoder")
    for x in rows:
        ax2.annotate(f"{x['decoder_speedup_cpu']:.0f}×", (x["n"], x["decoder_speedup_cpu"]),
                     textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax2.axhline(20, color="gray", ls=":", label="target 20× at 1024")
    ax2.set_xlabel("generated tokens N")
    ax2.set_ylabel("speedup over no cache (CPU time)")
    for a in (ax, ax2):
        a.set_xticks(n, [str(x) for x in n], minor=False)
        a.minorticks_off()
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
    fig.savefig(out / "06_bench_decode.png", dpi=120)
    plt.close(fig)


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
