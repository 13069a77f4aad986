"""Lab 10: which norm, where, and which activation: training dynamics and activations by depth.

0. The corpus: its characters, and the loss of a model that knows only their frequencies.
1. The grid {LayerNorm, RMSNorm} x {GELU, SwiGLU, ReLU} x {pre-norm, post-norm}, each variant trained from
   its seed on the same batches of the built-in story corpus (characters) for the same number of steps:
   final val loss (mean over seeds), and per step the loss, each block's gradient norm and each block's
   update/parameter ratio ||Δθ|| / ||θ||. Untied input and output embeddings; then the same pre/post pair
   with GPT-2's tied embeddings.
2. Learning-rate sensitivity: a sweep of the peak learning rate for every variant of the grid, short
   runs: the final loss at each rate, and where each variant stops training.
3. Activations across depth, read with forward and backward hooks (nothing in the model changes): the
   residual stream after every block and the MLP's hidden activations, at initialization and after
   part 1's training: histograms, RMS by depth, kurtosis, max|x|/RMS and the largest channel's share of the
   stream (outliers), the fraction of dead ReLU units, and the gradient RMS that reaches each block.
4. Speed: RMSNorm against LayerNorm, forward + backward, and the fused SwiGLU gate against silu(g) * u,
   alternated in one run.

Every run is seeded (--seed): a rerun prints the same numbers (timings aside).

    python examples/10_norms_activations.py           # the chapter's numbers; docs/figures/10_*.png, 10_*.json
    python examples/10_norms_activations.py --parts 0 # the corpus's facts alone (seconds)
    python examples/10_norms_activations.py --quick   # tiny budgets, for CI (out/labs/10_norms_activations-quick)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import functional as F  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import get_batch, prepare_data  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.optim import clip_grad_norm_  # noqa: E402
from tinyllm.train import TrainConfig, make_optimizer  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Budget:
    n_layer: int = 6
    d_model: int = 64
    n_head: int = 4
    context: int = 64
    batch: int = 16
    steps: int = 300              # part 1: every variant takes exactly this many AdamW steps
    lr: float = 3e-3              # peak; warmup for a tenth of the steps, cosine down to lr / 10
    seeds: tuple = (0, 1, 2)
    eval_every: int = 50
    val_batches: int = 8
    sweep_lrs: tuple = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    sweep_steps: int = 120
    sweep_variants: int = 12      # the first ones of SWEEP (norm x position x {gelu, swiglu, relu})
    speed_shapes: tuple = ((8192, 256), (2048, 768))  # (rows, width) of the norm and (rows, d_ff) of the gate
    speed_repeats: int = 30


FULL = Budget()
QUICK = Budget(n_layer=2, d_model=32, n_head=2, context=32, batch=4, steps=8, seeds=(0,), eval_every=4,
               val_batches=1, sweep_lrs=(1e-2, 1e-1), sweep_steps=4, sweep_variants=2,
               speed_shapes=((256, 64),), speed_repeats=3)

NORMS, ACTS, POSITIONS = ("layernorm", "rmsnorm"), ("gelu", "swiglu", "relu"), ("pre", "post")
GRID = [(n, a, p) for n in NORMS for a in ACTS for p in POSITIONS]
SWEEP = [(n, a, p) for a in ACTS for n in NORMS for p in POSITIONS]


def name_of(variant) -> str:
    norm, act, pos = variant
    return f"{'LN' if norm == 'layernorm' else 'RMS'}-{act}-{pos}"


# ---------------------------------------------------------------------------- training, with per-step dynamics


class Stories:
    """The built-in story corpus at character level; a fixed set of validation windows."""

    def __init__(self, b: Budget, seed: int):
        self.tok, ds = prepare_data("stories", "char")
        self.train, self.b = ds.train, b
        rng = np.random.default_rng([seed, 10])
        self.val = [get_batch(ds.val, b.batch, b.context, rng) for _ in range(b.val_batches)]

    def config(self, variant, tie: bool = False) -> GPTConfig:
        norm, act, pos = variant
        b = self.b  # no biases (as LLaMA): LayerNorm and RMSNorm then differ only in centring
        return GPTConfig(vocab_size=self.tok.vocab_size, context_length=b.context, n_layer=b.n_layer,
                         n_head=b.n_head, d_model=b.d_model, bias=False, norm=norm, activation=act,
                         norm_position=pos, tie_embeddings=tie)


def corpus_facts(data) -> tuple:
    """(vocabulary size, the validation split's cross-entropy under the train split's character frequencies):
    the loss of a model that has learned nothing but the unigram distribution."""
    _, ds = prepare_data("stories", "char")
    counts = np.bincount(np.asarray(ds.train), minlength=data.tok.vocab_size).astype(np.float64)
    p = counts / counts.sum()
    return data.tok.vocab_size, float(-np.log(p[np.asarray(ds.val)]).mean())


def val_loss(model, data) -> float:
    model.eval()
    with tinyllm.no_grad():
        loss = float(np.mean([model(x, y)[1].item() for x, y in data.val]))
    model.train()
    return loss


def block_vectors(model) -> list:
    """Each block's parameters as one host float64 vector (for norms and update sizes)."""
    return [np.concatenate([tinyllm.to_numpy(p.data).ravel() for p in blk.parameters()]).astype(np.float64)
            for blk in model.transformer.h]


def fit(model, data, steps: int, lr: float, seed: int, dynamics: bool = True) -> dict:
    """AdamW (nanoGPT's recipe, clip 1.0) for `steps` steps at peak lr on batches drawn from seed.

    Returns {"loss": per step, "val": [(step, val loss)], "grad_norm": (steps, L), "update_ratio": (steps, L),
    "final": val loss, "diverged": whether a loss went non-finite}.
    """
    cfg = TrainConfig(max_iters=steps, learning_rate=lr, min_lr=lr / 10, warmup_iters=max(1, steps // 10),
                      batch_size=data.b.batch)
    opt, sched = make_optimizer(model, cfg)
    rng = np.random.default_rng([seed, 11])
    losses, vals, grads, ratios = [], [], [], []
    for step in range(steps):
        if step % data.b.eval_every == 0:
            vals.append((step, val_loss(model, data)))
        x, y = get_batch(data.train, data.b.batch, data.b.context, rng)
        _, loss = model(x, y)
        loss.backward()
        losses.append(loss.item())
        if not np.isfinite(losses[-1]):
            return dict(loss=losses, val=vals, grad_norm=grads, update_ratio=ratios, final=float("nan"),
                        diverged=True)
        if dynamics:  # each block's gradient norm (before clipping), and its parameters before the step
            grads.append([math.sqrt(sum(float((tinyllm.to_numpy(p.grad.data).astype(np.float64) ** 2).sum())
                                        for p in blk.parameters() if p.grad is not None))
                          for blk in model.transformer.h])
            before = block_vectors(model)
        clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        sched.step()
        if dynamics:
            ratios.append([float(np.linalg.norm(a - b) / np.linalg.norm(b))
                           for a, b in zip(block_vectors(model), before)])
    final = val_loss(model, data)
    vals.append((steps, final))
    return dict(loss=losses, val=vals, grad_norm=grads, update_ratio=ratios, final=final,
                diverged=not np.isfinite(final))


def grid(data, b: Budget, log=print) -> dict:
    """Part 1: {variant name: {"runs": [fit(...) per seed], "params", "final_mean", "final_std"}}; the seed-0
    models are kept (for part 3) under "model", and their initial copies under "init"."""
    out = {}
    for variant in GRID:
        t0 = time.perf_counter()
        runs = []
        for seed in b.seeds:
            tinyllm.manual_seed(seed)
            model = GPT(data.config(variant))
            if seed == b.seeds[0]:
                tinyllm.manual_seed(seed)
                out.setdefault("_init", {})[name_of(variant)] = GPT(data.config(variant))  # the same init
            runs.append(fit(model, data, b.steps, b.lr, seed))
            if seed == b.seeds[0]:
                out.setdefault("_trained", {})[name_of(variant)] = model
        finals = [r["final"] for r in runs]
        out[name_of(variant)] = dict(runs=runs, params=model.num_parameters(), final_mean=float(np.mean(finals)),
                                     final_std=float(np.std(finals)))
        g = np.asarray(runs[0]["grad_norm"])
        log(f"  {name_of(variant):<17} {model.num_parameters():>8,} params  val loss {np.mean(finals):.4f} "
            f"± {np.std(finals):.4f}  grad norm first/last block (last step) {g[-1, 0]:.3f}/{g[-1, -1]:.3f}  "
            f"[{time.perf_counter() - t0:.0f} s]")
    return out


def tying(data, b: Budget, seed: int, log=print) -> dict:
    """Part 1b: LN-gelu pre and post with GPT-2's tied embeddings (lm_head.weight is wte): {name: fit(...)}."""
    out = {}
    for variant in (("layernorm", "gelu", "pre"), ("layernorm", "gelu", "post")):
        tinyllm.manual_seed(seed)
        model = GPT(data.config(variant, tie=True))
        out[name_of(variant)] = r = fit(model, data, b.steps, b.lr, seed)
        g = np.asarray(r["grad_norm"])
        log(f"  {name_of(variant):<17} tied   val loss {r['final']:.4f}  grad norm first/last block (last step) "
            f"{g[-1, 0]:.4f}/{g[-1, -1]:.4f}")
    return out


def lr_sweep(data, b: Budget, seed: int, log=print) -> dict:
    """Part 2: {variant name: {lr: final val loss (nan: diverged)}}, short runs without the dynamics."""
    out = {}
    for variant in SWEEP[:b.sweep_variants]:
        row = {}
        for lr in b.sweep_lrs:
            tinyllm.manual_seed(seed)
            r = fit(GPT(data.config(variant)), data, b.sweep_steps, lr, seed, dynamics=False)
            row[lr] = r["final"]
        out[name_of(variant)] = row
        log(f"  {name_of(variant):<17} " + "  ".join(f"lr {lr:g}: {loss:.3f}" for lr, loss in row.items()))
    return out


# ---------------------------------------------------------------------------- part 3: activations by depth, by hooks


def kurtosis(v: np.ndarray) -> float:
    """Excess kurtosis E[(x-μ)⁴]/σ⁴ - 3: 0 for a Gaussian, large when a few values are far out (outliers)."""
    v = v.astype(np.float64).ravel()
    c = v - v.mean()
    return float((c ** 4).mean() / (c ** 2).mean() ** 2 - 3)


def activation_stats(model, x, y) -> dict:
    """Forward hooks on every block (the residual stream it leaves) and every MLP activation, a backward hook on
    every block (the gradient of the loss w.r.t. the stream it leaves); one forward + backward on (x, y).

    Returns per layer: "stream" and "mlp" samples (host float32), their RMS, kurtosis and max|x|/RMS,
    "stream_top_channel" (the largest of the stream's d_model channels' RMS over tokens, divided by the stream's
    RMS: 1 when every channel is alike, large when a few outlier channels carry the scale), "dead" (the fraction
    of MLP units never positive on any token: ReLU's dead units) and "grad_rms".
    """
    stream, mlp, grad = {}, {}, {}
    handles = []
    for i, blk in enumerate(model.transformer.h):
        handles.append(blk.register_forward_hook(lambda m, a, out, i=i: stream.__setitem__(i, tinyllm.to_numpy(
            out.data).copy())))
        handles.append(blk.mlp.act.register_forward_hook(lambda m, a, out, i=i: mlp.__setitem__(i, tinyllm.to_numpy(
            out.data).copy())))
        handles.append(blk.register_full_backward_hook(lambda m, gi, go, i=i: grad.__setitem__(
            i, float(np.sqrt((tinyllm.to_numpy(go[0].data).astype(np.float64) ** 2).mean())))))
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    model.zero_grad()
    for h in handles:
        h.remove()
    rows = []
    for i in range(len(model.transformer.h)):
        s, a = stream[i], mlp[i]
        rms = float(np.sqrt((s.astype(np.float64) ** 2).mean()))
        units = a.reshape(-1, a.shape[-1])  # (tokens, d_ff)
        channels = np.sqrt((s.reshape(-1, s.shape[-1]).astype(np.float64) ** 2).mean(axis=0))  # (d_model,)
        a_rms = float(np.sqrt((a.astype(np.float64) ** 2).mean()))
        rows.append(dict(stream_rms=rms, stream_kurtosis=kurtosis(s), stream_max_over_rms=float(np.abs(s).max() / rms),
                         stream_top_channel=float(channels.max() / rms),
                         mlp_rms=a_rms, mlp_kurtosis=kurtosis(a), mlp_max_over_rms=float(np.abs(a).max() / a_rms),
                         dead=float((units.max(axis=0) <= 0).mean()), zero=float((units == 0).mean()),
                         grad_rms=grad.get(i, float("nan")),
                         stream_sample=s.ravel()[:: max(1, s.size // 20000)],
                         mlp_sample=a.ravel()[:: max(1, a.size // 20000)]))
    return rows


def depth_stats(models: dict, data, log=print) -> dict:
    """Part 3: {"init"/"trained": {variant: per-layer rows}} on the first validation batch."""
    x, y = data.val[0]
    out = {}
    for when, group in models.items():
        out[when] = {}
        for name, model in group.items():
            model.eval()  # no dropout here anyway; eval for the record
            out[when][name] = activation_stats(model, x, y)
            model.train()
    L = len(next(iter(out["trained"].values())))
    log(f"  residual-stream RMS after blocks 1..{L}, at init -> trained; its largest excess kurtosis and top channel's "
        f"RMS / stream RMS over the blocks (trained); gradient RMS into block 1 / block {L} (trained)")
    for name in out["trained"]:
        a, t = out["init"][name], out["trained"][name]
        log(f"  {name:<17} " + " ".join(f"{r['stream_rms']:.2f}" for r in a) + "  ->  "
            + " ".join(f"{r['stream_rms']:.2f}" for r in t) + f"   kurt {max(r['stream_kurtosis'] for r in t):6.1f}"
            f"   top channel {max(r['stream_top_channel'] for r in t):4.1f}"
            f"   grad {t[0]['grad_rms']:.2e}/{t[-1]['grad_rms']:.2e}"
            + (f"   dead ReLU {np.mean([r['dead'] for r in a]):.1%} -> {np.mean([r['dead'] for r in t]):.1%}"
               if "relu" in name else ""))
    return out


# ---------------------------------------------------------------------------- part 4: speed


def timed(fn, repeats: int) -> float:
    """The median seconds of fn() over `repeats` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def machine() -> str:
    """What timings depend on: cores, CPU model, library versions, and the load average (the machine may be
    shared)."""
    import os
    import platform

    import numba

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return (f"{len(os.sched_getaffinity(0))} cores, {cpu}; numpy {np.__version__}, numba {numba.__version__}; "
            f"load average {os.getloadavg()[0]:.1f}")


def speed(b: Budget, log=print) -> list:
    """Part 4: forward+backward of layer_norm vs rms_norm and of the fused gate vs silu(g)*u, alternated."""
    rows = []
    rng = np.random.default_rng(0)
    log(f"  {machine()}")
    for n, width in b.speed_shapes:
        x = tinyllm.tensor(rng.normal(size=(n, width)).astype(np.float32), requires_grad=True)
        g = tinyllm.tensor(rng.normal(size=(n, width)).astype(np.float32), requires_grad=True)
        w, bias = (tinyllm.tensor(np.ones(width, np.float32), requires_grad=True) for _ in range(2))
        go = tinyllm.tensor(rng.normal(size=(n, width)).astype(np.float32))

        def run(make):
            def once():
                make().backward(go)
                for t in (x, g, w, bias):
                    t.grad = None
            return once

        cases = {"layer_norm": run(lambda: F.layer_norm(x, (width,), w, bias)),
                 "rms_norm": run(lambda: F.rms_norm(x, (width,), w)),
                 "swiglu fused": run(lambda: F.swiglu(g, x)),
                 "silu(g) * u": run(lambda: F.silu(g) * x)}
        for fn in cases.values():
            fn()  # compile and warm up
        times = {k: [] for k in cases}
        for _ in range(b.speed_repeats):  # alternated: each case sees the same machine load
            for k, fn in cases.items():
                times[k].append(timed(fn, 1))
        med = {k: float(np.median(v)) for k, v in times.items()}
        row = dict(rows=n, width=width, machine=machine(), **{f"{k} ms": 1e3 * v for k, v in med.items()},
                   rms_over_ln=med["rms_norm"] / med["layer_norm"], fused_over_composed=med["swiglu fused"] / med[
                       "silu(g) * u"])
        rows.append(row)
        log(f"  ({n}, {width}): layer_norm {1e3 * med['layer_norm']:.2f} ms, rms_norm {1e3 * med['rms_norm']:.2f} ms "
            f"(x{row['rms_over_ln']:.2f}); swiglu fused {1e3 * med['swiglu fused']:.2f} ms, silu(g)*u "
            f"{1e3 * med['silu(g) * u']:.2f} ms (x{row['fused_over_composed']:.2f})  [forward + backward, median of "
            f"{b.speed_repeats}]")
    return rows


# ---------------------------------------------------------------------------- figures


COLORS = {"layernorm": "tab:blue", "rmsnorm": "tab:orange"}


def style(name: str) -> dict:
    norm = "layernorm" if name.startswith("LN") else "rmsnorm"
    return dict(color=COLORS[norm], linestyle="-" if name.endswith("pre") else "--",
                marker={"gelu": "o", "swiglu": "s", "relu": "^"}[name.split("-")[1]])


def smooth(v, k: int = 10) -> tuple:
    """(steps, k-step means of v): a moving average, each value placed at the last step it covers."""
    v = np.asarray(v, dtype=np.float64)
    k = max(1, min(k, len(v) // 4))
    return np.arange(k - 1, len(v)), np.convolve(v, np.ones(k) / k, mode="valid")


def plot_grid(res: dict, path: Path) -> None:
    names = [name_of(v) for v in GRID]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw=dict(width_ratios=[1, 1.25]))
    means = [res[n]["final_mean"] for n in names]
    ax.barh(range(len(names)), means, xerr=[res[n]["final_std"] for n in names],
            color=[style(n)["color"] for n in names])
    for i, n in enumerate(names):
        if n.endswith("post"):
            ax.barh(i, means[i], color="none", edgecolor="black", hatch="//", linewidth=0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(min(means) - 0.1, max(means) + 0.05)
    ax.set_xlabel("final val loss (nats/char), mean ± std over seeds")
    ax.set_title("equal budget (hatched: post-norm)")
    for n in names:
        bx.plot(*smooth(res[n]["runs"][0]["loss"]), label=n, linewidth=1.2, **{k: v for k, v in style(n).items()
                                                                         if k != "marker"})
    bx.set_xlabel("step")
    bx.set_ylabel("train loss (10-step mean)")
    bx.set_ylim(None, min(3.5, bx.get_ylim()[1]))
    bx.set_title("training loss, seed 0 (dashed: post-norm)")
    bx.legend(fontsize=8.5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tied(res: dict, tied: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for n, r in tied.items():
        for run, label, width in ((r, "tied", 2.2), (res[n]["runs"][0], "untied", 1.0)):
            ax.plot(*smooth(run["loss"]), label=f"{n}, {label}", linewidth=width,
                    **{k: v for k, v in style(n).items() if k != "marker"}, alpha=1 if label == "tied" else 0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (10-step mean)")
    ax.set_title("tied vs untied embeddings (seed 0)")
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_dynamics(res: dict, path: Path) -> None:
    shown = ["LN-gelu-pre", "LN-gelu-post", "RMS-swiglu-pre", "RMS-swiglu-post"]
    fig, axes = plt.subplots(2, len(shown), figsize=(13, 7), sharex=True)
    for j, n in enumerate(shown):
        run = res[n]["runs"][0]
        g, r = np.asarray(run["grad_norm"]), np.asarray(run["update_ratio"])
        cmap = plt.get_cmap("viridis")
        for layer in range(g.shape[1]):
            c = cmap(layer / max(1, g.shape[1] - 1))
            axes[0, j].plot(*smooth(g[:, layer]), color=c, label=f"block {layer + 1}")
            axes[1, j].plot(*smooth(r[:, layer]), color=c)
        axes[0, j].set_yscale("log")
        axes[1, j].set_yscale("log")
        axes[0, j].set_title(n)
        axes[1, j].set_xlabel("step")
    axes[0, 0].set_ylabel("gradient norm per block")
    axes[1, 0].set_ylabel("‖Δθ‖ / ‖θ‖ per block")
    axes[0, 0].legend(fontsize=8.5)
    fig.suptitle("training dynamics by depth, seed 0 (10-step means; purple = block 1, yellow = last block)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sweep(sweep: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for n, row in sweep.items():
        lrs = list(row)
        vals = [row[lr] if np.isfinite(row[lr]) else np.nan for lr in lrs]
        ax.plot(lrs, vals, label=n, **style(n))
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final val loss (nats/char)")
    ax.set_title("learning-rate sensitivity (short runs; dashed: post-norm)")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


HIST_SHOWN = ["LN-gelu-pre", "LN-gelu-post", "RMS-swiglu-pre", "LN-relu-post"]


def plot_histograms(stats: dict, path: Path) -> None:
    """Per-layer histograms of the residual stream and of the MLP's hidden activations: at init (grey, every block
    alike) and trained (coloured by depth)."""
    shown = [n for n in HIST_SHOWN if n in stats["trained"]]
    fig, axes = plt.subplots(2, len(shown), figsize=(3.3 * len(shown), 7), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for j, n in enumerate(shown):
        for k, (key, what) in enumerate((("stream_sample", "residual stream"), ("mlp_sample", "MLP activation"))):
            ax = axes[k, j]
            init, trained = stats["init"][n], stats["trained"][n]
            for i, r in enumerate(init):
                ax.hist(r[key], bins=80, histtype="step", density=True, log=True, color="0.6", linestyle=":",
                        label="init (every block)" if i == 0 else None)
            for i, r in enumerate(trained):
                ax.hist(r[key], bins=80, histtype="step", density=True, log=True,
                        color=cmap(i / max(1, len(trained) - 1)), label=f"block {i + 1}")
            ax.set_title(f"{n}: {what}", fontsize=10)
            ax.set_xlabel("value")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("activation histograms by block: init (grey, dotted) and after training (purple = block 1, "
                 "yellow = last)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_depth(stats: dict, path: Path) -> None:
    names = list(stats["trained"])
    depth = np.arange(1, len(stats["trained"][names[0]]) + 1)
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    panels = [("stream_rms", "residual-stream RMS", True),
              ("stream_kurtosis", "residual-stream excess kurtosis", False),
              ("stream_top_channel", "largest channel RMS / stream RMS", False),
              ("mlp_kurtosis", "MLP activation excess kurtosis", True),
              ("grad_rms", "gradient RMS into the stream", True)]
    for ax, (key, label, log_y) in zip(axes.ravel(), panels):
        for n in names:
            ax.plot(depth, [r[key] for r in stats["trained"][n]], label=n, linewidth=1, markersize=4, **style(n))
        ax.set_xlabel("block")
        ax.set_title(label + " (trained)", fontsize=10.5)
        if log_y:
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7.5, ncol=2)
    ax = axes[1, 2]
    for n in [m for m in names if "relu" in m]:
        for when, mark in (("init", ":"), ("trained", "-")):
            ax.plot(depth, [100 * r["dead"] for r in stats[when][n]], linestyle=mark, marker="^",
                    color=style(n)["color"], alpha=1 if n.endswith("post") else 0.5, label=f"{n} ({when})")
    ax.set_xlabel("block")
    ax.set_ylabel("% of MLP units never positive")
    ax.set_title("dead ReLU units (one batch of tokens)", fontsize=10.5)
    ax.legend(fontsize=8)
    fig.suptitle("activations by depth after training (blue LayerNorm, orange RMSNorm; solid pre-norm, dashed "
                 "post-norm; o GELU, s SwiGLU, ^ ReLU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



# ---------------------------------------------------------------------------- main


def jsonable(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def summary(res: dict, sweep: dict, stats: dict, speed_rows: list) -> dict:
    """The numbers the chapter quotes (no per-step arrays or samples)."""
    out = {}
    if res:
        out["grid"] = {n: dict(params=r["params"], final_mean=r["final_mean"], final_std=r["final_std"],
                               finals=[run["final"] for run in r["runs"]],
                               grad_norm_last_by_seed=[run["grad_norm"][-1] for run in r["runs"]],
                               grad_norm_last=np.mean([run["grad_norm"][-1] for run in r["runs"]], axis=0),
                               grad_norm_first=np.mean([run["grad_norm"][0] for run in r["runs"]], axis=0),
                               update_ratio_mean=np.mean([np.mean(run["update_ratio"], axis=0) for run in r["runs"]],
                                                         axis=0))
                       for n, r in res.items() if not n.startswith("_")}
    if sweep:
        out["lr_sweep"] = {n: {str(lr): v for lr, v in row.items()} for n, row in sweep.items()}
    if stats:
        out["depth"] = {when: {n: [{k: v for k, v in r.items() if not k.endswith("sample")} for r in rows]
                               for n, rows in group.items()} for when, group in stats.items()}
    if speed_rows:
        out["speed"] = speed_rows
    return out


def main(argv=None) -> dict:
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for the 10_*.png figures and 10_*.json (default "
                   "docs/figures; --quick: out/labs/10_norms_activations-quick)")
    p.add_argument("--seed", type=int, default=0, help="the seed of part 2's runs")
    p.add_argument("--parts", default="01234", help="which parts to run, e.g. 24 (default 01234: all; 3 needs 1; "
                   "0 alone, the corpus's facts, writes no JSON)")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/10_norms_activations-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    b = QUICK if args.quick else FULL
    runtime.keep_host_memory()
    t_start, machine_at_start = time.perf_counter(), machine()
    res, sweep, stats, speed_rows, tied, corpus = {}, {}, {}, [], {}, {}
    data = Stories(b, 0) if set("0123") & set(args.parts) else None
    if "0" in args.parts:
        V, unigram = corpus_facts(data)
        corpus = dict(vocab_size=V, unigram_val_loss=unigram)
        print(f"0. The corpus: {V} characters; a model that predicts only their frequencies (the train split's) scores "
              f"{unigram:.4f} nats/char on the validation split")
        if not set("1234") & set(args.parts):
            return {"vocab_size": V, "unigram_val_loss": unigram}

    if "1" in args.parts:
        print(f"1. The grid: {b.n_layer} blocks, d_model {b.d_model}, {b.n_head} heads, no biases, context "
              f"{b.context}, batch {b.batch}, {b.steps} steps at peak lr {b.lr}, seeds {list(b.seeds)}")
        res = grid(data, b)
        print(f"\n1b. Tied input and output embeddings (GPT-2's choice), seed {b.seeds[0]}")
        tied = tying(data, b, b.seeds[0])
        plot_grid(res, args.out / "10_grid.png")
        plot_tied(res, tied, args.out / "10_tied.png")
        plot_dynamics(res, args.out / "10_dynamics.png")
    if "2" in args.parts:
        print(f"\n2. Learning-rate sweep: {b.sweep_steps} steps (warmup {max(1, b.sweep_steps // 10)}), seed "
              f"{args.seed}; final val loss (nan: the loss went non-finite)")
        sweep = lr_sweep(data, b, args.seed)
        plot_sweep(sweep, args.out / "10_lr_sweep.png")
    if "3" in args.parts and res:
        print("\n3. Activations by depth (hooks), one validation batch")
        stats = depth_stats({"init": res["_init"], "trained": res["_trained"]}, data)
        plot_depth(stats, args.out / "10_depth.png")
        plot_histograms(stats, args.out / "10_histograms.png")
    if "4" in args.parts:
        print("\n4. Speed (float32, host kernels), forward + backward")
        speed_rows = speed(b)
    report = dict(corpus=corpus, **summary(res, sweep, stats, speed_rows)) if corpus else summary(res, sweep, stats,
                                                                                                   speed_rows)
    if tied:
        report["tied"] = {n: dict(final=r["final"], val=r["val"], grad_norm_last=r["grad_norm"][-1])
                          for n, r in tied.items()}
    report["seconds"] = time.perf_counter() - t_start
    report["machine"] = dict(start=machine_at_start, end=machine())
    command = " ".join(["python examples/10_norms_activations.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "10_norms_activations.json").write_text(json.dumps(dict(command=command, **report), indent=1,
                                                                   default=jsonable) + "\n")
    print(f"\nfigures and 10_norms_activations.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
