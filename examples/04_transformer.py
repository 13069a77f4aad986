"""Lab 4: the transformer block, piece by piece; how deep; and what Q, K and V are for.

1. One pre-norm block built by hand from tinyllm modules (LayerNorm, the fused
   QKV Linear, scores, causal mask, softmax, heads, residual, MLP), printing the
   shape after each step, and checked equal to tinyllm's Block on the same weights.
2. Depth: GPTs of 1, 2, 4 and 8 blocks trained on an equal step budget on toy
   sequence tasks (copy / reverse / sort digits, one model for all three) and on
   the built-in "stories" corpus (characters). Figure: val loss against steps
   and against training compute.
3. Q/K/V: the same 2-block model with one change to its attention (swap the
   roles of Q and K, tie Q = K, V = identity, zero Q, shuffled keys, no 1/√d),
   each from the same initial weights on the same batches. Table: final val
   loss; figure: attention entropy per query position.

Every run is seeded (--seed): a rerun prints the same numbers.

    python examples/04_transformer.py            # the chapter's numbers and figures (docs/figures/04_*.png,
                                                 # the numbers also in docs/figures/04_transformer.json)
    python examples/04_transformer.py --quick    # tiny budgets, for CI (out/labs/04_transformer-quick)
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
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import functional as F  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import get_batch, prepare_data  # noqa: E402
from tinyllm.data.tasks import IGNORE_INDEX, TASKS, VOCAB, inputs_and_targets, make_examples, task_batch  # noqa: E402
from tinyllm.labs import fit_curve  # noqa: E402
from tinyllm.nn import GELU, GPT, Block, GPTConfig, LayerNorm, Linear  # noqa: E402
from tinyllm.nn.attention_variants import VARIANTS, record_attention, use_variant  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Budget:
    d_model: int = 64
    n_head: int = 4
    batch: int = 32
    toy_steps: int = 1000       # every toy run takes exactly this many AdamW steps ...
    stories_steps: int = 400    # ... and every stories run this many
    toy_lr: float = 3e-3        # peak learning rates: warmup for a tenth of the steps, cosine down to lr / 10
    stories_lr: float = 1e-2
    eval_every: int = 50
    n_digits: int = 8           # toy sequences: 2·n_digits + 1 tokens
    context: int = 32           # stories: characters per window
    val_examples: int = 128     # per toy task
    val_batches: int = 8        # stories
    depths: tuple = (1, 2, 4, 8)
    qkv_layers: int = 2


FULL = Budget()
QUICK = Budget(d_model=32, n_head=2, batch=8, toy_steps=12, stories_steps=12, eval_every=4, n_digits=4, context=16,
               val_examples=16, val_batches=2)


# ---------------------------------------------------------------------------- part 1: one block by hand


def block_by_hand(d_model: int, n_head: int, log=print) -> float:
    """Run one block step by step from tinyllm modules; return max |ours - Block(x)|."""
    B, T, C, nh = 2, 8, d_model, n_head
    hs = C // nh
    tinyllm.manual_seed(0)
    ref = Block(GPTConfig(vocab_size=1, context_length=T, n_layer=1, n_head=nh, d_model=C))
    rng = np.random.default_rng(0)  # random gains and biases too, so a swapped parameter would show
    ref.load_state_dict({n: rng.normal(1.0 if n.endswith("weight") and p.ndim == 1 else 0.0, 0.3, p.shape)
                         .astype(np.float32) for n, p in ref.named_parameters()})
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
    qkv = show("3·nh heads of hs: reshape, transpose", qkv.reshape(B, T, 3 * nh, hs).transpose(1, 2))
    q, k, v = qkv[:, :nh], qkv[:, nh:2 * nh], qkv[:, 2 * nh:]
    show("q (and k, v): one row per head and token", q)
    S = show("scores S = q kᵀ / √hs", (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs)))
    future = tinyllm.tensor(np.triu(np.ones((T, T), dtype=bool), k=1))  # (T, T), on the default device
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

    name = "toy"

    def __init__(self, b: Budget, seed: int):
        self.b, self.vocab_size, self.context = b, len(VOCAB), 2 * b.n_digits + 1
        self.steps, self.lr = b.toy_steps, b.toy_lr
        rng = np.random.default_rng([seed, 7])
        self.val = {task: [inputs_and_targets(make_examples(task, b.val_examples, b.n_digits, rng), b.n_digits)]
                    for task in TASKS}  # one fixed batch per task, scored on the answer only

    def batch(self, rng):
        return task_batch(TASKS, self.b.batch, self.b.n_digits, rng)


class StoryData:
    """The built-in story corpus at character level: random windows of `context` characters."""

    name = "stories"

    def __init__(self, b: Budget, seed: int):
        self.tok, ds = prepare_data("stories", "char")
        self.b, self.train, self.vocab_size, self.context = b, ds.train, self.tok.vocab_size, b.context
        self.steps, self.lr = b.stories_steps, b.stories_lr
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
                scored = y != IGNORE_INDEX
                hits, n = hits + int((pred[scored] == y[scored]).sum()), n + int(scored.sum())
            out[group] = (float(np.mean(losses)), hits / n)
    model.train()
    return out


def fit(model, data, b: Budget, seed: int) -> list:
    """data.steps AdamW steps at peak lr data.lr on data's batches (seeded: every model of a comparison sees
    the same ones).

    Returns [(step, evaluate(...)), ...] every b.eval_every steps and at the end.
    """
    return fit_curve(model, data.batch, lambda m: evaluate(m, data), data.steps, data.lr, b.batch, b.eval_every,
                     seed)


# ---------------------------------------------------------------------------- parts 2 and 3


def depth_sweep(datasets, b: Budget, seed: int, log=print) -> dict:
    """{dataset: {depth: {"curve", "flops_per_step"}}}; every depth starts from seed and sees the same batches."""
    runs = {}
    for data in datasets:
        runs[data.name] = {}
        for depth in b.depths:
            t0 = time.perf_counter()
            model = make_model(data, depth, b, seed)
            curve = fit(model, data, b, seed)
            flops = model.flops_per_token() * b.batch * data.context  # training FLOPs of one step (6N + attention)
            runs[data.name][depth] = {"curve": curve, "flops_per_step": flops}
            final = "  ".join(f"{g} {loss:.3f} ({acc:.0%})" for g, (loss, acc) in curve[-1][1].items())
            log(f"  {data.name:<8} {depth} block{'s' if depth > 1 else ' '} {model.num_parameters():>8,} params "
                f"{flops / 1e9:>5.2f} GFLOP/step  val loss (acc) {final}   [{time.perf_counter() - t0:.0f} s]")
            if data.name == "toy":
                solved = "  ".join(f"{g} {solved_at(curve, g)}" for g in curve[-1][1])
                log(f"{'':>51}accuracy >= 99% from step: {solved}")
    return runs


def solved_at(curve, group: str, accuracy: float = 0.99):
    """The first evaluated step from which `group`'s accuracy stays >= accuracy, or "-" if it never does."""
    step = "-"
    for s, ev in reversed(curve):
        if ev[group][1] < accuracy:
            break
        step = s
    return step


def attention_entropy(model, data) -> np.ndarray:
    """Mean entropy (nats) of the attention rows per query position (T,), over batch, heads and blocks."""
    mods = record_attention(model)
    x = np.concatenate([batches[0][0][:64] for batches in data.val.values()])  # (≤ 64 per group, T)
    model.eval()
    with tinyllm.no_grad():
        model(x)
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
            solved = "" if data.name != "toy" else \
                "   accuracy >= 99% from step: " + "  ".join(f"{g} {solved_at(curve, g)}" for g in curve[-1][1])
            log(f"  {data.name:<8} {variant:<11} val loss {final_loss(curve):.3f}{solved}   "
                f"[{time.perf_counter() - t0:.0f} s]")
    return results


def final_loss(curve) -> float:
    return float(np.mean([loss for loss, _ in curve[-1][1].values()]))


def relative_entropy(H: np.ndarray) -> float:
    """Mean of H_i / ln(i + 1) over query positions i >= 1: 1 = uniform over the causal window, 0 = one key."""
    return float(np.mean(H[1:] / np.log(np.arange(2, len(H) + 1))))


def qkv_table(results) -> list:
    """One dict per variant: final val loss and accuracy per toy task, stories val loss, relative entropies."""
    rows = []
    for variant in VARIANTS:
        toy, st = results["toy"][variant], results["stories"][variant]
        row = {"variant": variant}
        for task, (loss, acc) in toy["curve"][-1][1].items():
            row[task], row[f"{task}_acc"] = loss, acc
        row["stories"] = final_loss(st["curve"])
        row["H_toy"], row["H_stories"] = relative_entropy(toy["entropy"]), relative_entropy(st["entropy"])
        rows.append(row)
    return rows


def print_table(rows, log=print) -> None:
    log(f"  {'variant':<11}" + "".join(f"{t + ' (acc)':>16}" for t in TASKS) + f"{'stories':>9}"
        + f"{'H/H_unif toy':>14}{'stories':>9}")
    for r in rows:
        log(f"  {r['variant']:<11}" + "".join(f"{r[t]:>9.3f} ({r[t + '_acc']:>4.0%})" for t in TASKS)
            + f"{r['stories']:>9.3f}{r['H_toy']:>14.2f}{r['H_stories']:>9.2f}")


# ---------------------------------------------------------------------------- figures


def plot_depth(runs, path: Path) -> None:
    """Top: val loss against steps (the equal budget); bottom: against training FLOPs (what a step costs)."""
    panels = [("toy", t) for t in TASKS] + [("stories", "stories")]
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6.4))
    for col, (name, group) in enumerate(panels):
        for depth, run in runs[name].items():
            steps = np.array([s for s, _ in run["curve"]])
            loss = [ev[group][0] for _, ev in run["curve"]]
            label = f"{depth} block{'s' * (depth > 1)}"
            axes[0, col].plot(steps, loss, label=label)
            axes[1, col].plot(steps * run["flops_per_step"] / 1e12, loss, label=label)
        axes[0, col].set_title(group if name == "stories" else f"{group} (answer tokens)")
        axes[0, col].set_xlabel("step")
        axes[1, col].set_xlabel("training compute (TFLOPs)")
        for ax in axes[:, col]:
            _loss_axis(ax, log=name == "toy")
    for ax in axes[:, 0]:
        ax.set_ylabel("val loss (nats/token)")
    axes[0, -1].legend()
    fig.suptitle("Depth: the same steps (top), the same curves against compute (bottom)")
    fig.tight_layout()
    _save(fig, path)


def plot_entropy(results, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("toy", "stories")):
        T = None
        for variant, r in results[name].items():
            T = len(r["entropy"])
            lw = {"baseline": 1.8, "zero_q": 4.0, "shuffle_k": 2.5}.get(variant, 1.1)  # the last two lie on ln(i+1)
            ax.plot(np.arange(T), r["entropy"], label=variant, lw=lw)
        ax.plot(np.arange(T), np.log(np.arange(1, T + 1)), "k--", lw=1, label="uniform: ln(i+1)")
        if name == "toy":  # "=" sits at position n + 1 of 2n + 1; the answers are predicted from there on
            ax.axvline((T - 1) // 2 + 1, color="grey", lw=0.8)
            ax.text((T - 1) // 2 + 1.2, 0.1, "'=': answers from here", color="grey", fontsize=8)
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
            ax.plot([s for s, _ in curve], [np.mean([loss for loss, _ in ev.values()]) for _, ev in curve],
                    label=variant)
        ax.set_title(f"{name}: val loss per Q/K/V variant" + (" (mean of the 3 tasks)" if name == "toy" else ""))
        ax.set_xlabel("step")
        _loss_axis(ax, log=name == "toy")
    axes[0].set_ylabel("val loss (nats/token)")
    axes[1].legend(fontsize=8)
    _save(fig, path)


def _loss_axis(ax, log: bool) -> None:
    """Loss axes: log scale for the toy tasks (their losses fall to ~1e-3), plain numbers on the ticks."""
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def jsonable(obj):
    """json.dumps's fallback: NumPy numbers and arrays as Python ones."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def main(argv=None) -> dict:
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for the 04_*.png figures (default docs/figures; "
                   "--quick: out/labs/04_transformer-quick, so a quick run never replaces the committed figures)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate of every run (default: {FULL.toy_lr} toy, {FULL.stories_lr} stories)")
    p.add_argument("--parts", default="123", help="which parts to run, e.g. 3 (default 123: all)")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/04_transformer-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    b = QUICK if args.quick else FULL
    if args.lr is not None:
        b = dataclasses.replace(b, toy_lr=args.lr, stories_lr=args.lr)
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between steps
    report = {}
    t_start = time.perf_counter()

    if "1" in args.parts:
        print(f"1. One block by hand (B=2, T=8, C={b.d_model}, {b.n_head} heads)")
        report["block_max_diff"] = block_by_hand(b.d_model, b.n_head)
    datasets = [ToyData(b, args.seed), StoryData(b, args.seed)] if {"2", "3"} & set(args.parts) else []
    if "2" in args.parts:
        print(f"\n2. Depth sweep: d_model {b.d_model}, {b.n_head} heads, batch {b.batch}, AdamW; toy: "
              f"{b.n_digits} digits (T={datasets[0].context}), {b.toy_steps} steps at lr {b.toy_lr}; stories: "
              f"T={b.context} characters, {b.stories_steps} steps at lr {b.stories_lr}")
        report["depth"] = depth_sweep(datasets, b, args.seed)
        plot_depth(report["depth"], args.out / "04_depth_sweep.png")
    if "3" in args.parts:
        print(f"\n3. Q/K/V experiments: {b.qkv_layers} blocks, toy lr {b.toy_lr}, stories lr {b.stories_lr}; each "
              "variant from the same initial weights, on the same batches")
        report["qkv"] = results = qkv_experiments(datasets, b, args.seed)
        report["table"] = rows = qkv_table(results)
        print("\n  final val loss (toy: answer tokens, with the accuracy of the argmax); H/H_unif: attention entropy")
        print_table(rows)
        plot_entropy(results, args.out / "04_qkv_entropy.png")
        plot_qkv_curves(results, args.out / "04_qkv_curves.png")
    report["seconds"] = time.perf_counter() - t_start
    command = " ".join(["python examples/04_transformer.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "04_transformer.json").write_text(json.dumps(dict(command=command, **report), indent=1,
                                                             default=jsonable) + "\n")
    print(f"\nfigures and 04_transformer.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
