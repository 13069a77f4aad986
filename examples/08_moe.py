"""Lab 8: a mixture of experts trained on four kinds of text: who goes where, balance, and sparse vs dense.

One character-level corpus mixed from four sources, equal shares: tinyshakespeare,
baby names, the built-in stories, and the Python source files of the running
interpreter's standard library. Each batch row is one window of one source.

1. Train, on the same batches and budget: a model whose every block holds 2 experts
   (top-1, Switch's load-balancing loss at 0.01 and router z-loss at 0.001); the same
   without either loss; a dense model of the same *active* size (d_ff of one expert);
   a dense model of the same *total* size (d_ff of both experts). Table: val loss per
   source, parameters (total and per token) and training FLOPs per token.
2. Utilization: in eval mode, the share of each source's tokens that each layer sends to
   expert 0, and the same by token class (lowercase, uppercase, digit, space, punctuation).
3. Balance while training, with and without the auxiliary losses: the busiest expert's share
   of the tokens at each logged step, by layer (1/2 is even; 1 is collapse).
4. Capacity and causality in training: with a capacity factor, does changing the tokens after
   position t of a row change the outputs at t? And the other rows? Counted on the trained
   top-1 model and on a random top-2 one.

Every run is seeded (--seed): a rerun prints the same numbers.

    python examples/08_moe.py            # the chapter's numbers and figures (docs/figures/08_*.png, 08_moe.json)
    python examples/08_moe.py --quick    # tiny budgets, for CI (out/labs/08_moe-quick)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import sysconfig
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import build_tokenizer, load_text  # noqa: E402
from tinyllm.functional.moe import top_k_experts  # noqa: E402
from tinyllm.labs import fit_curve  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.nn.moe import moe_layers  # noqa: E402

SOURCES = ("shakespeare", "names", "stories", "python")
CLASSES = ("lower", "upper", "digit", "space", "punct")


@dataclasses.dataclass(frozen=True)
class Budget:
    chars: int = 250_000      # characters taken from each source (names has 228k: all of it)
    d_model: int = 128
    n_head: int = 4
    n_layer: int = 4
    d_ff: int = 512           # one expert's width; the dense model of equal total size gets 2 · d_ff
    context: int = 64
    batch: int = 16
    steps: int = 1500
    lr: float = 3e-3
    eval_every: int = 100
    log_every: int = 25       # routing statistics while training
    val_batches: int = 4      # per source
    capacity_factor: float = 1.0  # part 4


FULL = Budget()
QUICK = Budget(chars=20_000, d_model=32, n_head=2, n_layer=2, d_ff=64, context=32, batch=8, steps=30,
               eval_every=15, log_every=5, val_batches=1)


# ---------------------------------------------------------------------------- the data


def python_source(limit: int) -> str:
    """The first `limit` characters of the interpreter's standard library *.py files (sorted by name), ASCII only."""
    text, n = [], 0
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        t = "".join(c for c in f.read_text(encoding="utf-8", errors="replace") if c == "\n" or " " <= c <= "~")
        text.append(t)
        n += len(t)
        if n >= limit:
            break
    return "".join(text)[:limit]


class Mix:
    """Four sources under one character tokenizer; a batch row is a window of one source (labels say which)."""

    def __init__(self, b: Budget, seed: int):
        texts = {"shakespeare": load_text("tinyshakespeare"), "names": load_text("names"),
                 "stories": load_text("stories"), "python": python_source(b.chars)}
        texts = {k: v[:b.chars] for k, v in texts.items()}
        self.tok = build_tokenizer("char", "".join(texts.values()))
        self.b, self.vocab_size = b, self.tok.vocab_size
        self.train, self.val = {}, {}
        for k, t in texts.items():
            ids = np.asarray(self.tok.encode(t), dtype=np.int64)
            cut = int(0.9 * len(ids))
            self.train[k], self.val[k] = ids[:cut], ids[cut:]
        self.chars = {k: len(t) for k, t in texts.items()}
        rng = np.random.default_rng([seed, 8])
        self.val_batches = {k: [self.windows(self.val[k], b.batch, rng) for _ in range(b.val_batches)]
                            for k in SOURCES}
        self.char_class = np.array([char_class(self.tok.decode([i])) for i in range(self.vocab_size)])

    def windows(self, tokens, n, rng):
        ix = rng.integers(0, len(tokens) - self.b.context - 1, size=n)
        w = tokens[ix[:, None] + np.arange(self.b.context + 1)]
        return w[:, :-1], w[:, 1:]

    def batch(self, rng):
        """(x, y) (B, T): each row a window of a source drawn uniformly."""
        src = rng.integers(0, len(SOURCES), size=self.b.batch)
        rows = [self.windows(self.train[SOURCES[s]], 1, rng) for s in src]
        return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


def char_class(ch: str) -> int:
    if ch.islower():
        return 0
    if ch.isupper():
        return 1
    if ch.isdigit():
        return 2
    if ch.isspace():
        return 3
    return 4


# ---------------------------------------------------------------------------- models and training

RUNS = {  # name -> GPTConfig fields on top of the budget's
    "moe": dict(n_expert=2, expert_top_k=1),
    "moe, no aux loss": dict(n_expert=2, expert_top_k=1, moe_aux_loss_coef=0.0, moe_z_loss_coef=0.0),
    "dense, equal active": dict(),
    "dense, equal total": dict(d_ff_scale=2),
}


def make_model(name: str, mix: Mix, b: Budget, seed: int) -> GPT:
    fields = dict(RUNS[name])
    d_ff = b.d_ff * fields.pop("d_ff_scale", 1)
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=mix.vocab_size, context_length=b.context, n_layer=b.n_layer, n_head=b.n_head,
                         d_model=b.d_model, d_ff=d_ff, **fields))


def evaluate(model, mix: Mix) -> dict:
    """Mean val loss per source (eval mode: the LM loss, nothing dropped)."""
    model.eval()
    out = {}
    with tinyllm.no_grad():
        for k, batches in mix.val_batches.items():
            out[k] = float(np.mean([model(x, y)[1].item() for x, y in batches]))
    model.train()
    out["mean"] = float(np.mean([out[k] for k in SOURCES]))
    return out


def fit(model, mix: Mix, b: Budget, seed: int, log=print) -> dict:
    """b.steps AdamW steps on mix's batches (seeded: every model sees the same); val curve and routing log."""
    routing = []

    def log_routing(step):
        if step % b.log_every == 0 and moe_layers(model):
            stats = [m.stats for _, m in moe_layers(model)]
            routing.append((step, [max(s.tokens_per_expert) / sum(s.tokens_per_expert) for s in stats],
                            [s.router_entropy for s in stats]))

    t0 = time.process_time()
    curve = fit_curve(model, mix.batch, lambda m: evaluate(m, mix), b.steps, b.lr, b.batch, b.eval_every, seed,
                      after_step=log_routing)
    cpu = time.process_time() - t0
    log(f"  val loss {curve[-1][1]['mean']:.4f} after {b.steps} steps ({cpu:.0f} s CPU)")
    return {"curve": curve, "routing": routing, "cpu_s": cpu}


# ---------------------------------------------------------------------------- utilization


def expert_choices(model, x) -> list:
    """Per MoE layer, (B, T) the expert each token goes to (its first choice), in eval mode: a forward hook
    on each MoE layer recomputes its router's choice from the layer's input."""
    choices = []

    def hook(m, args, output):
        h = args[0]
        choices.append(tinyllm.to_numpy(top_k_experts(m.router(h.reshape(-1, h.shape[-1])).data, 1))
                       .reshape(h.shape[:-1]))

    handles = [m.register_forward_hook(hook) for _, m in moe_layers(model)]
    model.eval()
    try:
        with tinyllm.no_grad():
            model(x)
    finally:
        for hd in handles:
            hd.remove()
        model.train()
    return choices


def utilization(model, mix: Mix) -> dict:
    """Share of tokens sent to expert 0, by layer: per source, and per token class (all sources)."""
    L = len(moe_layers(model))
    by_source = np.zeros((len(SOURCES), L))
    cls_hits, cls_n = np.zeros((len(CLASSES), L)), np.zeros(len(CLASSES))
    for s, k in enumerate(SOURCES):
        hits, n = np.zeros(L), 0
        for x, _ in mix.val_batches[k]:
            ch = expert_choices(model, x)
            cls = mix.char_class[x]  # (B, T) class of each input character
            for layer, c in enumerate(ch):
                hits[layer] += (c == 0).sum()
                for j in range(len(CLASSES)):
                    cls_hits[j, layer] += (c[cls == j] == 0).sum()
            n += x.size
            cls_n += np.bincount(cls.reshape(-1), minlength=len(CLASSES))
        by_source[s] = hits / n
    by_class = cls_hits / np.maximum(cls_n, 1)[:, None]
    return {"by_source": by_source.tolist(), "by_class": by_class.tolist(), "class_counts": cls_n.tolist()}


# ---------------------------------------------------------------------------- part 4: capacity and causality


def causality(model, mix: Mix, capacity_factor: float, seed: int, trials: int = 16) -> dict:
    """Training mode with a capacity. Of the positions <= t of one row, the share whose logits change when
    that row's tokens after t change (a leak from its own future); of the other rows, the share whose logits
    change when one row changes (a dependence on the batch)."""
    for _, m in moe_layers(model):
        m.capacity_factor = capacity_factor
    model.train()
    rng = np.random.default_rng([seed, 4])
    leak = cross = pairs = rows = 0
    drops = []

    def logits(x):
        return tinyllm.to_numpy(model(x)[0].data)

    with tinyllm.no_grad():
        for _ in range(trials):
            x, _ = mix.batch(rng)
            base = logits(x)
            drops.append(sum(m.stats.dropped for _, m in moe_layers(model)) / (x.size * len(moe_layers(model))))
            r, t = int(rng.integers(0, x.shape[0])), int(rng.integers(0, x.shape[1] - 1))
            x2 = x.copy()
            x2[r, t + 1:] = rng.integers(0, mix.vocab_size, size=x.shape[1] - t - 1)  # row r's future only
            leak += int((np.abs(logits(x2)[r, :t + 1] - base[r, :t + 1]).max(axis=-1) > 0).sum())
            pairs += t + 1
            x3 = x.copy()
            x3[r] = rng.integers(0, mix.vocab_size, size=x.shape[1])  # all of row r
            changed = np.abs(logits(x3) - base).max(axis=(1, 2)) > 0
            cross += int(changed.sum() - changed[r])
            rows += x.shape[0] - 1
    for _, m in moe_layers(model):
        m.capacity_factor = None
    model.eval()
    return {"past_changed_by_future": leak / pairs, "rows_changed_by_another_row": cross / rows,
            "dropped_share": float(np.mean(drops)), "capacity_factor": capacity_factor}


# ---------------------------------------------------------------------------- figures


def plot_utilization(util: dict, path: Path) -> None:
    """A row per model, by source (left) and by token class (right): the share of tokens sent to expert 0."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.6))
    for row, (name, u) in enumerate(util.items()):
        for col, (key, labels) in enumerate((("by_source", SOURCES), ("by_class", CLASSES))):
            ax = axes[row, col]
            a = np.asarray(u[key])
            im = ax.imshow(a, vmin=0, vmax=1, cmap="coolwarm", aspect="auto")
            ax.set_yticks(range(len(labels)), labels, fontsize=12)
            ax.set_xticks(range(a.shape[1]), [f"L{i}" for i in range(a.shape[1])], fontsize=12)
            for i in range(a.shape[0]):
                for j in range(a.shape[1]):
                    ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center", fontsize=12)
            ax.set_title(f"{name}: by {'source' if col == 0 else 'token class'}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.colorbar(im, cax=fig.add_axes((0.92, 0.15, 0.02, 0.7))).set_label("share of tokens to expert 0", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_balance(runs: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, name in zip(axes, ("moe", "moe, no aux loss")):
        steps = [s for s, _, _ in runs[name]["routing"]]
        share = np.array([r for _, r, _ in runs[name]["routing"]])
        for layer in range(share.shape[1]):
            ax.plot(steps, share[:, layer], label=f"layer {layer}")
        ax.axhline(0.5, color="k", ls=":", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylim(0.45, 1.02)
    axes[0].set_ylabel("busiest expert's share of a batch")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(runs: dict, path: Path) -> None:
    """Left: the whole run; right: its second half, where the models separate."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, r in runs.items():
        steps = [s for s, _ in r["curve"]]
        for ax in axes:
            ax.plot(steps, [e["mean"] for _, e in r["curve"]], "o-", ms=3, label=name)
    last = max(s for s, _ in next(iter(runs.values()))["curve"])
    tail = [e["mean"] for r in runs.values() for s, e in r["curve"] if s >= last // 2]
    axes[1].set_xlim(last // 2 - last // 40, last + last // 40)
    axes[1].set_ylim(min(tail) - 0.01, max(tail) + 0.01)
    axes[0].set_title("the whole run")
    axes[1].set_title("the second half")
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_ylabel("val loss (mean over the 4 sources)")
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(runs: dict, util: dict, out: Path) -> None:
    plot_curves(runs, out / "08_curves.png")
    plot_utilization(util, out / "08_utilization.png")
    plot_balance(runs, out / "08_balance.png")


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for the 08_*.png figures and 08_moe.json (default "
                   "docs/figures; --quick: out/labs/08_moe-quick, so a quick run never replaces the committed ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replot", action="store_true", help="redraw the figures from --out/08_moe.json, no training")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/08_moe-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        report = json.loads((args.out / "08_moe.json").read_text())
        draw(report["runs"], report["utilization"], args.out)
        return report
    b = QUICK if args.quick else FULL
    runtime.keep_host_memory()
    t_start = time.perf_counter()
    mix = Mix(b, args.seed)
    report = {"python": platform.python_version(), "chars": mix.chars, "vocab_size": mix.vocab_size,
              "budget": dataclasses.asdict(b)}
    print(f"data: {', '.join(f'{k} {n:,}' for k, n in mix.chars.items())} characters (python: the standard library "
          f"of Python {report['python']}); vocabulary {mix.vocab_size}")

    print(f"\n1. {b.n_layer} layers, d_model {b.d_model}, expert d_ff {b.d_ff}, context {b.context}, batch {b.batch}, "
          f"{b.steps} steps at lr {b.lr}; the same batches for every model")
    runs, models = {}, {}
    for name in RUNS:
        models[name] = model = make_model(name, mix, b, args.seed)
        print(f"- {name}: {model.num_parameters():,} parameters, {model.num_parameters(active=True):,} per token")
        runs[name] = fit(model, mix, b, args.seed)
        runs[name].update(params=model.num_parameters(), active_params=model.num_parameters(active=True),
                          flops_per_token=model.flops_per_token())
    print(f"\n  {'model':22s} {'params':>9s} {'per token':>9s} {'FLOPs/token':>12s}  " +
          " ".join(f"{k:>11s}" for k in (*SOURCES, "mean")))
    for name, r in runs.items():
        final = r["curve"][-1][1]
        print(f"  {name:22s} {r['params']:>9,} {r['active_params']:>9,} {r['flops_per_token']:>12,}  " +
              " ".join(f"{final[k]:>11.4f}" for k in (*SOURCES, "mean")))
    report["runs"] = runs

    print("\n2. Utilization (eval mode): share of tokens each layer sends to expert 0")
    util = {name: utilization(models[name], mix) for name in ("moe", "moe, no aux loss")}
    for name, u in util.items():
        print(f"  {name}")
        for label, key, names in (("source", "by_source", SOURCES), ("token class", "by_class", CLASSES)):
            for k, row in zip(names, u[key]):
                print(f"    {label:11s} {k:12s} " + " ".join(f"L{i}: {v:.2f}" for i, v in enumerate(row)))
    report["utilization"] = util

    print("\n3. Balance while training: the busiest expert's share of a batch (0.5 = even), mean of the last "
          "quarter of the run, by layer")
    report["balance"] = {}
    for name in ("moe", "moe, no aux loss"):
        share = np.array([r for _, r, _ in runs[name]["routing"]])
        entropy = np.array([h for _, _, h in runs[name]["routing"]])
        tail = share[-max(1, len(share) // 4):].mean(axis=0)
        report["balance"][name] = {"busiest_share": tail.tolist(), "max_busiest_share": share.max(axis=0).tolist(),
                                   "router_entropy": entropy[-max(1, len(share) // 4):].mean(axis=0).tolist()}
        print(f"  {name:18s} " + " ".join(f"L{i}: {v:.3f}" for i, v in enumerate(tail)) +
              "   router entropy " + " ".join(f"{v:.3f}" for v in report["balance"][name]["router_entropy"]) +
              f" nats (log 2 = {np.log(2):.3f})")

    print(f"\n4. Capacity and causality in training (capacity factor {b.capacity_factor})")
    report["causality"] = {"trained top-1": causality(models["moe"], mix, b.capacity_factor, args.seed)}
    tinyllm.manual_seed(args.seed)
    top2 = GPT(dataclasses.replace(models["moe"].config, n_expert=4, expert_top_k=2))
    report["causality"]["random top-2 of 4"] = causality(top2, mix, b.capacity_factor, args.seed)
    for name, c in report["causality"].items():
        print(f"  {name:18s}: {c['dropped_share']:.1%} of slots dropped; outputs at <= t changed by later tokens of "
              f"the row: {c['past_changed_by_future']:.1%} of positions; rows changed by another row: "
              f"{c['rows_changed_by_another_row']:.1%}")

    draw(runs, util, args.out)
    report["seconds"] = time.perf_counter() - t_start
    command = " ".join(["python examples/08_moe.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "08_moe.json").write_text(json.dumps(dict(command=command, **report), indent=1) + "\n")
    print(f"\nfigures and 08_moe.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
