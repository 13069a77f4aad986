"""Lab 9: grouped-query attention: what sharing key/value heads saves, what it costs, and converting a model.

n_head = 8 query heads throughout, with n_kv_head = 8 (multi-head), 4, 2 and 1 (multi-query).

1. Memory: the KV cache of each, measured (KVCache.nbytes) against the formula
   2 · n_layer · n_kv_head · head_dim · S · 4 bytes, for this lab's model and, by the
   formula, for a 7B-parameter shape (32 layers, 32 heads of 128) at 4096 positions.
2. Quality: the four models trained from scratch on tinyshakespeare (characters), on an
   equal budget (the same steps and batches), several seeds; val loss mean and spread.
3. Conversion (Ainslie et al. 2023): the trained multi-head model of seed 0 turned into
   n_kv_head = 2 and 1 by mean-pooling each group's key and value heads (tinyllm/nn/gqa.py),
   evaluated at once, then "uptrained" (the same recipe, half the budget), evaluated along
   the way; against the same shapes trained from scratch (part 2).

Speed (decode tokens/s at 512..8192 cached positions, prefill) is benchmarks/bench_gqa.py's.
Every run is seeded: a rerun prints the same numbers.

    python examples/09_gqa.py            # the chapter's numbers and figures (docs/figures/09_*.png, 09_gqa.json)
    python examples/09_gqa.py --quick    # tiny budgets, for CI (out/labs/09_gqa-quick)
    python examples/09_gqa.py --replot   # the figure again from docs/figures/09_gqa.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import get_batch, prepare_data  # noqa: E402
from tinyllm.inference.kv_cache import KVCache  # noqa: E402
from tinyllm.labs import fit_curve  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.nn.gqa import mean_pool_kv_heads  # noqa: E402

KV_HEADS = (8, 4, 2, 1)


@dataclasses.dataclass(frozen=True)
class Budget:
    d_model: int = 128        # 8 heads of 16
    n_layer: int = 2
    context: int = 64
    batch: int = 16
    steps: int = 600
    uptrain: int = 300        # conversion: up to half the budget (Ainslie et al. uptrained for 5% of pretraining)
    lr: float = 3e-3
    eval_every: int = 50
    val_batches: int = 8
    seeds: tuple = (0, 1, 2)


FULL = Budget()
QUICK = Budget(d_model=32, n_layer=1, context=32, batch=8, steps=20, uptrain=10, eval_every=5, val_batches=2,
               seeds=(0, 1))


class Data:
    def __init__(self, b: Budget):
        self.tok, ds = prepare_data("tinyshakespeare", "char")
        self.b, self.train, self.vocab_size = b, ds.train, self.tok.vocab_size
        rng = np.random.default_rng(8)
        self.val = [get_batch(ds.val, b.batch, b.context, rng) for _ in range(b.val_batches)]

    def batch(self, rng):
        return get_batch(self.train, self.b.batch, self.b.context, rng)


def make_model(data: Data, b: Budget, n_kv_head: int, seed: int) -> GPT:
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=data.vocab_size, context_length=b.context, n_layer=b.n_layer, n_head=8,
                         n_kv_head=n_kv_head, d_model=b.d_model, pos_encoding="rope"))


def evaluate(model, data: Data) -> float:
    model.eval()
    with tinyllm.no_grad():
        loss = float(np.mean([model(x, y)[1].item() for x, y in data.val]))
    model.train()
    return loss


def fit(model, data: Data, b: Budget, steps: int, seed: int, lr: float) -> list:
    """`steps` AdamW steps (warmup a tenth, cosine to lr/10) on seeded batches; [(step, val loss), ...]."""
    return fit_curve(model, data.batch, lambda m: evaluate(m, data), steps, lr, b.batch, b.eval_every, seed)


# ---------------------------------------------------------------------------- parts


def memory(data: Data, b: Budget) -> dict:
    rows = []
    for nkv in KV_HEADS:
        m = make_model(data, b, nkv, 0)
        c = m.config
        measured = m.make_cache(batch_size=1).nbytes
        formula = KVCache.bytes_needed(c.n_layer, nkv, c.head_dim, c.context_length)
        big = KVCache.bytes_needed(32, 32 * nkv // 8, 128, 4096)  # 7B shape: 32 heads, groups as 8 -> nkv
        rows.append({"n_kv_head": nkv, "measured": measured, "formula": formula, "params": m.num_parameters(),
                     "per_token": formula // c.context_length, "7b_kv_heads": 32 * nkv // 8, "7b_bytes_4096": big})
        print(f"  nkv={nkv}: cache {measured:>9,} bytes (formula {formula:,}; {formula // c.context_length:,} per "
              f"token), {m.num_parameters():,} parameters; 7B shape with {32 * nkv // 8:>2} KV heads at 4096 "
              f"positions: {big / 2**30:.2f} GiB")
    return {"rows": rows}


def quality(data: Data, b: Budget) -> dict:
    runs = {}
    for nkv in KV_HEADS:
        runs[nkv] = {}
        for seed in b.seeds:
            t0 = time.process_time()
            model = make_model(data, b, nkv, seed)
            curve = fit(model, data, b, b.steps, seed, b.lr)
            runs[nkv][seed] = {"curve": curve, "cpu_s": time.process_time() - t0}
            if seed == b.seeds[0]:
                runs[nkv]["model"] = model
        finals = [runs[nkv][s]["curve"][-1][1] for s in b.seeds]
        print(f"  nkv={nkv}: val loss {np.mean(finals):.4f} ± {np.std(finals):.4f} over seeds {list(b.seeds)} "
              f"({', '.join(f'{v:.4f}' for v in finals)})", flush=True)
    return runs


def conversion(data: Data, b: Budget, runs: dict) -> dict:
    mha = runs[8]["model"]
    out = {"mha": evaluate(mha, data)}
    for nkv in (2, 1):
        pooled = mean_pool_kv_heads(mha, nkv)
        at_once = evaluate(pooled, data)
        curve = fit(pooled, data, b, b.uptrain, seed=100, lr=b.lr)
        scratch = runs[nkv][b.seeds[0]]["curve"][-1][1]
        caught_up = next((s for s, v in curve if v <= scratch), None)
        out[nkv] = {"pooled": at_once, "uptrained": curve[-1][1], "uptrain_curve": curve, "scratch": scratch,
                    "caught_up_at": caught_up}
        print(f"  8 -> {nkv} KV heads: val loss {at_once:.4f} at once; uptraining: " +
              ", ".join(f"{v:.4f} at {s}" for s, v in curve[1:]) + f"; trained from scratch ({b.steps} steps): "
              f"{scratch:.4f} (" + (f"reached at uptraining step {caught_up}" if caught_up is not None else
                                    "not reached") + f"); the multi-head source: {out['mha']:.4f}", flush=True)
    return out


def plot(runs: dict, conv: dict, b: Budget, path: Path) -> None:
    colors = {8: "#e6550d", 4: "#fd8d3c", 2: "#6baed6", 1: "#08519c"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for nkv in KV_HEADS:
        curves = np.array([[v for _, v in runs[nkv][s]["curve"]] for s in b.seeds])
        steps = [s for s, _ in runs[nkv][b.seeds[0]]["curve"]]
        axes[0].plot(steps, curves.mean(0), color=colors[nkv], label=f"nkv={nkv}")
        axes[0].fill_between(steps, curves.min(0), curves.max(0), color=colors[nkv], alpha=0.2)
    lo = min(min(v for _, v in runs[nkv][s]["curve"]) for nkv in KV_HEADS for s in b.seeds)
    axes[0].set_ylim(lo - 0.02, lo + 0.6)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("val loss (mean of seeds; band: min-max)")
    axes[0].set_title("n_head = 8, trained from scratch")
    axes[0].legend()
    names, vals, cols = [], [], []
    for nkv in (2, 1):
        labels = (("pooled", "pooled\nat once"), ("uptrained", f"+{b.uptrain}\nsteps"),
                  ("scratch", f"{b.steps} steps\nfrom 0"))
        for key, label in labels:
            names.append(f"{label}\nnkv={nkv}")
            vals.append(conv[nkv][key])
            cols.append(colors[nkv])
    axes[1].bar(range(len(vals)), vals, color=cols)
    axes[1].axhline(conv["mha"], color=colors[8], ls=":", label="multi-head (the source)")
    axes[1].set_xticks(range(len(vals)), names, fontsize=10)
    axes[1].set_ylim(min(vals + [conv["mha"]]) - 0.1, max(vals) + 0.1)
    axes[1].set_ylabel("val loss")
    axes[1].set_title("multi-head -> GQA by mean-pooling")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for 09_gqa.png and 09_gqa.json (default "
                   "docs/figures; --quick: out/labs/09_gqa-quick, so a quick run never replaces the committed ones)")
    p.add_argument("--replot", action="store_true", help="redraw 09_gqa.png from --out/09_gqa.json, no training")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/09_gqa-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        report = json.loads((args.out / "09_gqa.json").read_text())
        b = Budget(**{**report["budget"], "seeds": tuple(report["budget"]["seeds"])})
        runs = {int(nkv): {int(s): r for s, r in seeds.items()} for nkv, seeds in report["quality"].items()}
        conv = {k if k == "mha" else int(k): v for k, v in report["conversion"].items()}
        plot(runs, conv, b, args.out / "09_gqa.png")
        return report
    b = QUICK if args.quick else FULL
    runtime.keep_host_memory()
    t_start = time.perf_counter()
    data = Data(b)
    report = {"budget": dataclasses.asdict(b)}
    print(f"1. KV-cache memory (n_head=8, head_dim {b.d_model // 8}, {b.n_layer} layers, context {b.context})")
    report["memory"] = memory(data, b)
    print(f"\n2. Quality: {b.n_layer} layers, d_model {b.d_model}, 8 query heads, RoPE, context {b.context}, batch "
          f"{b.batch}, {b.steps} steps at lr {b.lr}, tinyshakespeare characters; the same batches per seed")
    runs = quality(data, b)
    print(f"\n3. Conversion of the multi-head model (seed {b.seeds[0]}), uptrained {b.uptrain} steps at lr {b.lr:g}")
    conv = conversion(data, b, runs)
    plot(runs, conv, b, args.out / "09_gqa.png")
    report["quality"] = {str(nkv): {str(s): runs[nkv][s] for s in b.seeds} for nkv in KV_HEADS}
    report["conversion"] = {str(k): v for k, v in conv.items()}
    report["seconds"] = time.perf_counter() - t_start
    command = " ".join(["python examples/09_gqa.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "09_gqa.json").write_text(json.dumps(dict(command=command, **report), indent=1) + "\n")
    print(f"\n09_gqa.png and 09_gqa.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
