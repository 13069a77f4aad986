"""Lab 7: long context — sliding windows, perplexity against length, and the memory wall.

1. A sliding window on long documents: character models on tinyshakespeare at context 512, with
   full attention and with windows of 64 and 16 (GPTConfig.window; the flash kernel for all). The
   full model trains a fixed number of steps; each windowed one as many steps as the same compute
   buys it (FLOPs per token 6N + 12·n_layer·d_model·span, span = T for full attention and the
   window for a window). Loss by token position on validation windows of 512, and each
   configuration's measured time per training step.
2. Perplexity against context length: one model per positional encoding, with and without a window
   of 16, trained at context T = 64 and evaluated on windows of T/4 .. 8T (the same weights in a
   config with a longer context_length; learned positions stop at T). The collapse point of each,
   the first length past T where its mean loss rises more than 10 % above the loss at T, is marked.
3. The memory wall: the peak memory of one training step (forward + backward, B = 1) of a 4-layer
   model with 4 heads of 64, full attention against flash, at growing T; where full attention
   stops fitting in this machine's memory (extrapolated from the measured peaks, a + c·T + b·T²
   fitted; not run there), and the KV cache of a 2000-token generation, full against rolling.

    python examples/07_long_context.py            # trains 13 small models once (reused after);
                                                  # docs/figures/07_*.png and 07_long_context.json
    python examples/07_long_context.py --quick    # tiny models and lengths (CI), ~1 minute;
                                                  # figures in out/labs/07_long_context-quick
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import time
import tracemalloc
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import prepare_data  # noqa: E402
from tinyllm.inference.kv_cache import KVCache  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.nn.config import POS_ENCODINGS  # noqa: E402
from tinyllm.train import preset, train_or_load  # noqa: E402

PRESET = "shakespeare-char-cpu"
# part 1: long documents (context 512); the full-attention model's budget; windows get equal compute
LONG = dict(context_length=512, n_layer=4, n_head=4, d_model=64, batch_size=8, max_iters=300, learning_rate=3e-3,
            min_lr=3e-4, warmup_iters=30, eval_interval=100, eval_iters=5, sample_tokens=0, pos_encoding="rope",
            attention="flash")
LONG_QUICK = dict(LONG, context_length=64, n_layer=2, n_head=2, d_model=32, batch_size=4, max_iters=20,
                  warmup_iters=2, eval_interval=10, eval_iters=2)
LONG_WINDOWS, LONG_WINDOWS_QUICK = (None, 64, 16), (None, 16, 4)
# part 2: short training context, every positional encoding, with and without a window
SHORT = dict(context_length=64, n_layer=4, n_head=4, d_model=64, batch_size=16, max_iters=500, learning_rate=3e-3,
             min_lr=3e-4, warmup_iters=50, eval_interval=100, eval_iters=5, sample_tokens=0, attention="flash")
SHORT_QUICK = dict(SHORT, context_length=16, n_layer=2, n_head=2, d_model=32, batch_size=8, max_iters=20,
                   warmup_iters=2, eval_interval=10, eval_iters=2)
SHORT_WINDOW = 16
FACTORS = (0.25, 0.5, 1, 2, 4, 8)  # evaluation lengths, in units of the training context T
COLLAPSE = 0.10  # a rise of the mean loss of more than 10 % over the loss at T
# part 3: the memory wall
WALL = dict(vocab_size=65, n_layer=4, n_head=4, d_model=256, pos_encoding="rope")


def quietly(fn, *args, **kwargs):
    """fn(*args, **kwargs) with its stdout (the training loop's step lines) swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------- shared: data and losses


def val_windows(n: int, length: int, seed: int = 0):
    """n fixed (x, y) windows of `length` characters from tinyshakespeare's val split: int64 (n, length) each."""
    _, ds = prepare_data("tinyshakespeare", "char")
    rng = np.random.default_rng([seed, 7])
    starts = rng.integers(0, len(ds.val) - length - 1, size=n)
    w = np.asarray(ds.val)[starts[:, None] + np.arange(length + 1)].astype(np.int64)  # (n, length+1)
    return w[:, :-1], w[:, 1:]


def per_position_loss(model: GPT, x: np.ndarray, y: np.ndarray, batch: int = 8) -> np.ndarray:
    """Mean cross-entropy (nats) at each position of the windows (n, L) -> (L,), eval mode, no graph."""
    model.eval()
    total = np.zeros(x.shape[1])
    with tinyllm.no_grad():
        for i in range(0, len(x), batch):
            logits = tinyllm.to_numpy(model(x[i:i + batch])[0].data).astype(np.float64)  # (b, L, V)
            logits -= logits.max(-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            total += -np.take_along_axis(logp, y[i:i + batch, :, None], -1)[..., 0].sum(0)
    return total / len(x)


def with_context(model: GPT, context_length: int) -> GPT:
    """The same weights in a GPT whose config has a longer context_length (positions computed, not looked up)."""
    longer = GPT(dataclasses.replace(model.config, context_length=context_length))
    longer.load_state_dict(model.state_dict())
    return longer.eval()


def flops_per_token(c: GPTConfig, n_params: int, T: int) -> int:
    """6N + 12·n_layer·d_model·span (nanoGPT's estimate; span = T, or the window when it is shorter)."""
    span = T if c.window is None else min(T, c.window)
    return 6 * n_params + 12 * c.n_layer * c.d_model * span


# ------------------------------------------------------------------------ part 1: a sliding window on long documents


def train_long(quick: bool, runs: Path, log=print) -> dict:
    """{label: run}: full attention for budget["max_iters"] steps, each window for the steps of equal compute."""
    budget = LONG_QUICK if quick else LONG
    out, full_flops = {}, None
    for window in LONG_WINDOWS_QUICK if quick else LONG_WINDOWS:
        label = "full" if window is None else f"window {window}"
        cfg, fields = preset(PRESET, out_dir=str(runs / label.replace(" ", "-")), **dict(budget, window=window))
        probe = GPT(GPTConfig(vocab_size=65, **fields))  # tinyshakespeare has 65 characters
        flops = flops_per_token(probe.config, probe.num_parameters(non_embedding=True), budget["context_length"])
        full_flops = full_flops or flops
        steps = round(budget["max_iters"] * full_flops / flops)  # equal compute
        cfg = dataclasses.replace(cfg, max_iters=steps)
        t0 = time.perf_counter()
        run = quietly(train_or_load, cfg, fields)
        out[label] = dict(run=run, steps=steps, flops_per_token=flops, window=window)
        log(f"  {label:<10} window {str(window):>4}: {steps:>4} steps ({flops / 1e6:.2f} MFLOP/token), val loss "
            f"{run.val_loss:.4f} [{'trained' if run.trained else 'reused'}, {time.perf_counter() - t0:.0f} s]")
    return out


def step_times(models: dict, T: int, batch: int, rounds: int = 3) -> dict:
    """Median CPU seconds of one training step (forward + backward) per model, the models alternated."""
    x = np.random.default_rng(0).integers(0, 65, (batch, T + 1))
    times = {k: [] for k in models}
    for r in range(rounds):
        for label in (list(models) if r % 2 == 0 else list(models)[::-1]):
            model = models[label]
            model.train()
            c0 = time.process_time()
            _, loss = model(x[:, :-1], x[:, 1:])
            loss.backward()
            times[label].append(time.process_time() - c0)
            model.zero_grad()
            model.eval()
    return {k: float(np.median(v)) for k, v in times.items()}


def long_documents(quick: bool, runs: Path, n_windows: int, log=print) -> dict:
    trained = train_long(quick, runs, log)
    T = (LONG_QUICK if quick else LONG)["context_length"]
    x, y = val_windows(n_windows, T)
    models = {k: v["run"].model for k, v in trained.items()}
    per_step = step_times(models, T, (LONG_QUICK if quick else LONG)["batch_size"])
    out = {}
    for label, t in trained.items():
        curve = per_position_loss(models[label], x, y)
        out[label] = dict(window=t["window"], steps=t["steps"], flops_per_token=t["flops_per_token"],
                          val_loss=t["run"].val_loss, step_cpu_s=per_step[label], per_position=curve.tolist(),
                          mean=float(curve.mean()), first_64=float(curve[:64].mean()),
                          last_quarter=float(curve[-T // 4:].mean()))
        log(f"  {label:<10} loss on {n_windows} val windows of {T}: mean {curve.mean():.4f}, positions 0-63 "
            f"{curve[:64].mean():.4f}, last quarter {curve[-T // 4:].mean():.4f}; one training step "
            f"{per_step[label]:.3f} s CPU")
    return out


def plot_long(res: dict, path: Path) -> None:
    """Loss by position, averaged over doubling bins of positions (0, 1, 2-3, 4-7, ...): the first positions,
    which have the least context, one by one; the long tail in a few points."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, r in res.items():
        c = np.asarray(r["per_position"])
        edges = [0] + [2 ** i for i in range(int(np.log2(len(c))) + 1)]
        mids = [(a + b - 1) / 2 + 1 for a, b in zip(edges, edges[1:])]  # positions counted from 1 on the log axis
        ax.plot(mids, [c[a:b].mean() for a, b in zip(edges, edges[1:])], "-o", ms=4,
                label=f"{label} ({r['steps']} steps, mean {r['mean']:.3f})")
        if r["window"]:
            ax.axvline(r["window"], color=ax.lines[-1].get_color(), lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ticks = [2 ** i for i in range(int(np.log2(len(c))) + 1)]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("position in the window, counted from 1 (doubling bins; dotted: each window's width)")
    ax.set_ylabel("validation loss, nats")
    ax.set_title("a sliding window on long text, at equal training compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    _save(fig, path)


# ------------------------------------------------------------------------ part 2: perplexity against context length


def train_short(quick: bool, runs: Path, log=print) -> dict:
    """{(encoding, window): run} for every positional encoding, with and without the window."""
    budget = SHORT_QUICK if quick else SHORT
    window = SHORT_WINDOW // (4 if quick else 1)
    out = {}
    for enc in POS_ENCODINGS:
        for w in (None, window):
            name = f"{enc}-{'full' if w is None else f'w{w}'}"
            cfg, fields = preset(PRESET, out_dir=str(runs / name), pos_encoding=enc, window=w, **budget)
            t0 = time.perf_counter()
            out[(enc, w)] = run = quietly(train_or_load, cfg, fields)
            log(f"  {name:<16} val loss {run.val_loss:.4f} [{'trained' if run.trained else 'reused'}, "
                f"{time.perf_counter() - t0:.0f} s]")
    return out


def loss_against_length(runs: dict, T: int, n_windows: int, log=print) -> dict:
    """{name: {"lengths", "loss" (None where the model cannot go), "collapse" (a length or None)}}."""
    lengths = [int(f * T) for f in FACTORS]
    x, y = val_windows(n_windows, lengths[-1], seed=1)
    out = {}
    for (enc, w), run in runs.items():
        losses = []
        for L in lengths:
            if L > T and enc == "learned":
                losses.append(None)  # a table of T rows: no vector for position T
                continue
            model = run.model if L <= T else with_context(run.model, L)
            losses.append(float(per_position_loss(model, x[:, :L], y[:, :L]).mean()))
        at_T = losses[FACTORS.index(1)]
        collapse = next((L for L, v in zip(lengths, losses) if L > T and (v is None or v > at_T * (1 + COLLAPSE))),
                        None)
        name = f"{enc}" + ("" if w is None else f", window {w}")
        out[name] = dict(encoding=enc, window=w, lengths=lengths, loss=losses, collapse=collapse)
        row = "  ".join("  n/a" if v is None else f"{v:.3f}" for v in losses)
        log(f"  {name:<22} {row}   collapse: {'none up to ' + str(lengths[-1]) if collapse is None else collapse}")
    return out


def plot_length(res: dict, T: int, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colors = dict(zip(POS_ENCODINGS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, windowed in zip(axes, (False, True)):
        for name, r in res.items():
            if (r["window"] is not None) != windowed:
                continue
            pts = [(L, v) for L, v in zip(r["lengths"], r["loss"]) if v is not None]
            ax.plot(*zip(*pts), "-o", color=colors[r["encoding"]], label=r["encoding"], ms=4)
            if r["collapse"] is not None:
                v = dict(zip(r["lengths"], r["loss"]))[r["collapse"]]
                ax.plot([r["collapse"]], [v if v is not None else pts[-1][1]], "x", color=colors[r["encoding"]],
                        ms=12, mew=2.5)
        ax.axvline(T, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        lengths = next(iter(res.values()))["lengths"]
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.set_xlabel("evaluation length (characters); dashed: the training context T")
        ax.set_title(f"window {max(r['window'] or 0 for r in res.values())}" if windowed else "full attention")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("mean validation loss, nats (x: collapse)")
    axes[0].legend()
    top = max(v for r in res.values() for v in r["loss"] if v is not None)
    axes[0].set_ylim(top=min(top, 2 * min(v for r in res.values() for v in r["loss"] if v is not None)) * 1.05)
    _save(fig, path)


# ---------------------------------------------------------------------------- part 3: the memory wall


def step_peak(model: GPT, T: int) -> int:
    """Peak bytes allocated (tracemalloc) during one forward + backward over T tokens (B = 1), above before."""
    x = np.random.default_rng(T).integers(0, model.config.vocab_size, (1, T + 1))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        model.zero_grad()
    return peak


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (what a new allocation can have without swapping)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def memory_wall(full_lengths, flash_lengths, log=print) -> dict:
    out = {"available": available_memory(), "model": WALL, "rows": []}
    for attention, lengths in (("full", full_lengths), ("flash", flash_lengths)):
        tinyllm.manual_seed(0)
        model = GPT(GPTConfig(context_length=max(lengths), attention=attention, **WALL)).train()
        for T in lengths:
            c0 = time.process_time()
            peak = step_peak(model, T)
            out["rows"].append(dict(attention=attention, T=T, peak=peak, cpu_s=time.process_time() - c0))
            log(f"  {attention:<6} T {T:>6}: peak {peak / 2**20:8.1f} MiB, {time.process_time() - c0:6.2f} s CPU")
    T, peak = np.array([(r["T"], r["peak"]) for r in out["rows"] if r["attention"] == "full"], dtype=np.float64).T
    b, c, a = np.polyfit(T, peak, 2)  # peak = a + c·T + b·T², least squares over the measured lengths
    wall = max(np.roots([b, c, a - out["available"]]).real)  # where it reaches the memory available
    out["fit"] = dict(a=float(a), c=float(c), b=float(b), wall_T=float(wall))
    log(f"  full attention: peak ~ {a / 2**20:.0f} MiB + {c / 2**10:.1f} KiB·T + {b:.1f} B·T² -> reaches the "
        f"{out['available'] / 2**30:.1f} GiB available at T ~ {wall:.0f} (extrapolated; not run there)")
    return out


def cache_growth(steps: int, window: int, log=print) -> dict:
    """Bytes of the KV cache while generating `steps` tokens: full cache against the rolling one, measured."""
    tinyllm.manual_seed(0)
    cfg = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=64, pos_encoding="rope",
                    window=window)
    model = GPT(cfg).eval()
    cache = model.make_cache()
    rows = []
    tok = np.zeros((1, 1), np.int64)
    for t in range(steps):
        model(tok, cache=cache)
        if (t + 1) % max(1, steps // 10) == 0:
            full = KVCache.bytes_needed(cfg.n_layer, cfg.kv_heads, cfg.head_dim, t + 1)
            rows.append(dict(length=cache.length, rolling=cache.nbytes, full=full))
    log(f"  after {steps} tokens: rolling cache {rows[-1]['rolling'] / 2**10:.0f} KiB (window {window}), a full "
        f"cache {rows[-1]['full'] / 2**10:.0f} KiB; the rolling one held {rows[0]['rolling'] / 2**10:.0f} KiB "
        f"after {rows[0]['length']} tokens too")
    return dict(window=window, rows=rows)


def plot_wall(res: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for attention, color in (("full", "tab:red"), ("flash", "tab:green")):
        pts = sorted((r["T"], r["peak"]) for r in res["rows"] if r["attention"] == attention)
        ax.plot([p[0] for p in pts], [p[1] / 2**20 for p in pts], "-o", color=color, label=f"{attention}, measured")
    fit = res["fit"]
    Ts = np.geomspace(min(r["T"] for r in res["rows"]), fit["wall_T"] * 1.2, 50)
    ax.plot(Ts, (fit["a"] + fit["c"] * Ts + fit["b"] * Ts ** 2) / 2**20, ":", color="tab:red",
            label="full, a + c·T + b·T² fitted (extrapolated)")
    ax.axhline(res["available"] / 2**20, color="grey", lw=1)
    ax.annotate(f"memory available: {res['available'] / 2**30:.1f} GiB; full attention reaches it at "
                f"T ~ {fit['wall_T']:.0f}", (Ts[0], res["available"] / 2**20 * 1.2), fontsize=9, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("peak memory of a training step, MiB")
    ax.set_title("the memory wall: 4 layers, 4 heads of 64, B = 1")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between steps
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and lengths (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for figures and JSON (default docs/figures; "
                   "--quick: out/labs/07_long_context-quick)")
    p.add_argument("--runs", type=Path, default=None, help="where the trained models live (default out/labs/07-...)")
    args = p.parse_args(argv)
    q = args.quick
    args.out = args.out or Path("out/labs/07_long_context-quick" if q else "docs/figures")
    runs = args.runs or Path("out/labs/07-long-context" + ("-quick" if q else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report = {}

    print("1. A sliding window on long documents (tinyshakespeare, characters)")
    report["long"] = long_documents(q, runs / "long", 8 if q else 64)
    plot_long(report["long"], args.out / "07_window_positions.png")

    T = (SHORT_QUICK if q else SHORT)["context_length"]
    print(f"\n2. Loss against evaluation length, trained at T = {T} (lengths {[int(f * T) for f in FACTORS]})")
    report["length"] = loss_against_length(train_short(q, runs / "short"), T, 8 if q else 64)
    plot_length(report["length"], T, args.out / "07_length.png")

    print("\n3. The memory wall: one training step, full attention against flash")
    report["wall"] = memory_wall([64, 128, 256] if q else [512, 1024, 2048, 4096],
                                 [64, 128, 256, 512] if q else [512, 1024, 2048, 4096, 8192])
    report["cache"] = cache_growth(200 if q else 2000, 16 if q else 256)
    plot_wall(report["wall"], args.out / "07_memory_wall.png")

    report["seconds"] = time.perf_counter() - t_start
    (args.out / "07_long_context.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nfigures and 07_long_context.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
