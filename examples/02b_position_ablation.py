"""Lab 2b: take the positions away. Attention collapse, permutation equivariance, and the causal mask's leak.

Uses the five models of lab 2 (examples/02_positional.py: one per pos_encoding,
trained on an equal budget; trained there first if absent) and asks:

1. Collapse. Per head: the entropy of its attention rows relative to uniform
   (H_i / ln(i+1), 1 = uniform over the i+1 visible keys), and the mass it puts
   on the first token. Share of heads that attend near-uniformly (>= 0.9) or park
   on the first token (>= 0.5 of the mass, for queries in the second half), next
   to each model's val loss.
2. Permutation equivariance. Without positions and without the causal mask
   (``causal = False`` on every attention module), self-attention treats the
   tokens as a set: permuting the input permutes the outputs the same way.
   Measured as max |logits(x[π]) - logits(x)[π]| for every encoding, causal or not.
3. The causal mask leaks position. Query t sees t+1 keys; at initialization the
   scores are ~0, so its attention is uniform, 1/(t+1), and its output is a mean
   of t+1 values: its variance across windows falls as 1/(t+1) (measured: the
   slope of log Var against log(t+1)). And a linear probe (ridge regression)
   reads the position t from the residual stream of a NoPE model, causal
   (trained and at init), but not from the same trained weights without the mask.

    python examples/02b_position_ablation.py          # figures docs/figures/02-collapse.png, 02-leak.png
    python examples/02b_position_ablation.py --quick  # lab 2's quick models (CI)
"""

from __future__ import annotations

import argparse
import json
import runpy
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import backend, runtime  # noqa: E402
from tinyllm.nn import GPT  # noqa: E402
from tinyllm.nn.attention import CausalSelfAttention  # noqa: E402
from tinyllm.train import load_checkpoint  # noqa: E402
from tinyllm.viz.attention_maps import attention_weights  # noqa: E402

UNIFORM, SINK = 0.9, 0.5  # a head is "near-uniform" at relative entropy >= 0.9, a "first-token sink" at >= 0.5 mass


def lab2() -> dict:
    """The namespace of examples/02_positional.py (train_all, val_windows, ...), loaded on first use."""
    return runpy.run_path(str(Path(__file__).with_name("02_positional.py")))


def set_causal(model: GPT, causal: bool) -> GPT:
    """Set ``causal`` on every attention module (False: every query sees every key)."""
    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            m.causal = causal
    return model


# ---------------------------------------------------------------------------- 1. collapse


def all_attention(model: GPT, x: np.ndarray) -> np.ndarray:
    """Attention probabilities of every layer on windows x (n, T): (L, n, nh, T, T), layer first."""
    return np.moveaxis(attention_weights(model, x), 1, 0)  # (n, L, nh, T, T) -> (L, n, nh, T, T)


def head_stats(P: np.ndarray) -> dict:
    """Per head (L, nh): relative entropy mean_i H_i / ln(i+1) over queries i >= 1 (1 = uniform over the
    causal window, 0 = one key), and the first token's mass mean P[i, 0] over queries i >= T/2."""
    L, n, nh, T, _ = P.shape
    H = -(P * np.log(np.where(P > 0, P, 1.0))).sum(-1)  # (L, n, nh, T); 0·log 0 = 0
    rel = (H[..., 1:] / np.log(np.arange(2, T + 1))).mean(axis=(1, 3))  # (L, nh)
    first = P[..., T // 2:, 0].mean(axis=(1, 3))  # (L, nh)
    return {"relative_entropy": rel, "first_token": first}


def collapse_table(models: dict, losses: dict, x: np.ndarray, log=print) -> dict:
    out = {}
    log(f"  {'encoding':<11}{'val loss':>9}{'H/H_unif':>10}{'uniform heads':>15}{'first-token heads':>19}"
        f"{'max first-token mass':>22}")
    for enc, model in models.items():
        s = head_stats(all_attention(model, x))
        rel, first = s["relative_entropy"], s["first_token"]
        row = {"val_loss": losses[enc], "mean_relative_entropy": float(rel.mean()),
               "share_uniform": float((rel >= UNIFORM).mean()), "share_first_token": float((first >= SINK).mean()),
               "max_first_token": float(first.max()),
               "relative_entropy": rel.tolist(), "first_token": first.tolist()}
        out[enc] = row
        log(f"  {enc:<11}{row['val_loss']:>9.4f}{row['mean_relative_entropy']:>10.3f}{row['share_uniform']:>15.0%}"
            f"{row['share_first_token']:>19.0%}{row['max_first_token']:>22.3f}")
    return out


# ---------------------------------------------------------------------------- 2. permutation equivariance


def equivariance_gap(model: GPT, x: np.ndarray, perm: np.ndarray, causal: bool) -> float:
    """max |logits(x[:, perm]) - logits(x)[:, perm]| with the mask on (causal) or off."""
    set_causal(model, causal).eval()
    with tinyllm.no_grad():
        a = tinyllm.to_numpy(model(x[:, perm])[0].data)
        b = tinyllm.to_numpy(model(x)[0].data)[:, perm]
    set_causal(model, True)
    return float(np.abs(a - b).max())


def equivariance_table(models: dict, x: np.ndarray, seed: int = 0, log=print) -> dict:
    perm = np.random.default_rng([seed, 3]).permutation(x.shape[1])
    out = {}
    log(f"  {'encoding':<11}{'causal':>10}{'no mask':>10}    max |logits(x[π]) - logits(x)[π]|")
    for enc, model in models.items():
        out[enc] = {"causal": equivariance_gap(model, x, perm, True),
                    "bidirectional": equivariance_gap(model, x, perm, False)}
        log(f"  {enc:<11}{out[enc]['causal']:>10.2e}{out[enc]['bidirectional']:>10.2e}")
    return out


# ---------------------------------------------------------------------------- 3. the causal mask's leak


def residual_streams(model: GPT, x: np.ndarray) -> list:
    """[x_0 = token (+ position) embedding, x_1, ..., x_L after each block], host float64 (n, T, C) each."""
    c = model.config
    if c.pos_encoding not in ("none", "learned"):
        raise ValueError(f"residual_streams reads NoPE and learned models, not {c.pos_encoding!r}")
    model.eval()
    with tinyllm.no_grad():
        h = model.transformer.wte(backend.asarray(x, device=model.device))  # (n, T) -> (n, T, C)
        if c.pos_encoding == "learned":
            h = h + model.transformer.wpe(backend.asarray(np.arange(x.shape[1]), device=model.device))  # + (T, C)
        out = [h]
        for block in model.transformer.h:
            out.append(h := block(h))
    return [tinyllm.to_numpy(t.data).astype(np.float64) for t in out]


def probe_r2(H: np.ndarray, half: int, ridge: float = 1e-3) -> float:
    """R² on held-out windows of a ridge regression from hidden states H (n, T, C) to the position t.

    Fit on windows [0, half), test on [half, n). Features standardized with the training statistics."""
    n, T, C = H.shape
    t = np.broadcast_to(np.arange(T, dtype=np.float64), (n, T))
    Xtr, Xte = H[:half].reshape(-1, C), H[half:].reshape(-1, C)  # (n·T, C)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-8
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    ytr, yte = t[:half].reshape(-1), t[half:].reshape(-1)
    A = np.c_[Xtr, np.ones(len(Xtr))]  # a bias column
    w = np.linalg.solve(A.T @ A + ridge * len(A) * np.eye(C + 1), A.T @ (ytr - ytr.mean()))
    pred = np.c_[Xte, np.ones(len(Xte))] @ w + ytr.mean()
    return float(1.0 - ((yte - pred) ** 2).sum() / ((yte - yte.mean()) ** 2).sum())


def first_layer_output_variance(model: GPT, x: np.ndarray) -> np.ndarray:
    """Var over windows of the first attention layer's output at each position, summed over channels: (T,).

    With uniform attention the output at t is W·(mean of t+1 values) (+ bias): variance ∝ 1/(t+1)."""
    model.eval()
    with tinyllm.no_grad():
        h = model.transformer.wte(backend.asarray(x, device=model.device))  # (n, T, C)
        b = model.transformer.h[0]
        a = tinyllm.to_numpy(b.attn(b.ln_1(h)).data).astype(np.float64)  # (n, T, C)
    return a.var(axis=0).sum(-1)


def leak(models: dict, init_none: GPT, x: np.ndarray, log=print) -> dict:
    half = len(x) // 2
    subjects = {"none, causal (trained)": (models["none"], True), "none, causal (init)": (init_none, True),
                "none, no mask (trained weights)": (models["none"], False),
                "learned, causal (trained)": (models["learned"], True)}
    probes = {}
    log("  linear probe for the position t: held-out R² per layer (x_0 = embeddings, x_L = last block)")
    for name, (model, causal) in subjects.items():
        set_causal(model, causal)
        probes[name] = [probe_r2(H, half) for H in residual_streams(model, x)]
        set_causal(model, True)
        log(f"  {name:<33}" + " ".join(f"{r:>6.3f}" for r in probes[name]))
    T = x.shape[1]
    var, ent = {}, {}
    for name, model in (("init", init_none), ("trained", models["none"])):
        v = first_layer_output_variance(model, x)
        slope = float(np.polyfit(np.log(np.arange(1, T + 1)), np.log(v), 1)[0])
        P = all_attention(model, x)[0]  # (n, nh, T, T): the first layer
        H = -(P * np.log(np.where(P > 0, P, 1.0))).sum(-1).mean(axis=(0, 1))  # (T,)
        var[name] = {"variance": v.tolist(), "slope": slope}
        ent[name] = {"entropy": H.tolist(), "relative": float((H[1:] / np.log(np.arange(2, T + 1))).mean())}
        log(f"  NoPE {name:<8} first layer: attention entropy / ln(t+1) = {ent[name]['relative']:.3f}; "
            f"output variance ∝ (t+1)^{slope:.2f}   (uniform averaging: 1.000 and -1)")
    return {"probe_r2": probes, "first_layer_variance": var, "first_layer_entropy": ent}


# ---------------------------------------------------------------------------- figures


def plot_collapse(table: dict, path: Path) -> None:
    """One heatmap per encoding (layers x heads: relative entropy, with the first-token mass under it), three to
    a row, and the shares of head types in the last panel."""
    encs = list(table)
    cols = 3
    rows = (len(encs) + 1 + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.6 * rows), squeeze=False, layout="constrained")
    axes = axes.ravel()
    for ax, enc in zip(axes, encs):
        rel, first = np.asarray(table[enc]["relative_entropy"]), np.asarray(table[enc]["first_token"])
        im = ax.imshow(rel, vmin=0, vmax=1, cmap="viridis")
        for (layer, h), r in np.ndenumerate(rel):
            color = "w" if r < 0.6 else "k"
            ax.text(h, layer - 0.12, f"{r:.2f}", ha="center", va="center", fontsize=11, color=color)
            ax.text(h, layer + 0.25, f"{first[layer, h]:.2f}", ha="center", va="center", fontsize=8.5, color=color)
        ax.set_title(f"{enc} (val loss {table[enc]['val_loss']:.3f})", fontsize=11)
        ax.set_xticks(range(rel.shape[1]), [f"head {h}" for h in range(rel.shape[1])], fontsize=9)
        ax.set_yticks(range(rel.shape[0]), [f"layer {layer}" for layer in range(rel.shape[0])], fontsize=9)
        ax.tick_params(length=0)
    bx = axes[len(encs)]
    xs = np.arange(len(encs))
    bx.bar(xs - 0.2, [table[e]["share_uniform"] for e in encs], 0.4, label=f"near-uniform (≥ {UNIFORM})")
    bx.bar(xs + 0.2, [table[e]["share_first_token"] for e in encs], 0.4, label=f"first-token sink (≥ {SINK})")
    bx.set_xticks(xs, encs, rotation=30, fontsize=9)
    bx.set_ylim(0, 1.3)
    bx.set_yticks([0, 0.25, 0.5, 0.75, 1])
    bx.set_ylabel("share of heads", fontsize=10)
    bx.set_title("head types", fontsize=11)
    bx.legend(fontsize=9, loc="upper center")
    for ax in axes[len(encs) + 1:]:
        ax.axis("off")
    fig.suptitle("Per head: attention entropy relative to uniform (large number, color) and mass on the first "
                 "token (small number)", fontsize=11)
    fig.colorbar(im, ax=list(axes[:cols]), shrink=0.9).set_label("H / H_uniform", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_leak(result: dict, path: Path) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r2 in result["probe_r2"].items():
        ax.plot(range(len(r2)), r2, "o-", label=name)
    ax.set(xlabel="layer (0 = embeddings)", ylabel="held-out R²", title="a linear probe for the position t",
           xticks=range(len(next(iter(result["probe_r2"].values())))),
           ylim=(min(-0.1, min(min(v) for v in result["probe_r2"].values())), 1.05))
    ax.legend(fontsize=7)
    for name, v in result["first_layer_variance"].items():
        v = np.asarray(v["variance"])
        t1 = np.arange(1, len(v) + 1)
        bx.loglog(t1, v, label=f"NoPE {name} (slope {result['first_layer_variance'][name]['slope']:.2f})")
        bx.loglog(t1, v[0] / t1, "k:", lw=0.8)
    bx.set(xlabel="t + 1 (keys the query sees)", ylabel="Var over windows (sum over channels)",
           title="first attention layer's output (dotted: ∝ 1/(t+1))")
    bx.legend(fontsize=7)
    for a in (ax, bx):
        a.grid(alpha=0.3, which="both")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="lab 2's tiny models (CI)")
    p.add_argument("--runs", type=Path, default=None,
                   help="lab 2's runs folder (default out/labs/02-positional[-quick])")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for 02-collapse.png, 02-leak.png and 02b_position_ablation.json (default "
                        "docs/figures; with --quick out/labs/02-positional-quick/figures)")
    p.add_argument("--windows", type=int, default=None, help="val windows (default 128; 16 quick)")
    p.add_argument("--seed", type=int, default=None, help="lab 2's training seed (default: the preset's, 1337)")
    args = p.parse_args(argv)
    out = args.out or Path("out/labs/02-positional-quick/figures" if args.quick else
                           "docs/figures" if args.seed is None else f"out/labs/02-positional-seed{args.seed}/figures")
    n_win = args.windows or (16 if args.quick else 128)
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between training steps
    t_start = time.perf_counter()
    lab = lab2()
    print("lab 2's models (one per encoding, equal budget):")
    runs = lab["train_all"](args.quick, args.runs, seed=args.seed)
    models = {enc: r.model.eval() for enc, r in runs.items()}
    losses = {enc: r.val_loss for enc, r in runs.items()}
    T = models["none"].config.context_length
    x, _ = lab["val_windows"](n_win, T, seed=1)
    report = {"windows": n_win, "T": T, "thresholds": {"uniform": UNIFORM, "first_token": SINK}}

    print(f"\n1. Attention collapse ({n_win} val windows of T={T}; heads: relative entropy >= {UNIFORM} "
          f"= near-uniform, first-token mass >= {SINK} = sink)")
    report["collapse"] = collapse_table(models, losses, x)
    plot_collapse(report["collapse"], out / "02-collapse.png")

    print("\n2. Permutation equivariance (one random permutation of the positions)")
    report["equivariance"] = equivariance_table(models, x[:8])

    print("\n3. The causal mask leaks position")
    tinyllm.manual_seed(load_checkpoint(runs["none"].out_dir)["train_config"]["seed"])  # as train() does before
    init_none = GPT(models["none"].config).eval()  # ... building the model: the NoPE run's initial weights
    report["leak"] = leak(models, init_none, x)
    plot_leak(report["leak"], out / "02-leak.png")

    out.mkdir(parents=True, exist_ok=True)
    (out / "02b_position_ablation.json").write_text(json.dumps(report, indent=1))
    print(f"\nfigures and 02b_position_ablation.json in {out}; total {time.perf_counter() - t_start:.0f} s")
    return report


if __name__ == "__main__":
    main()
