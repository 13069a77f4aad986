"""Lab 6: the KV cache — what it holds, prefill vs decode, the speedup, its memory, and a prefix cache across requests.

1. What the cache holds: a trained character model reads a prompt (prefill); the cache
   then holds one key and one value vector per layer, KV head and position. Decoding
   from it gives the logits a full forward over the whole text gives (max |difference|),
   and greedy text with and without the cache is the same. Then one generation call by
   call: which K/V rows each call computes and which it reads back from the cache, and
   the cache's memory (figure 06_kv_steps.png).
2. Prefill vs decode, and the speedup: on a 4-layer, 128-wide model with a longer context
   (random weights: speed does not depend on what they learned), time each generated
   token with and without the cache; tokens/s and speedup for a few lengths.
3. Memory: the cache's bytes against 2 · n_layer · n_kv_head · head_dim · T · bytes, for this
   model and for GPT-2-small-sized caches with 12, 4 and 1 KV heads (multi-head, grouped-query,
   multi-query attention), each allocated and measured.
4. A prefix cache (tinyllm.inference.prefix_cache) over requests that share prompt prefixes:
   which positions each request reused, the hit rate over time, hit rate against the cache's
   byte budget, the logits against a full forward, and the time saved (also with a long shared prefix).

    python examples/06_kv_cache.py            # the chapter's numbers and figures
                                              # (docs/figures/06_*.png, 06_kv_cache.json)
    python examples/06_kv_cache.py --quick    # a tiny model and lengths, for CI (figures go to --out)
    python examples/06_kv_cache.py --ckpt DIR # parts 1 and 4 on a model of yours (a `tinyllm train` run folder)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.inference.kv_cache import KVCache  # noqa: E402
from tinyllm.inference.prefix_cache import PrefixCache  # noqa: E402
from tinyllm.labs import lab_model  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.viz import kv_viz  # noqa: E402

# Part 4's requests: a few shared openings (a speaker and the start of a line), each continued several ways.
OPENINGS = ["KING RICHARD III:\nNow is the winter of our ", "JULIET:\nO Romeo, Romeo! wherefore art thou ",
            "HAMLET:\nTo be, or not to be, that is the "]
ENDINGS = ["discontent", "Romeo?", "question:", "sorrow", "love.", "summer", "night,", "lord?", "heart!", "grave."]


def host(t):
    return tinyllm.to_numpy(t.data)


# ---------------------------------------------------------------------------- 1. what the cache holds


def what_the_cache_holds(model, tok, prompt: str, n_new: int) -> dict:
    c = model.config
    ids = np.asarray([tok.encode(prompt)], dtype=np.int64)  # (1, P)
    P = ids.shape[1]
    cache = model.make_cache(batch_size=1, max_len=P + n_new)
    with tinyllm.no_grad():
        logits, _ = model(ids, cache=cache)  # prefill: P positions in one call
    print(f"  after the prefill of {P} characters: {cache!r}")
    print(f"  cache.keys, cache.values: {tuple(cache.keys.shape)} = (n_layer, B, n_kv_head, max_len, head_dim); "
          f"length {cache.length}")
    seq, worst = ids, 0.0
    for _ in range(n_new):  # greedy decode: one token per call, its K/V appended
        nxt = host(logits)[:, -1].argmax(-1)[:, None]  # (1, 1)
        seq = np.concatenate([seq, nxt], axis=1)
        with tinyllm.no_grad():
            logits, _ = model(nxt, cache=cache)
            full, _ = model(seq)  # the whole text again, no cache
        worst = max(worst, float(np.abs(host(logits)[:, -1] - host(full)[:, -1]).max()))
    print(f"  {n_new} decode steps: max |cached logits - full forward| = {worst:.2e}; cache length {cache.length}")
    a = model.generate(ids, n_new, temperature=0, use_cache=True)
    b = model.generate(ids, n_new, temperature=0, use_cache=False)
    same = bool((a == b).all()) and bool((a == seq).all())
    print(f"  greedy generate, cache on and off, identical: {same}: {tok.decode(a[0].tolist())!r}")
    return dict(prompt_tokens=P, new_tokens=n_new, max_abs_diff=worst, same_text=same, text=tok.decode(a[0].tolist()),
                cache_shape=list(cache.keys.shape),
                cache_bytes=cache.nbytes, formula_bytes=KVCache.bytes_needed(c.n_layer, c.kv_heads, c.head_dim,
                                                                            P + n_new))


def one_generation_step_by_step(model, tok, prompt: str, n_new: int) -> dict:
    """One greedy generation with the cache, call by call: which K/V rows each call computed and wrote, which it
    read back from the cache (rows that were there before the call and are bit-identical after it), and the
    cache's bytes, allocated and in use. Without a cache, step s computes the K/V of all P + s positions again."""
    c = model.config
    ids = np.asarray([tok.encode(prompt)], dtype=np.int64)  # (1, P)
    P = ids.shape[1]
    cache = model.make_cache(batch_size=1, max_len=P + n_new)
    per_position = KVCache.bytes_needed(c.n_layer, c.kv_heads, c.head_dim, 1)
    state = np.zeros((n_new + 1, cache.max_len), dtype=np.int8)  # per call and position: 0 none, 1 read, 2 computed
    used, x = [], ids
    for step in range(n_new + 1):  # call 0: the prefill of the prompt; then one decode step per token
        before, keys_before, values_before = cache.length, tinyllm.to_numpy(cache.keys).copy(), \
            tinyllm.to_numpy(cache.values).copy()
        with tinyllm.no_grad():
            logits, _ = model(x, cache=cache)
        keys, values = tinyllm.to_numpy(cache.keys), tinyllm.to_numpy(cache.values)
        same = ((keys == keys_before) & (values == values_before)).all(axis=(0, 1, 2, 4))  # (max_len,)
        state[step, :before] = np.where(same[:before], 1, 2)  # the cached rows: read back as they were
        state[step, before:cache.length] = 2                  # the rows this call computed and wrote
        used.append(cache.length * per_position)
        x = host(logits)[:, -1].argmax(-1)[:, None]  # (1, 1): the next token, the next call's whole input
    computed = (state == 2).sum(1)
    read = (state == 1).sum(1)
    print(f"  one generation, call by call ({P}-character prompt, {n_new} new): the prefill computed {computed[0]} "
          f"K/V rows; each decode step computed {sorted(set(computed[1:].tolist()))} and read back "
          f"{read[1]}..{read[-1]} cached rows, bit-identical; cache allocated {cache.nbytes:,} bytes throughout, "
          f"in use {used[0]:,} after the prefill to {used[-1]:,} ({per_position:,} per position)")
    print(f"  without the cache the same {n_new + 1} calls compute {P}..{P + n_new} K/V rows each: "
          f"{sum(P + s for s in range(n_new + 1)):,} in all, against {int(computed.sum()):,} with it")
    return dict(prompt_tokens=P, new_tokens=n_new, state=state.tolist(), computed=computed.tolist(),
                read=read.tolist(), bytes_in_use=used, bytes_allocated=cache.nbytes, bytes_per_position=per_position,
                uncached_computed=[P + s for s in range(n_new + 1)])


def plot_steps(r: dict, path: Path) -> None:
    """Left: with the cache, a row per call (prefill, then decode steps), a cell per position: read from the
    cache or computed. Middle: the same calls without a cache. Right: the cache's bytes after each call."""
    from matplotlib.colors import ListedColormap

    state = np.asarray(r["state"])
    n, L = state.shape
    P = r["prompt_tokens"]
    uncached = np.zeros_like(state)
    for s in range(n):
        uncached[s, :P + s] = 2
    cmap = ListedColormap(["white", kv_viz.HIT, kv_viz.MISS])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.8), gridspec_kw=dict(width_ratios=[1, 1, 0.8]))
    for ax, m, title in ((axes[0], state, f"with the cache: {int((state == 2).sum())} K/V rows computed"),
                         (axes[1], uncached, f"without: {int((uncached == 2).sum())} K/V rows computed")):
        ax.imshow(m, cmap=cmap, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        ax.set_xlabel("position", fontsize=10)
        ax.set_title(title, fontsize=11)
        ax.set_yticks([0, *range(4, n, 4)], ["prefill", *(f"step {s}" for s in range(4, n, 4))], fontsize=9)
        ax.tick_params(labelsize=9)
    axes[0].legend(handles=[plt.Rectangle((0, 0), 1, 1, color=kv_viz.HIT, label="read from the cache"),
                            plt.Rectangle((0, 0), 1, 1, color=kv_viz.MISS, label="computed this call")],
                   fontsize=9, loc="lower left")
    ax = axes[2]
    ax.plot(np.arange(n), np.asarray(r["bytes_in_use"]) / 1024, "o-", ms=3, label="in use (length x per position)")
    ax.axhline(r["bytes_allocated"] / 1024, color="k", ls="--", lw=1, label="allocated (max_len)")
    ax.set_xlabel("call (0 = prefill)", fontsize=10)
    ax.set_ylabel("KiB", fontsize=10)
    ax.set_ylim(0, r["bytes_allocated"] / 1024 * 1.15)
    ax.set_title("the cache's memory", fontsize=11)
    ax.legend(fontsize=9, loc="lower right")
    ax.tick_params(labelsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- 2. prefill vs decode, speed


def time_tokens(model, prompt, n, use_cache: bool) -> list[float]:
    """CPU seconds of each of n greedy tokens: with the cache [prefill, decode, decode, ...],
    without [forward over all]."""
    ids, out = prompt, []
    cache = model.make_cache(batch_size=1, max_len=prompt.shape[1] + n) if use_cache else None
    feed = prompt
    with tinyllm.no_grad():
        for _ in range(n):
            t0 = time.process_time()
            logits, _ = model(feed, cache=cache) if use_cache else model(ids)
            nxt = host(logits)[:, -1].argmax(-1)[:, None]  # (1, 1)
            out.append(time.process_time() - t0)
            ids = np.concatenate([ids, nxt], axis=1)
            feed = nxt
    return out


def speed(lengths, d_model, n_layer, prompt_len=64) -> dict:
    top = max(lengths)
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, context_length=prompt_len + top, n_layer=n_layer, n_head=4, d_model=d_model,
                          bias=False)).eval()
    prompt = np.random.default_rng(0).integers(0, 65, (1, prompt_len))
    time_tokens(model, prompt, 4, True), time_tokens(model, prompt, 4, False)  # warm-up
    # each generation twice, each token's time the smaller of the two: the machine is shared, and other jobs only add
    cached = np.minimum(time_tokens(model, prompt, top, True), time_tokens(model, prompt, top, True)).tolist()
    uncached = np.minimum(time_tokens(model, prompt, top, False), time_tokens(model, prompt, top, False)).tolist()
    rows = []
    print(f"  model: {n_layer} layers x {d_model}, prompt {prompt_len} tokens; CPU seconds per token (the smaller of "
          f"two runs), summed")
    print(f"  prefill of {prompt_len} tokens: {1e3 * cached[0]:.1f} ms; a decode step: "
          f"{1e3 * np.median(cached[1:]):.2f} ms (median); an uncached step at {prompt_len + top - 1} tokens: "
          f"{1e3 * uncached[-1]:.1f} ms")
    print(f"  {'N':>6} {'cached tok/s':>13} {'uncached tok/s':>15} {'speedup':>8}")
    for n in lengths:
        tc, tu = sum(cached[:n]), sum(uncached[:n])
        rows.append(dict(n=n, cached_s=tc, uncached_s=tu, cached_tok_s=n / tc, uncached_tok_s=n / tu, speedup=tu / tc))
        print(f"  {n:>6} {n / tc:>13.1f} {n / tu:>15.1f} {tu / tc:>7.1f}x")
    return dict(d_model=d_model, n_layer=n_layer, prompt=prompt_len, rows=rows, cached_step_s=cached,
                uncached_step_s=uncached)


def plot_speed(s: dict, path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    x = s["prompt"] + np.arange(len(s["cached_step_s"]))
    a.semilogy(x[1:], 1e3 * np.asarray(s["cached_step_s"][1:]), ".", ms=3, label="with the cache (decode step)")
    a.semilogy(x, 1e3 * np.asarray(s["uncached_step_s"]), ".", ms=3, color="C1", label="without (forward over all)")
    a.semilogy([x[0]], [1e3 * s["cached_step_s"][0]], "k*", ms=10, label=f"prefill ({s['prompt']} tokens at once)")
    lo, hi = a.get_ylim()
    a.set_yticks([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if lo <= t <= hi])
    a.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    a.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_xlabel("tokens read so far")
    a.set_ylabel("CPU ms per generated token")
    a.legend(fontsize=8)
    a.grid(alpha=0.3, which="both")
    n = [r["n"] for r in s["rows"]]
    b.plot(n, [r["speedup"] for r in s["rows"]], "o-", color="C2")
    for r in s["rows"]:
        b.annotate(f"{r['speedup']:.1f}×", (r["n"], r["speedup"]), textcoords="offset points", xytext=(4, -12))
    b.set_ylim(0, 1.12 * max(r["speedup"] for r in s["rows"]))  # room under the first label
    b.set_xscale("log", base=2)
    b.set_xticks(n, [str(x) for x in n])
    b.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    b.set_xlabel("generated tokens N")
    b.set_ylabel("speedup (uncached / cached time)")
    b.grid(alpha=0.3)
    fig.suptitle(f"KV cache: {s['n_layer']} layers × {s['d_model']}, greedy, one thread")
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- 3. memory


def memory(model, lengths) -> list[dict]:
    c = model.config
    rows = []
    shapes = [("this model", c.n_layer, c.kv_heads, c.head_dim),
              ("GPT-2 small, 12 KV heads (MHA)", 12, 12, 64), ("... 4 KV heads (GQA)", 12, 4, 64),
              ("... 1 KV head (MQA)", 12, 1, 64)]
    print(f"  {'cache':<32} {'T':>6} {'measured bytes':>15} {'2·L·nkv·hs·T·4':>15}")
    for name, L, nkv, hs in shapes:
        for T in lengths:
            cache = KVCache(L, 1, nkv, T, hs)  # allocated, then measured
            formula = KVCache.bytes_needed(L, nkv, hs, T)
            rows.append(dict(cache=name, n_layer=L, n_kv_head=nkv, head_dim=hs, T=T, bytes=cache.nbytes,
                             formula=formula))
            print(f"  {name:<32} {T:>6} {cache.nbytes:>15,} {formula:>15,}")
            del cache
    return rows


# ---------------------------------------------------------------------------- 4. prefix cache


def make_requests(n: int, seed: int, ctx: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text = OPENINGS[rng.integers(len(OPENINGS))] + ENDINGS[rng.integers(len(ENDINGS))]
        out.append(text[-ctx:])
    return out


def prefix_cache_part(model, tok, texts, block_size: int, out: Path) -> dict:
    requests = [np.asarray(tok.encode(t), dtype=np.int64) for t in texts]
    stats, pc = kv_viz.simulate(model, requests, block_size=block_size)
    worst = 0.0  # the logits each request's prefill returned, against a full forward: rerun on a fresh cache
    fresh = PrefixCache(model, block_size=block_size)
    for ids in requests:
        logits, _, s = fresh.prefill(ids)
        with tinyllm.no_grad():
            full = host(model(ids[None])[0])
        worst = max(worst, float(np.abs(logits - full[:, s.n_reused:]).max()))
    print(f"  {len(requests)} requests, {sum(map(len, requests))} positions, blocks of {block_size}: "
          f"{pc.stats.hit_tokens} reused (hit rate {pc.stats.hit_rate:.3f}), {pc.stats.block_hits} block hits, "
          f"{pc.stats.block_misses} block misses; {len(pc)} blocks held, {pc.nbytes:,} bytes")
    print(f"  max |prefix-cache logits - full forward| over all requests: {worst:.2e}")
    for i, (t, s) in enumerate(zip(texts[:6], stats)):
        print(f"    {i + 1:>2}. {s.n_reused:>2}/{s.n_tokens:<2} reused  {t!r}")
    fig = kv_viz.hit_figure(stats, block_size=block_size, title=f"prefix cache, blocks of {block_size} characters")
    fig.savefig(out / "06_prefix_hits.png", dpi=120)
    plt.close(fig)
    (out / "06_prefix_hits.html").write_text(kv_viz.hit_html(stats, [[tok.decode([t]) for t in r] for r in requests],
                                                             block_size), encoding="utf-8")

    block = KVCache.bytes_needed(model.config.n_layer, model.config.kv_heads, model.config.head_dim, block_size)
    budgets = []
    for n_blocks in (0, 1, 2, 4, 8, 16, 32):  # hit rate against the byte budget (LRU eviction)
        _, p = kv_viz.simulate(model, requests, block_size=block_size, max_bytes=n_blocks * block)
        budgets.append(dict(blocks=n_blocks, bytes=n_blocks * block, hit_rate=p.stats.hit_rate,
                            evicted=p.stats.evicted))
    print("  hit rate by budget: " + ", ".join(f"{b['blocks']} blocks {b['hit_rate']:.2f}" for b in budgets))
    fig, ax = plt.subplots(figsize=(6, 3.2), constrained_layout=True)
    ax.plot([b["blocks"] for b in budgets], [b["hit_rate"] for b in budgets], "o-")
    ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks([b["blocks"] for b in budgets], [str(b["blocks"]) for b in budgets])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(f"budget, in blocks of {block_size} positions ({block:,} bytes each)")
    ax.set_ylabel("hit rate (positions reused)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.savefig(out / "06_prefix_budget.png", dpi=120)
    plt.close(fig)

    times = {}  # CPU seconds to prefill every request: through the prefix cache, and each from scratch
    for name in ("from scratch", "prefix cache"):
        pc2 = PrefixCache(model, block_size=block_size)
        t0 = time.process_time()
        for ids in requests:
            if name == "prefix cache":
                pc2.prefill(ids)
            else:
                with tinyllm.no_grad():
                    model(ids[None], cache=model.make_cache(batch_size=1))
        times[name] = time.process_time() - t0
    print(f"  CPU time to prefill them all: {times['from scratch']:.3f} s from scratch, "
          f"{times['prefix cache']:.3f} s with the prefix cache")
    return dict(block_size=block_size, n_requests=len(requests), positions=pc.stats.tokens,
                hit_tokens=pc.stats.hit_tokens, hit_rate=pc.stats.hit_rate, block_hits=pc.stats.block_hits,
                block_misses=pc.stats.block_misses, max_abs_diff=worst, per_request=[s.n_reused for s in stats],
                budgets=budgets, prefill_cpu_s=times)


def long_prefix_speed(prefix_len: int, suffix_len: int, n_requests: int, d_model: int, n_layer: int,
                      block_size: int = 16) -> dict:
    """CPU seconds to prefill n requests that share a long prefix (a system prompt): from scratch vs prefix cache."""
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, context_length=prefix_len + suffix_len, n_layer=n_layer, n_head=4,
                          d_model=d_model, bias=False)).eval()
    rng = np.random.default_rng(1)
    shared = rng.integers(0, 65, prefix_len)
    requests = [np.concatenate([shared, rng.integers(0, 65, suffix_len)]) for _ in range(n_requests)]
    times, worst = {}, 0.0
    for name in ("from scratch", "prefix cache"):
        pc = PrefixCache(model, block_size=block_size)
        t0 = time.process_time()
        out = []
        for ids in requests:
            if name == "prefix cache":
                out.append(pc.prefill(ids)[0][:, -1])
            else:
                with tinyllm.no_grad():
                    out.append(host(model(ids[None], cache=model.make_cache(batch_size=1))[0])[:, -1])
        times[name] = time.process_time() - t0
        if name == "from scratch":
            ref = out
        else:
            worst = max(float(np.abs(a - b).max()) for a, b in zip(out, ref))
    print(f"  {n_requests} requests = one shared {prefix_len}-token prefix + {suffix_len} own tokens "
          f"({n_layer} layers x {d_model}, blocks of {block_size}): {times['from scratch']:.2f} s CPU from scratch, "
          f"{times['prefix cache']:.2f} s with the prefix cache "
          f"({times['from scratch'] / times['prefix cache']:.1f}x); "
          f"max |last logits difference| {worst:.1e}")
    return dict(prefix_len=prefix_len, suffix_len=suffix_len, n_requests=n_requests, block_size=block_size,
                cpu_s=times, max_abs_diff=worst,
                speedup=times["from scratch"] / times["prefix cache"])


# ---------------------------------------------------------------------------- main


def trained_model(args):
    """--ckpt as given; --quick: a tiny model in OUT/model-quick; else the labs' shared run (tinyllm.labs.lab_model)."""
    return lab_model(args.ckpt, quick_dir=args.out / "model-quick" if args.quick else None)


def main(argv=None) -> dict:
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between steps (if the model trains)
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model and short lengths (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for figures and JSON (default docs/figures; "
                   "--quick: out/labs/06_kv_cache-quick)")
    p.add_argument("--ckpt", default=None, help="a `tinyllm train` run folder to use in parts 1 and 4")
    p.add_argument("--block-size", type=int, default=8, help="prefix cache block size (default 8)")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/06_kv_cache-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report = {}

    model, tok = trained_model(args)
    c = model.config
    print(f"1. What the cache holds ({c.n_layer} layers, {c.n_head} heads of {c.head_dim}, "
          f"{c.kv_heads} KV heads, context {c.context_length})")
    prompt = "ROMEO:\nI dreamt a dream to-night.\n"
    report["holds"] = what_the_cache_holds(model, tok, prompt[:c.context_length // 2],
                                           min(24, c.context_length - len(prompt[:c.context_length // 2])))
    report["steps"] = one_generation_step_by_step(model, tok, prompt[:c.context_length // 2],
                                                  min(24, c.context_length - len(prompt[:c.context_length // 2])))
    plot_steps(report["steps"], args.out / "06_kv_steps.png")

    print("\n2. Prefill vs decode, with and without the cache")
    report["speed"] = sp = speed([16, 32, 64], 32, 2, 16) if args.quick else speed([64, 128, 256, 512], 128, 4, 64)
    plot_speed(sp, args.out / "06_speed.png")

    print("\n3. Memory: measured bytes of allocated caches against the formula")
    report["memory"] = memory(model, [64, 1024] if args.quick else [64, 256, 1024, 2048])

    print(f"\n4. A prefix cache over requests that share openings (blocks of {args.block_size})")
    texts = make_requests(8 if args.quick else 24, seed=0, ctx=c.context_length)
    report["prefix"] = prefix_cache_part(model, tok, texts, args.block_size, args.out)
    report["long_prefix"] = long_prefix_speed(48, 8, 4, 32, 2, 8) if args.quick else \
        long_prefix_speed(512, 16, 8, 128, 4, 16)

    report["seconds"] = time.perf_counter() - t_start
    (args.out / "06_kv_cache.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nfigures and 06_kv_cache.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
