"""Lab 2: positional encodings on equal terms — learned, sinusoidal, RoPE, ALiBi and none.

Attention is a weighted average over a *set* of tokens: without help it cannot
tell "dog bites man" from "man bites dog". A positional encoding is that help.
This lab trains the same small character model on tinyshakespeare once per
``GPTConfig.pos_encoding`` on an equal budget (the same steps, batch, learning
rate, seed and evaluation batches) and compares:

1. val-loss curves and parameter counts (only "learned" has a table, wpe: T x C);
2. length generalization: trained at context T, evaluated at T, 2T and 4T
   (the same weights in a GPTConfig with a longer context_length). "learned" has
   T rows and cannot go past T; the others are functions of position (or of
   distance) and run at any length. Per-position loss shows where each breaks;
3. attention against distance: for the last query of a window, the first
   layer's attention to each earlier key (mean over windows, per head), and the
   encoding's own closed-form picture (sinusoidal PE·PE, RoPE's score decay,
   ALiBi's bias; learned: the cosine between trained rows of wpe).

The attention-collapse ablation (no positions, no mask) is lab 2b
(examples/02b_position_ablation.py); it reuses the models trained here.

    python examples/02_positional.py            # ~4 min of CPU (trains 5 models once); docs/figures/02-*.png
                                                # and 02_positional.json
    python examples/02_positional.py --quick    # tiny budget (CI), ~15 s; figures in out/labs/02-positional-quick
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import prepare_data  # noqa: E402
from tinyllm.nn import GPT  # noqa: E402
from tinyllm.nn.config import POS_ENCODINGS  # noqa: E402
from tinyllm.train import preset, read_metrics, train_or_load  # noqa: E402
from tinyllm.viz.attention_maps import attention_weights  # noqa: E402

PRESET = "shakespeare-char-cpu"
# One budget for every encoding: only pos_encoding changes between runs (and out_dir, where it is written).
FULL = dict(max_iters=600, eval_interval=50, eval_iters=10, batch_size=16, n_layer=4, n_head=4, d_model=64,
            context_length=64, learning_rate=3e-3, min_lr=3e-4, warmup_iters=60, sample_tokens=0)
QUICK = dict(max_iters=30, eval_interval=10, eval_iters=2, batch_size=8, n_layer=2, n_head=2, d_model=32,
             context_length=16, learning_rate=3e-3, min_lr=3e-4, warmup_iters=3, sample_tokens=0)
FACTORS = (1, 2, 4)  # evaluation lengths, in units of the training context T


# ---------------------------------------------------------------------------- training


def train_all(quick: bool = False, runs: Path | None = None, progress: bool = False, seed: int | None = None,
              log=print) -> dict:
    """{encoding: ReusedRun}: one run per pos_encoding on the same budget, in runs/<encoding>
    (reused when a finished run with the same configs is there, see tinyllm.train.train_or_load).

    seed: the training seed of every run (initial weights and batches); None: the preset's (1337)."""
    default = "out/labs/02-positional" + ("-quick" if quick else "") + ("" if seed is None else f"-seed{seed}")
    runs = Path(runs or default)
    extra = {} if seed is None else {"seed": seed}
    out = {}
    for enc in POS_ENCODINGS:
        t0 = time.perf_counter()
        cfg, fields = preset(PRESET, out_dir=str(runs / enc), pos_encoding=enc, **(QUICK if quick else FULL), **extra)
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
        with quiet:  # the loop's "step N: ..." lines; its numbers are in runs/<encoding>/metrics.jsonl
            out[enc] = r = train_or_load(cfg, fields, progress=progress, log=lambda *a: None)
        log(f"  {enc:<11} {r.model.num_parameters():>9,} params  val loss {r.val_loss:.4f}  "
            f"[{'trained' if r.trained else 'reused'}, {time.perf_counter() - t0:.0f} s]")
    return out


def val_curve(run) -> list:
    """[(step, val_loss)] of a run, from its metrics.jsonl."""
    return [(r["step"], r["val_loss"]) for r in read_metrics(Path(run.out_dir) / "metrics.jsonl") if r.get("eval")]


def embedding_scales(model: GPT) -> dict:
    """RMS of the token vectors and of the position vectors as the model adds them, x = tok + pos
    (position None for rope, alibi, none: nothing is added).

    learned:    tok = wte[idx], pos = wpe[p]; both start at GPT-2's N(0, 0.02²).
    sinusoidal: tok = √C · wte[idx], pos = PE[p] (Vaswani et al. §3.4; GPT.hidden_states). The sines have
                RMS 1/√2 = 0.707 by construction; unscaled, 0.02-scale token vectors would be ~35x quieter.
    Example: C = 64, wte RMS 0.09 -> the token vectors added are 8 · 0.09 = 0.72, level with the sines.
    """
    c = model.config
    tok = tinyllm.to_numpy(model.transformer.wte.weight.data).astype(np.float64)  # (V, C)
    pos = None
    if c.pos_encoding == "learned":
        pos = tinyllm.to_numpy(model.transformer.wpe.weight.data).astype(np.float64)  # (T, C)
    elif c.pos_encoding == "sinusoidal":
        from tinyllm.nn.positional import sinusoidal_table

        # subtle: the model scales wte by √C before adding PE; the raw rows of wte are not what PE is added to.
        tok = tok * np.sqrt(c.d_model)
        pos = np.asarray(sinusoidal_table(c.context_length, c.d_model), dtype=np.float64)  # (T, C)
    rms = lambda a: float(np.sqrt((a ** 2).mean()))  # noqa: E731
    return {"token_rms": rms(tok), "position_rms": None if pos is None else rms(pos)}


def val_windows(n: int, length: int, seed: int = 0):
    """n fixed (x, y) windows of `length` characters from tinyshakespeare's val split: int64 (n, length) each."""
    _, ds = prepare_data("tinyshakespeare", "char")
    rng = np.random.default_rng([seed, 2])
    starts = rng.integers(0, len(ds.val) - length - 1, size=n)
    w = np.asarray(ds.val)[starts[:, None] + np.arange(length + 1)].astype(np.int64)  # (n, length+1)
    return w[:, :-1], w[:, 1:]


# ---------------------------------------------------------------------------- length generalization


def stretched(model: GPT, context_length: int) -> GPT:
    """The same weights in a GPT whose context is context_length (positions are computed, not looked up).

    Raises ValueError for "learned": its table wpe has one row per trained position and nothing to
    say about position T (the state dict's wpe would not even fit the longer table)."""
    if model.config.pos_encoding == "learned":
        raise ValueError(f"a learned position table has {model.config.context_length} rows; "
                         f"it cannot encode positions >= {model.config.context_length}")
    longer = GPT(dataclasses.replace(model.config, context_length=context_length))
    longer.load_state_dict(model.state_dict())
    return longer.eval()


def per_position_loss(model: GPT, x: np.ndarray, y: np.ndarray, batch: int = 16) -> np.ndarray:
    """Mean cross-entropy (nats) at each position of the windows (n, L) -> (L,), in eval mode, no graph."""
    model.eval()
    total = np.zeros(x.shape[1])
    with tinyllm.no_grad():
        for i in range(0, len(x), batch):
            logits = tinyllm.to_numpy(model(x[i:i + batch])[0].data).astype(np.float64)  # (b, L, V)
            logits -= logits.max(-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # log softmax
            total += -np.take_along_axis(logp, y[i:i + batch, :, None], -1)[..., 0].sum(0)
    return total / len(x)


def length_generalization(models: dict, x: np.ndarray, y: np.ndarray, T: int, log=print) -> dict:
    """{encoding: {"loss_at": {"1T": mean loss on windows of T, "2T": ..., "4T": ...} (None where impossible),
    "per_position": loss per position on windows of 4T (T for learned), "beyond": mean loss at positions
    [T, 2T) and [2T, 4T) of the 4T windows}}; x, y are windows of FACTORS[-1]·T tokens."""
    out = {}
    for enc, model in models.items():
        loss_at, curve = {}, None
        for f in FACTORS:
            L = f * T
            try:
                m = model if f == 1 else stretched(model, L)
            except ValueError as err:
                loss_at[f"{f}T"], why = None, str(err)
                continue
            c = per_position_loss(m, x[:, :L], y[:, :L])
            loss_at[f"{f}T"], curve = float(c.mean()), c
        out[enc] = {"loss_at": loss_at, "per_position": curve.tolist(),
                    "beyond": {f"[{a}T,{b}T)": float(curve[a * T:b * T].mean()) if len(curve) >= b * T else None
                               for a, b in ((0, 1), (1, 2), (2, 4))}}
        row = "  ".join(f"{k} {v:.3f}" if v is not None else f"{k}   n/a" for k, v in loss_at.items())
        log(f"  {enc:<11} val loss on windows of {row}" + ("" if loss_at[f"{FACTORS[-1]}T"] else f"   ({why})"))
    return out


# ---------------------------------------------------------------------------- attention against distance


def first_layer_attention(model: GPT, x: np.ndarray) -> np.ndarray:
    """The first block's attention probabilities on windows x (n, T): (n, nh, T, T), host float32."""
    return attention_weights(model, x)[:, 0]  # (n, L, nh, T, T) -> the first layer


def attention_by_distance(P: np.ndarray) -> np.ndarray:
    """For the last query (i = T-1), the mean attention to the key at distance d = 0..T-1: (nh, T).

    Uniform attention would give 1/T at every distance."""
    return P[:, :, -1, ::-1].mean(0)  # (n, nh, T) keys reversed: index d is key T-1-d


def closed_form(model: GPT) -> dict:
    """What the encoding itself says about a query at position m = T-1 and a key at m - d, d = 0..T-1.

    sinusoidal: PE(m)·PE(m-d) / (C/2) = mean_i cos(ω_i d)    (depends on d only)
    rope:       q·R(d)k / hs with q = k = (1, ..., 1): mean_i cos(d θ_i), RoFormer §3.4.3's decay
    alibi:      the bias -slope_h · d added to head h's scores (one curve per head)
    learned:    cos(wpe[m], wpe[m-d]) of the trained table (a picture of what was learned)
    none:       nothing: the score depends on the tokens only
    """
    c = model.config
    T = c.context_length
    pos = np.arange(T)
    if c.pos_encoding == "sinusoidal":
        from tinyllm.nn.positional import sinusoidal_table

        pe = np.asarray(sinusoidal_table(pos, c.d_model), dtype=np.float64)  # (T, C)
        return {"label": "PE(m)·PE(m-d) / (C/2)", "curves": [(pe[::-1] @ pe[-1] / (c.d_model / 2)).tolist()]}
    if c.pos_encoding == "rope":
        from tinyllm.nn.positional import apply_rope, rope_cos_sin

        cos, sin = (np.asarray(a, dtype=np.float64) for a in rope_cos_sin(pos, c.head_dim, c.rope_theta))
        ones = tinyllm.tensor(np.ones((T, c.head_dim), dtype=np.float32))
        r = tinyllm.to_numpy(apply_rope(ones, cos, sin).data).astype(np.float64)  # (T, hs): 1s rotated by m·θ
        return {"label": "q·R(d)k / hs, q = k = 1", "curves": [(r[::-1] @ r[-1] / c.head_dim).tolist()]}
    if c.pos_encoding == "alibi":
        from tinyllm.nn.positional import alibi_bias

        bias = np.asarray(alibi_bias(c.n_head, np.array([T - 1]), pos), dtype=np.float64)  # (nh, 1, T)
        return {"label": "bias −slope_h·d (per head)", "curves": bias[:, 0, ::-1].tolist()}
    if c.pos_encoding == "learned":
        w = tinyllm.to_numpy(model.transformer.wpe.weight.data).astype(np.float64)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        return {"label": "cos(wpe[m], wpe[m-d]), trained", "curves": [(w[::-1] @ w[-1]).tolist()]}
    return {"label": "no positional term", "curves": [np.zeros(T).tolist()]}


# ---------------------------------------------------------------------------- figures


def plot_curves(curves: dict, params: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for enc, curve in curves.items():
        s, v = zip(*curve)
        ax.plot(s, v, label=f"{enc} ({params[enc]:,} params)")
    ax.set_ylim(top=min(3.4, max(v for c in curves.values() for _, v in c)))
    ax.set(xlabel="step", ylabel="val loss (nats/char)", title="tinyshakespeare, one budget per encoding")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_length(gen: dict, T: int, path: Path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    k = max(1, T // 8)  # moving average over k positions: one window's loss is noisy
    for enc, g in gen.items():
        c = np.asarray(g["per_position"])
        ax.plot(np.arange(len(c) - k + 1) + (k - 1) / 2, np.convolve(c, np.ones(k) / k, "valid"), label=enc)
        xs = [f for f in FACTORS if g["loss_at"][f"{f}T"] is not None]
        bx.plot(xs, [g["loss_at"][f"{f}T"] for f in xs], "o-", label=enc)
    for m in FACTORS[:-1]:
        ax.axvline(m * T, color="k", lw=0.8, ls="--")
    ax.set(xlabel=f"position in a window of {FACTORS[-1]}T = {FACTORS[-1] * T} (trained at T = {T})",
           ylabel=f"val loss (nats/char, moving mean of {k})", title="loss per position")
    bx.set(xlabel="evaluation length / training length", ylabel="mean val loss over the window",
           xticks=list(FACTORS), title="train at T, test at 2T, 4T")
    for a in (ax, bx):
        a.grid(alpha=0.3)
        a.set_yscale("log")
    bx.legend()
    _save(fig, path)


def plot_distance(profiles: dict, forms: dict, path: Path) -> None:
    encs = list(profiles)
    fig, axes = plt.subplots(2, len(encs), figsize=(3.3 * len(encs), 6), squeeze=False)
    for j, enc in enumerate(encs):
        prof = np.asarray(profiles[enc])  # (nh, T)
        d = np.arange(prof.shape[1])
        ax = axes[0, j]
        for h in prof:
            ax.plot(d, h, lw=0.7, alpha=0.6)
        ax.plot(d, prof.mean(0), "k", lw=2, label="mean of heads")
        ax.axhline(1 / len(d), color="grey", ls=":", label="uniform 1/T")
        ax.set(yscale="log", title=f"{enc}: layer-1 attention", xlabel="distance d = query - key")
        bx = axes[1, j]
        for curve in forms[enc]["curves"]:
            bx.plot(d, curve, lw=1)
        bx.set(title=forms[enc]["label"], xlabel="distance d")
        for a in (ax, bx):
            a.grid(alpha=0.3)
    axes[0, 0].set_ylabel("attention of the last query")
    axes[1, 0].set_ylabel("the encoding itself")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budget (CI)")
    p.add_argument("--runs", type=Path, default=None,
                   help="folder of the trained runs, one per encoding (default out/labs/02-positional[-quick])")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for 02-*.png and 02_positional.json (default docs/figures; with --quick "
                        "out/labs/02-positional-quick/figures; with --seed N out/labs/02-positional-seedN/figures)")
    p.add_argument("--windows", type=int, default=None, help="val windows for the evaluations (default 128; 16 quick)")
    p.add_argument("--progress", action="store_true", help="progress bars while training")
    p.add_argument("--seed", type=int, default=None, help="training seed of every run (default: the preset's, 1337)")
    args = p.parse_args(argv)
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between training steps
    seed = preset(PRESET)[0].seed if args.seed is None else args.seed
    out = args.out or Path("out/labs/02-positional-quick/figures" if args.quick else
                           "docs/figures" if args.seed is None else f"out/labs/02-positional-seed{seed}/figures")
    budget = QUICK if args.quick else FULL
    n_win = args.windows or (16 if args.quick else 128)
    T = budget["context_length"]
    t_start = time.perf_counter()

    print(f"1. One model per encoding, equal budget: {budget['n_layer']} layers, d_model {budget['d_model']}, "
          f"{budget['n_head']} heads, T={T}, batch {budget['batch_size']}, {budget['max_iters']} steps at lr "
          f"{budget['learning_rate']} (seed {seed} for all)")
    runs = train_all(args.quick, args.runs, args.progress, args.seed)
    models = {enc: r.model.eval() for enc, r in runs.items()}
    curves = {enc: val_curve(r) for enc, r in runs.items()}
    params = {enc: m.num_parameters() for enc, m in models.items()}
    scales = {enc: embedding_scales(m) for enc, m in models.items()}
    for enc, sc in scales.items():
        if sc["position_rms"] is not None:
            print(f"  {enc}: after training, RMS of the token vectors {sc['token_rms']:.3f}"
                  + (" (√d_model · wte rows, as added)" if enc == "sinusoidal" else "")
                  + f", of the position vectors {sc['position_rms']:.3f}")
    report = {"budget": budget, "seed": seed, "windows": n_win, "params": params, "curves": curves,
              "final_val_loss": {enc: c[-1][1] for enc, c in curves.items()}, "embedding_rms": scales}
    plot_curves(curves, params, out / "02-val-loss.png")

    print(f"\n2. Length generalization: trained at T={T}, evaluated on {n_win} val windows of "
          + ", ".join(f"{f * T}" for f in FACTORS))
    x, y = val_windows(n_win, FACTORS[-1] * T)
    report["length"] = gen = length_generalization(models, x, y, T)
    plot_length(gen, T, out / "02-length.png")

    print("\n3. Attention against distance (first layer, last query of each window)")
    profiles, forms = {}, {}
    for enc, model in models.items():
        prof = attention_by_distance(first_layer_attention(model, x[:, :T]))
        profiles[enc], forms[enc] = prof.tolist(), closed_form(model)
        mean = prof.mean(0)
        print(f"  {enc:<11} attention to d=0 {mean[0]:.3f}, to d<=3 {mean[:4].sum():.3f}, to d>=T/2 "
              f"{mean[T // 2:].sum():.3f} (uniform: {1 / T:.3f}, {4 / T:.3f}, {(T - T // 2) / T:.3f})")
    report["attention_by_distance"], report["closed_form"] = profiles, forms
    plot_distance(profiles, forms, out / "02-distance.png")

    out.mkdir(parents=True, exist_ok=True)
    (out / "02_positional.json").write_text(json.dumps(report, indent=1))
    print(f"\nfigures and 02_positional.json in {out}; total {time.perf_counter() - t_start:.0f} s")
    return report


if __name__ == "__main__":
    main()
