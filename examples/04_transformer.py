"""Lab 4: the transformer block, piece by piece; how deep; and what Q, K and V are for.

1. One pre-norm block built by hand from tinyllm modules (LayerNorm, the fused
   QKV Linear, scores, causal mask, softmax, heads, residual, MLP), printing the
   shape after each step, and checked equal to tinyllm's Block on the same weights.
2. Depth: GPTs of 1, 2, 4 and 8 blocks trained on an equal step budget on toy
   sequence tasks (copy / reverse / sort digits, one model for all three) and on
   the built-in "stories" corpus (characters). Figure: val loss curves.
3. Q/K/V: the same 2-block model with one change to its attention (swap the
   roles of Q and K, tie Q = K, V = identity, zero Q, shuffled keys, no 1/√d),
   each from the same initial weights on the same batches. Table: final val
   loss; figure: attention entropy per query position.

Every run is seeded (--seed): a rerun prints the same numbers.

    python examples/04_transformer.py            # the chapter's numbers and figures (docs/figures/04_*.png)
    python examples/04_transformer.py --quick    # tiny budgets, for CI (figures go to --out)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import functional as F  # noqa: E402
from tinyllm.data import get_batch, prepare_data  # noqa: E402
from tinyllm.data.tasks import TASKS, VOCAB, make_examples, task_batch  # noqa: E402
from tinyllm.nn import GELU, GPT, Block, GPTConfig, LayerNorm, Linear  # noqa: E402
from tinyllm.nn.attention_variants import VARIANTS, record_attention, use_variant  # noqa: E402
from tinyllm.optim import clip_grad_norm_  # noqa: E402
from tinyllm.train import TrainConfig, make_optimizer  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Budget:
    d_model: int = 64
    n_head: int = 4
    batch: int = 32
    steps: int = 300            # every run of parts 2 and 3 takes exactly this many AdamW steps
    lr: float = 3e-3            # warmup for steps // 10, cosine down to lr / 10
    eval_every: int = 25
    n_digits: int = 10          # toy sequences: 2·n_digits + 1 tokens
    context: int = 64           # stories: characters per window
    val_examples: int = 256     # per toy task
    val_batches: int = 8        # stories
    depths: tuple = (1, 2, 4, 8)
    qkv_layers: int = 2


FULL = Budget()
QUICK = Budget(d_model=32, n_head=2, batch=8, steps=12, eval_every=4, n_digits=6, context=32, val_examples=32,
               val_batches=2)


# ---------------------------------------------------------------------------- part 1: one block by hand


def block_by_hand(d_model: int, n_head: int, log=print) -> float:
    """Run one block step by step from tinyllm modules; return max |ours - Block(x)|."""
    B, T, C, nh = 2, 8, d_model, n_head
    hs = C // nh
    tinyllm.manual_seed(0)
    ref = Block(GPTConfig(vocab_size=1, context_length=T, n_layer=1, n_head=nh, d_model=C))
    for p in ref.parameters():  # random gains and biases too, so a swapped parameter would show
        p.data[...] = tinyllm.to_numpy(tinyllm.randn(*p.shape).data) * 0.3 + (1.0 if p.ndim == 1 else 0.0)
    ln_1, ln_2 = LayerNorm(C), LayerNorm(C)
    c_attn, attn_proj = Linear(C, 3 * C), Linear(C, C)
    c_fc, gelu, mlp_proj = Linear(C, 4 * C), GELU(), Linear(4 * C, C)
    pieces = {"ln_1": ln_1, "attn.c_attn": c_attn, "attn.c_proj": attn_proj,
              "ln_2": ln_2, "mlp.c_fc": c_fc, "mlp.c_proj": mlp_proj}
    for name, module in pieces.items():  # the same weights as the reference block
        module.load_state_dict(ref.get_submodule(name).state_dict())

    def show(name, t):
        log(f"  {name:<44} {str(tuple(t.shape)):>16}")
        return t

    x0 = show("x: the residual stream (B, T, C)", tinyllm.randn(B, T, C))
    h = show("ln_1(x)", ln_1(x0))
    qkv = show("c_attn: [q | k | v]", c_attn(h))
    qkv = show("split heads: reshape, transpose", qkv.reshape(B, T, 3 * nh, hs).transpose(1, 2))
    q, k, v = qkv[:, :nh], qkv[:, nh:2 * nh], qkv[:, 2 * nh:]
    show("q (and k, v): one row per head and token", q)
    S = show("scores S = q kᵀ / √hs", (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs)))
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    S = show("causal mask: S[i, j > i] = -inf", S.masked_fill(future, -math.inf))
    P = show("P = softmax(S) over keys", F.softmax(S, dim=-1))
    y = show("P v: each token a mix of values", P @ v)
    y = show("merge heads: transpose, reshape", y.transpose(1, 2).reshape(B, T, C))
    x1 = show("x + c_proj(heads): first residual", x0 + attn_proj(y))
    m = show("ln_2(x)", ln_2(x1))
    m = show("c_fc: up to 4C", c_fc(m))
    m = show("gelu", gelu(m))
    out = show("x + c_proj(m): second residual", x1 + mlp_proj(m))
    diff = float(np.abs(tinyllm.to_numpy(out.data) - tinyllm.to_numpy(ref(x0).data)).max())
    log(f"  max |by hand - tinyllm Block| = {diff:.2e}")
    return diff


# ---------------------------------------------------------------------------- data


class ToyData:
    """Copy / reverse / sort (tinyllm.data.tasks), every training batch mixing the three."""

    name, groups = "toy", TASKS

    def __init__(self, b: Budget, seed: int):
        self.b, self.vocab_size, self.context = b, len(VOCAB), 2 * b.n_digits + 1
        rng = np.random.default_rng([seed, 7])
        self.val = {}
        for task in TASKS:
            seq = make_examples(task, b.val_examples, b.n_digits, rng)
            x, y = seq[:, :-1], seq[:, 1:].copy()
            y[:, :b.n_digits + 1] = -100  # only the answer is scored, as in task_batch
            self.val[task] = [(x, y)]

    def batch(self, rng):
        return task_batch(TASKS, self.b.batch, self.b.n_digits, rng)


class StoryData:
    """The built-in story corpus at character level: random windows of `context` characters."""

    name, groups = "stories", ("stories",)

    def __init__(self, b: Budget, seed: int):
        self.tok, ds = prepare_data("stories", "char")
        self.b, self.train, self.vocab_size, self.context = b, ds.train, self.tok.vocab_size, b.context
        rng = np.random.default_rng([seed, 8])
        self.val = {"stories": [get_batch(ds.val, b.batch, b.context, rng) for _ in range(b.val_batches)]}

    def batch(self, rng):
        return get_batch(self.train, self.b.batch, self.b.context, rng)


# ---------------------------------------------------------------------------- training


def make_model(data, n_layer: int, b: Budget, seed: int) -> GPT:
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=data.vocab_size, context_length=data.context, n_layer=n_layer,
                         n_head=b.n_head, d_model=b.d_model))


def evaluate(model, data) -> dict:
    """{group: (mean val loss, accuracy of the argmax on scored targets)} on the fixed val batches."""
    out = {}
    model.eval()
    with tinyllm.no_grad():
        for group, batches in data.val.items():
            losses, hits, n = [], 0, 0
            for x, y in batches:
                logits, loss = model(x, y)
                losses.append(loss.item())
                pred = tinyllm.to_numpy(logits.data).argmax(-1)
                scored = y != -100
                hits, n = hits + int((pred[scored] == y[scored]).sum()), n + int(scored.sum())
            out[group] = (float(np.mean(losses)), hits / n)
    model.train()
    return out


def fit(model, data, b: Budget, seed: int) -> list:
    """b.steps AdamW steps on data's batches (seeded: every model of a comparison sees the same ones).

    Returns [(step, evaluate(...)), ...] every b.eval_every steps and at the end.
    """
    cfg = TrainConfig(max_iters=b.steps, learning_rate=b.lr, min_lr=b.lr / 10, warmup_iters=b.steps // 10,
                      batch_size=b.batch)
    opt, sched = make_optimizer(model, cfg)
    rng = np.random.default_rng([seed, 9])
    curve = []
    for step in range(b.steps + 1):
        if step % b.eval_every == 0 or step == b.steps:
            curve.append((step, evaluate(model, data)))
        if step == b.steps:
            return curve
        x, y = data.batch(rng)
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        sched.step()


# ---------------------------------------------------------------------------- parts 2 and 3


def depth_sweep(datasets, b: Budget, seed: int, log=print) -> dict:
    """{dataset: {depth: curve}}; every depth starts from seed and sees the same batches."""
    curves = {}
    for data in datasets:
        curves[data.name] = {}
        for depth in b.depths:
            t0 = time.perf_counter()
            model = make_model(data, depth, b, seed)
            curves[data.name][depth] = curve = fit(model, data, b, seed)
            final = "  ".join(f"{g} {loss:.3f} ({acc:.0%})" for g, (loss, acc) in curve[-1][1].items())
            log(f"  {data.name:<8} {depth} block{'s' if depth > 1 else ' '}  {model.num_parameters():>8,} params  "
                f"val loss (acc) {final}   [{time.perf_counter() - t0:.0f} s]")
    return curves


def attention_entropy(model, data) -> np.ndarray:
    """Mean entropy (nats) of the attention rows per query position (T,), over batch, heads and blocks."""
    mods = record_attention(model)
    x, _ = next(iter(data.val.values()))[0]
    model.eval()
    with tinyllm.no_grad():
        model(x[:64])
    model.train()
    P = np.stack([m.last_weights for m in mods])  # (L, B, nh, T, T)
    record_attention(model, on=False)
    H = -(P * np.log(np.where(P > 0, P, 1.0))).sum(-1)  # (L, B, nh, T): 0·log 0 = 0
    return H.mean(axis=(0, 1, 2))


def qkv_experiments(datasets, b: Budget, seed: int, log=print) -> dict:
    """{dataset: {variant: {"curve", "entropy"}}}: each variant from the same initial weights and batches."""
    results = {}
    for data in datasets:
        results[data.name] = {}
        for variant in VARIANTS:
            t0 = time.perf_counter()
            model = use_variant(make_model(data, b.qkv_layers, b, seed), variant, seed=seed)
            curve = fit(model, data, b, seed)
            results[data.name][variant] = {"curve": curve, "entropy": attention_entropy(model, data)}
            log(f"  {data.name:<8} {variant:<11} val loss {final_loss(curve):.3f}   "
                f"[{time.perf_counter() - t0:.0f} s]")
    return results


def final_loss(curve) -> float:
    return float(np.mean([loss for loss, _ in curve[-1][1].values()]))


def relative_entropy(H: np.ndarray) -> float:
    """Mean of H_i / ln(i + 1) over query positions i >= 1: 1 = uniform over the causal window, 0 = one key."""
    return float(np.mean(H[1:] / np.log(np.arange(2, len(H) + 1))))


def qkv_table(results) -> list:
    """Rows (variant, toy val loss, toy accuracy, stories val loss, entropy toy, entropy stories)."""
    rows = []
    for variant in VARIANTS:
        toy, st = results["toy"][variant], results["stories"][variant]
        toy_acc = float(np.mean([acc for _, acc in toy["curve"][-1][1].values()]))
        rows.append((variant, final_loss(toy["curve"]), toy_acc, final_loss(st["curve"]),
                     relative_entropy(toy["entropy"]), relative_entropy(st["entropy"])))
    return rows


# ---------------------------------------------------------------------------- figures


def plot_depth(curves, path: Path) -> None:
    panels = [("toy", t) for t in TASKS] + [("stories", "stories")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), sharey=False)
    for ax, (name, group) in zip(axes, panels):
        for depth, curve in curves[name].items():
            ax.plot([s for s, _ in curve], [ev[group][0] for _, ev in curve], label=f"{depth} block{'s' * (depth > 1)}")
        ax.set_title(group if name == "stories" else f"{group} (answer tokens)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("val loss (nats/token)")
    axes[-1].legend()
    fig.suptitle("Depth on an equal step budget", y=1.02)
    _save(fig, path)


def plot_entropy(results, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("toy", "stories")):
        T = None
        for variant, r in results[name].items():
            T = len(r["entropy"])
            ax.plot(np.arange(T), r["entropy"], label=variant, lw=1.6 if variant == "baseline" else 1.1)
        ax.plot(np.arange(T), np.log(np.arange(1, T + 1)), "k--", lw=1, label="uniform: ln(i+1)")
        ax.set_title(f"{name}: attention entropy after training")
        ax.set_xlabel("query position i")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean entropy of P[i, :] (nats)")
    axes[1].legend(fontsize=8)
    _save(fig, path)


def plot_qkv_curves(results, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("toy", "stories")):
        for variant, r in results[name].items():
            curve = r["curve"]
            ax.plot([s for s, _ in curve], [np.mean([l for l, _ in ev.values()]) for _, ev in curve], label=variant)
        ax.set_title(f"{name}: val loss per Q/K/V variant")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("val loss (nats/token)")
    axes[1].legend(fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=Path("docs/figures"), help="folder for the 04_*.png figures")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    b = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    print(f"1. One block by hand (B=2, T=8, C={b.d_model}, {b.n_head} heads)")
    diff = block_by_hand(b.d_model, b.n_head)

    datasets = [ToyData(b, args.seed), StoryData(b, args.seed)]
    print(f"\n2. Depth sweep: {b.steps} steps of batch {b.batch}, d_model {b.d_model}, {b.n_head} heads, lr {b.lr}; "
          f"toy: {b.n_digits} digits (T={datasets[0].context}), stories: T={b.context} characters")
    curves = depth_sweep(datasets, b, args.seed)
    plot_depth(curves, args.out / "04_depth_sweep.png")

    print(f"\n3. Q/K/V experiments: {b.qkv_layers} blocks, the same budget, initial weights and batches")
    results = qkv_experiments(datasets, b, args.seed)
    rows = qkv_table(results)
    print(f"\n  {'variant':<11} {'toy loss':>9} {'toy acc':>8} {'stories loss':>13} {'H/H_unif toy':>13} "
          f"{'H/H_unif stories':>17}")
    for variant, tl, ta, sl, ht, hs in rows:
        print(f"  {variant:<11} {tl:>9.3f} {ta:>8.1%} {sl:>13.3f} {ht:>13.2f} {hs:>17.2f}")
    plot_entropy(results, args.out / "04_qkv_entropy.png")
    plot_qkv_curves(results, args.out / "04_qkv_curves.png")
    print(f"\nfigures: {', '.join(str(args.out / n) for n in ('04_depth_sweep.png', '04_qkv_entropy.png', '04_qkv_curves.png'))}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return {"block_max_diff": diff, "depth_curves": curves, "qkv": results, "table": rows}


if __name__ == "__main__":
    main()
