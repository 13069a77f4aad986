"""Lab 11: three pretraining objectives in one harness: causal LM, masked LM, prefix LM.

1. Learning curves on equal compute: the same model (same size, same initial weights) trained with each
   objective on the same windows of the built-in story corpus (characters) for the same number of steps,
   so every step costs the same. The x-axis in two units: input tokens read, and tokens predicted (the
   positions the loss counts: all of them for the causal LM, ~15% for the masked LM, the ones after the
   prefix for the prefix LM). One yardstick for all three: the loss of the second half of a window given its
   first half, left to right (the masked LM reads the first half with the rest masked). All three use RoPE;
   a control run gives the masked LM learned positions, which without a causal mask carry the only order it has.
2. Samples: a continuation of the same prompts by each model (the masked LM by iterative unmasking, with
   one position per step, a quarter of them, and all at once), scored by the share of words that occur in
   the training text.
3. Conditional tasks, the prompt a prefix ("R31=" of "R31=13") read bidirectionally by the prefix LM and left
   to right by the causal LM, the same answer-only loss for both: reversing digits (tinyllm.data.tasks), and
   following pointers: x a permutation of 0..n-1, the answer x∘x (2 hops) or x∘x∘x (3 hops) position by
   position. Answer accuracy on held-out strings.
4. Behaviours of each objective, with examples: filling a gap from both sides (masked LM) against from
   the left only (causal LM); what the prefix LM does with a prompt read causally.

Every run is seeded (--seed): a rerun prints the same numbers.

    python examples/11_objectives.py           # the chapter's numbers; docs/figures/11_*.png, 11_objectives.json
    python examples/11_objectives.py --quick   # tiny budgets, for CI (out/labs/11_objectives-quick)
    python examples/11_objectives.py --replot  # the figures again from docs/figures/11_objectives.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import build_tokenizer, encode_corpus, get_batch, load_text, split_tokens  # noqa: E402
from tinyllm.data.tasks import IGNORE_INDEX, SEP, VOCAB, make_examples  # noqa: E402
from tinyllm.inference.unmask import unmask  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.optim import clip_grad_norm_  # noqa: E402
from tinyllm.train import TrainConfig, make_optimizer  # noqa: E402
from tinyllm.train.objectives import MASK_TOKEN, OBJECTIVES, Objective  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Budget:
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    context: int = 64
    batch: int = 16
    steps: int = 1500           # part 1: every objective takes exactly this many AdamW steps
    lr: float = 2e-3
    pos_encoding: str = "rope"  # part 1: the same for all three; the masked LM is also run with "learned"
    eval_every: int = 150
    val_batches: int = 4
    samples: int = 24           # part 2: prompts
    prompt: int = 16            # characters of each prompt
    new: int = 48               # characters written after it
    n_digits: int = 8           # part 3
    task_layers: int = 2
    task_d_model: int = 64
    task_steps: tuple = (("reverse", 1200), ("pointer x2", 2400), ("pointer x3", 4800))
    task_lr: float = 3e-3
    task_eval: int = 256        # held-out strings


FULL = Budget()
QUICK = Budget(n_layer=1, d_model=32, n_head=2, context=32, batch=4, steps=8, eval_every=4, val_batches=1,
               samples=2, prompt=8, new=8, n_digits=4, task_layers=1, task_d_model=16,
               task_steps=(("reverse", 8), ("pointer x3", 8)), task_eval=16)
NAMES = {"clm": "causal LM", "mlm": "masked LM", "prefix_lm": "prefix LM"}


class Corpus:
    """The story corpus at character level, with [MASK] in the vocabulary of all three (the causal LM never sees
    it), and fixed validation windows."""

    def __init__(self, b: Budget, seed: int):
        text = load_text("stories")
        self.tok = build_tokenizer("char", text, special_tokens=[MASK_TOKEN])
        self.train, self.val_tokens = split_tokens(encode_corpus(text, self.tok), 0.1)
        self.b, self.mask_id = b, self.tok.special_tokens[MASK_TOKEN]
        rng = np.random.default_rng([seed, 20])
        self.val = [get_batch(self.val_tokens, b.batch, b.context, rng)[0] for _ in range(b.val_batches)]
        self.words = set(re.findall(r"[A-Za-z]+", text.lower()))

    def config(self, objective: str, pos_encoding: str | None = None) -> GPTConfig:
        b = self.b
        return GPTConfig(vocab_size=self.tok.vocab_size, context_length=b.context, n_layer=b.n_layer,
                         n_head=b.n_head, d_model=b.d_model, pos_encoding=pos_encoding or b.pos_encoding,
                         causal=objective != "mlm")


# ---------------------------------------------------------------------------- part 1: learning curves


def own_val_loss(model, objective: Objective, corpus: Corpus, seed: int) -> float:
    """The objective's own loss (per predicted token) on the fixed validation windows (masks drawn from seed)."""
    rng = np.random.default_rng([seed, 21])
    losses, counts = [], []
    model.eval()
    with tinyllm.no_grad():
        for x in corpus.val:
            y = np.concatenate([x[:, 1:], x[:, :1]], axis=1)  # next tokens (the last one wraps: ignored below)
            y[:, -1] = IGNORE_INDEX
            batch = objective.make_batch(None, *x.shape, rng, windows=(x, y))
            kw = {} if batch.prefix_len is None else {"prefix_len": batch.prefix_len}
            losses.append(model(batch.idx, batch.targets, **kw)[1].item())
            counts.append(batch.predicted)
    model.train()
    return float(np.average(losses, weights=counts))


def second_half_loss(model, objective: str, corpus: Corpus) -> float:
    """Mean -log p(x_t | x_<t) over the second half of each validation window (nats/char), one yardstick for all.

    causal LM: one forward; prefix LM: the first half as its prefix; masked LM: for each t, x_<t followed by
    [MASK] at t..T-1, read at t (T/2 forwards).
    """
    T = corpus.b.context
    h = T // 2
    nll = []
    model.eval()
    with tinyllm.no_grad():
        for x in corpus.val:
            if objective == "mlm":
                for t in range(h, T):
                    inp = x.copy()
                    inp[:, t:] = corpus.mask_id
                    logits = tinyllm.to_numpy(model(inp)[0].data)[:, t]  # (B, V)
                    nll.append(-log_softmax(logits)[np.arange(len(x)), x[:, t]])
            else:
                kw = {"prefix_len": h} if objective == "prefix_lm" else {}
                logits = tinyllm.to_numpy(model(x, **kw)[0].data)[:, h - 1:T - 1]  # predicting x[:, h:T]
                lp = log_softmax(logits)
                nll.append(-np.take_along_axis(lp, x[:, h:T, None], axis=-1)[..., 0].ravel())
    model.train()
    return float(np.mean(np.concatenate([a.ravel() for a in nll])))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def fit(corpus: Corpus, objective_name: str, b: Budget, seed: int, log=print, pos_encoding=None) -> dict:
    """b.steps AdamW steps with one objective; the windows come from their own generator, so all three
    objectives read the same windows in the same order. The curve: (step, input tokens, predicted tokens,
    own val loss, second-half loss). pos_encoding: other than b.pos_encoding (the masked LM's control)."""
    tinyllm.manual_seed(seed)
    model = GPT(corpus.config(objective_name, pos_encoding))
    objective = Objective(objective_name, corpus.tok)
    cfg = TrainConfig(max_iters=b.steps, learning_rate=b.lr, min_lr=b.lr / 10, warmup_iters=max(1, b.steps // 20),
                      batch_size=b.batch)
    opt, sched = make_optimizer(model, cfg)
    windows, masks = np.random.default_rng([seed, 22]), np.random.default_rng([seed, 23])
    curve, seen, predicted = [], 0, 0
    t0 = time.perf_counter()
    for step in range(b.steps + 1):
        if step % b.eval_every == 0 or step == b.steps:
            curve.append(dict(step=step, input_tokens=seen, predicted_tokens=predicted,
                              own=own_val_loss(model, objective, corpus, seed),
                              second_half=second_half_loss(model, objective_name, corpus)))
        if step == b.steps:
            break
        batch = objective.make_batch(None, b.batch, b.context, masks,
                                     windows=get_batch(corpus.train, b.batch, b.context, windows))
        kw = {} if batch.prefix_len is None else {"prefix_len": batch.prefix_len}
        _, loss = model(batch.idx, batch.targets, **kw)
        loss.backward()
        clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        sched.step()
        seen, predicted = seen + batch.idx.size, predicted + batch.predicted
    end = curve[-1]
    who = NAMES[objective_name] + ("" if pos_encoding is None else f", {pos_encoding} positions")
    log(f"  {who:<10} own val loss {end['own']:.3f}  second half {end['second_half']:.3f} nats/char"
        f"  predicted {end['predicted_tokens']:>9,} of {end['input_tokens']:,} input tokens  "
        f"[{time.perf_counter() - t0:.0f} s]")
    return dict(model=model, curve=curve)


# ---------------------------------------------------------------------------- part 2: samples


def continue_prompts(model, objective: str, corpus: Corpus, prompts: np.ndarray, b: Budget, seed: int,
                     steps=None) -> np.ndarray:
    """(N, new) continuations of each prompt (N, prompt): temperature 0.8, top-k 20."""
    if objective == "mlm":
        idx = np.concatenate([prompts, np.full((len(prompts), b.new), corpus.mask_id)], axis=1)
        out = unmask(model, idx, corpus.mask_id, steps=steps, temperature=0.8, top_k=20, seed=seed)
    else:
        kw = {"prefix_len": prompts.shape[1]} if objective == "prefix_lm" else {}
        out = model.generate(prompts, b.new, temperature=0.8, top_k=20, seed=seed, **kw)
    return out[:, prompts.shape[1]:]


def word_rate(texts, words: set) -> float:
    """The share of whole words (letters between non-letters, the cut ends left out) found in the corpus."""
    found = total = 0
    for text in texts:
        for w in re.findall(r"[A-Za-z]+", text)[1:-1]:
            total += 1
            found += w.lower() in words
    return found / max(total, 1)


def samples(runs: dict, corpus: Corpus, b: Budget, seed: int, log=print) -> dict:
    rng = np.random.default_rng([seed, 24])
    prompts = get_batch(corpus.val_tokens, b.samples, b.prompt, rng)[0]
    out = {}
    kinds = [("clm", None), ("prefix_lm", None), ("mlm", None), ("mlm", max(1, b.new // 4)), ("mlm", 1)]
    for objective, steps in kinds:
        texts = [corpus.tok.decode(row) for row in continue_prompts(runs[objective]["model"], objective, corpus,
                                                                    prompts, b, seed, steps)]
        key = NAMES[objective] + ("" if steps is None else f", {steps} step{'s' if steps > 1 else ''}")
        out[key] = dict(word_rate=word_rate(texts, corpus.words), examples=[
            dict(prompt=corpus.tok.decode(p), text=t) for p, t in zip(prompts[:3], texts[:3])])
        log(f"  {key:<24} words found in the corpus: {out[key]['word_rate']:.0%}   e.g. "
            f"{corpus.tok.decode(prompts[0])!r} + {texts[0]!r}")
    return out


# ---------------------------------------------------------------------------- part 3: a conditional task


def task_model(b: Budget, seed: int) -> GPT:
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(VOCAB), context_length=2 * b.n_digits + 1, n_layer=b.task_layers,
                         n_head=2, d_model=b.task_d_model))


def pointer_examples(n_examples: int, n: int, hops: int, rng) -> np.ndarray:
    """int64 (N, 2n + 2) rows "C x_0..x_{n-1} = y_0..y_{n-1}": x a random permutation of 0..n-1 and
    y_k = x[x[...x[k]]] (hops lookups), e.g. hops 2, x = 2 0 1: y = x[x] = 1 2 0.

    A causal LM needs one attention hop per lookup at the answer positions (x_k, then x[x_k], ...): 2 layers
    give 2. With a bidirectional prefix, prefix position j can also look ahead, computing x[x_j] in its
    first layer for every j; an answer position then reads it there: 3 lookups in 2 layers.
    """
    x = np.argsort(rng.random((n_examples, n)), axis=1)  # (N, n): a permutation per row
    y = np.tile(np.arange(n), (n_examples, 1))
    for _ in range(hops):
        y = np.take_along_axis(x, y, axis=1)  # y <- x[y]
    marker, sep = np.full((n_examples, 1), VOCAB.index("C")), np.full((n_examples, 1), SEP)
    return np.concatenate([marker, x, sep, y], axis=1).astype(np.int64)


def task_examples(task: str, n_examples: int, n: int, rng) -> np.ndarray:
    if task.startswith("pointer"):
        return pointer_examples(n_examples, n, int(task[-1]), rng)
    return make_examples(task, n_examples, n, rng)


def task_accuracy(model, task: str, objective: str, b: Budget, seed: int) -> tuple:
    """(exact-match accuracy, per-digit accuracy) of greedy answers on b.task_eval held-out strings."""
    seq = task_examples(task, b.task_eval, b.n_digits, np.random.default_rng([seed, 26]))
    n = b.n_digits
    prompt, answer = seq[:, :n + 2], seq[:, n + 2:]
    kw = {"prefix_len": n + 2} if objective == "prefix_lm" else {}
    out = model.generate(prompt, n, temperature=0.0, **kw)[:, n + 2:]
    return float((out == answer).all(axis=1).mean()), float((out == answer).mean())


def conditional_task(b: Budget, seed: int, log=print) -> dict:
    """Train a small model per (task, objective) on the task's strings; the prefix LM's prefix is "<task> x =".

    Both see the same strings in the same order and learn from the same answer tokens (the causal LM's
    loss on the prompt would teach it random digits): only the attention over the prompt differs.
    """
    out = {}
    n = b.n_digits
    for task, steps in b.task_steps:
        out[task] = {}
        for objective in ("clm", "prefix_lm"):
            t0 = time.perf_counter()
            model = task_model(b, seed)
            cfg = TrainConfig(max_iters=steps, learning_rate=b.task_lr, min_lr=b.task_lr / 10,
                              warmup_iters=max(1, steps // 10), batch_size=32)
            opt, sched = make_optimizer(model, cfg)
            rng = np.random.default_rng([seed, 25])
            curve = []
            for step in range(steps + 1):
                if step % max(1, steps // 12) == 0 or step == steps:
                    curve.append((step, *task_accuracy(model.eval(), task, objective, b, seed)))
                    model.train()
                if step == steps:
                    break
                seq = task_examples(task, 32, n, rng)
                x, y = seq[:, :-1], seq[:, 1:].copy()
                y[:, :n + 1] = IGNORE_INDEX  # the answer tokens only, for both
                kw = {"prefix_len": n + 2} if objective == "prefix_lm" else {}
                _, loss = model(x, y, **kw)
                loss.backward()
                clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad()
                sched.step()
            out[task][objective] = curve
            log(f"  {task:<8} {NAMES[objective]:<10} exact {curve[-1][1]:.1%}, per digit {curve[-1][2]:.1%} "
                f"[{time.perf_counter() - t0:.0f} s]")
    return out


# ---------------------------------------------------------------------------- part 4: behaviours


def behaviours(runs: dict, corpus: Corpus, b: Budget, seed: int, log=print) -> dict:
    """Gap filling from both sides vs the left only; the prefix LM with its prompt read causally."""
    rng = np.random.default_rng([seed, 27])
    x = get_batch(corpus.val_tokens, 8, b.context, rng)[0]
    a, z = b.context // 2 - 3, b.context // 2 + 3  # a gap of 6 characters in the middle
    gapped = x.copy()
    gapped[:, a:z] = corpus.mask_id
    filled_mlm = unmask(runs["mlm"]["model"], gapped, corpus.mask_id, temperature=0.0)[:, a:z]
    filled_clm = runs["clm"]["model"].generate(x[:, :a], z - a, temperature=0.0)[:, a:z]
    exact = {"masked LM": float((filled_mlm == x[:, a:z]).mean()), "causal LM": float((filled_clm == x[:, a:z]).mean())}
    show = [dict(left=corpus.tok.decode(x[i, :a]), right=corpus.tok.decode(x[i, z:]), truth=corpus.tok.decode(
        x[i, a:z]), mlm=corpus.tok.decode(filled_mlm[i]), clm=corpus.tok.decode(filled_clm[i])) for i in range(3)]
    log(f"  a gap of {z - a} characters, greedy: characters right, masked LM (both sides) {exact['masked LM']:.0%}, "
        f"causal LM (left only) {exact['causal LM']:.0%}")
    for s in show:
        log(f"    ...{s['left'][-20:]!r} [{s['truth']!r} | MLM {s['mlm']!r} | CLM {s['clm']!r}] {s['right'][:20]!r}...")
    plm = runs["prefix_lm"]["model"]
    half = b.context // 2
    causal_use = second_half_loss(plm, "clm", corpus)
    prefix_use = second_half_loss(plm, "prefix_lm", corpus)
    log(f"  the prefix LM's second-half loss: first half read as its prefix {prefix_use:.3f}, read causally "
        f"{causal_use:.3f} nats/char (prefix {half} characters)")
    return dict(gap=dict(exact=exact, examples=show), prefix_lm_read_causally=causal_use,
                prefix_lm_with_prefix=prefix_use)


# ---------------------------------------------------------------------------- figures


COLORS = {"clm": "tab:blue", "mlm": "tab:red", "prefix_lm": "tab:green"}
FONT = {"font.size": 12, "axes.titlesize": 12, "legend.fontsize": 11}


def plot_curves(curves: dict, path: Path, control=None) -> None:
    """2 x 2: the own loss against input tokens and against predicted tokens; the yardstick (log) against input
    tokens; the predicted tokens against the input tokens. control: the masked LM with learned positions
    (dashed)."""
    lines = [(name, c, dict(color=COLORS[name], label=NAMES[name])) for name, c in curves.items()]
    if control:
        lines.append(("mlm", control, dict(color=COLORS["mlm"], label="masked LM, learned positions", ls="--")))
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        (own_in, own_pred), (half, count) = axes
        for name, c, style in lines:
            kw = dict(marker="o", markersize=3, **{"ls": "-", **style})
            seen = [r["input_tokens"] / 1e6 for r in c]
            own = [r["own"] for r in c]
            own_in.plot(seen, own, **kw)
            trained = [r for r in c if r["predicted_tokens"]]  # step 0 has no place on a log axis
            own_pred.plot([r["predicted_tokens"] / 1e6 for r in trained], [r["own"] for r in trained], **kw)
            half.plot(seen, [r["second_half"] for r in c], **kw)
            count.plot(seen, [r["predicted_tokens"] / 1e6 for r in c], **{**kw, "marker": None})
        own_in.set(xlabel="input tokens read (millions) = compute", ylabel="own val loss (nats per predicted char)",
                   title="each objective's own loss, per input token")
        own_pred.set(xscale="log", xlabel="tokens predicted (millions, log)", ylabel="own val loss",
                     title="the same, per predicted token")
        half.set(yscale="log", xlabel="input tokens read (millions)", ylabel="nats/char (log)",
                 title="one yardstick: 2nd half given the 1st")
        count.set(xlabel="input tokens read (millions)", ylabel="tokens predicted (millions)",
                  title="what each step's loss counts")
        for ax in (own_in, own_pred):
            ax.set_ylim(None, min(4.2, ax.get_ylim()[1]))
        half.set_yticks([t for t in (0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 3, 4) if half.get_ylim()[0] <= t <= 4.5])
        half.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        half.yaxis.set_minor_formatter(NullFormatter())
        for ax in axes.ravel():
            ax.grid(alpha=0.3)
        count.legend(loc="upper left", title="every panel")  # the other panels' curves fill their corners
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def plot_task(task: dict, path: Path) -> None:
    """One panel per task: exact-match (solid) and per-digit (dotted) accuracy against steps, causal vs prefix LM."""
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(1, len(task), figsize=(4.4 * len(task), 4.4), squeeze=False)
        for i, (ax, (name, runs)) in enumerate(zip(axes[0], task.items())):
            for objective, curve in runs.items():
                steps, exact, digit = zip(*curve)
                c, who = COLORS[objective], NAMES[objective]
                ax.plot(steps, np.asarray(exact) * 100, "o-", color=c, label=f"{who}: exact", markersize=3)
                ax.plot(steps, np.asarray(digit) * 100, ":", color=c, label=f"{who}: per digit")
            ax.set(title=f"{name} (held-out strings)", xlabel="step", ylim=(-3, 103))
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_ylabel("accuracy (%)")
                ax.legend(fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def replot(out: Path) -> None:
    """Redraw the figures from out/11_objectives.json (the numbers a full run saved), without training."""
    report = json.loads((out / "11_objectives.json").read_text())
    if "curves" in report:
        plot_curves(report["curves"], out / "11_curves.png", report.get("mlm_learned_positions"))
    if "task" in report:
        plot_task(report["task"], out / "11_task.png")
    print(f"figures redrawn from {out / '11_objectives.json'}")


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and budgets (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for the 11_*.png figures and 11_objectives.json "
                   "(default docs/figures; --quick: out/labs/11_objectives-quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="1234", help="which parts to run (default 1234; 2 and 4 need 1)")
    p.add_argument("--replot", action="store_true", help="redraw the figures from --out's 11_objectives.json only")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/11_objectives-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        replot(args.out)
        return {}
    b = QUICK if args.quick else FULL
    runtime.keep_host_memory()
    t_start = time.perf_counter()
    report, runs = {}, {}
    corpus = Corpus(b, args.seed) if set("124") & set(args.parts) else None
    if "1" in args.parts:
        print(f"1. Learning curves: {b.n_layer} layers, d_model {b.d_model}, context {b.context}, batch {b.batch}, "
              f"{b.pos_encoding} positions, {b.steps} steps at peak lr {b.lr}; the same initial weights and windows "
              f"for each objective")
        runs = {name: fit(corpus, name, b, args.seed) for name in OBJECTIVES}
        report["curves"] = {name: run["curve"] for name, run in runs.items()}
        report["mlm_learned_positions"] = fit(corpus, "mlm", b, args.seed, pos_encoding="learned")["curve"]
        plot_curves(report["curves"], args.out / "11_curves.png", report["mlm_learned_positions"])
    if "2" in args.parts and runs:
        print(f"\n2. Samples: {b.samples} prompts of {b.prompt} characters, {b.new} more, temperature 0.8, top-k 20")
        report["samples"] = samples(runs, corpus, b, args.seed)
    if "3" in args.parts:
        print(f"\n3. Conditional tasks: {b.n_digits} digits, {b.task_layers} layers of {b.task_d_model}, steps "
              f"{dict(b.task_steps)}, the answer tokens scored; greedy answers to {b.task_eval} held-out strings")
        report["task"] = task = conditional_task(b, args.seed)
        plot_task(task, args.out / "11_task.png")
    if "4" in args.parts and runs:
        print("\n4. Behaviours")
        report["behaviours"] = behaviours(runs, corpus, b, args.seed)
    report["seconds"] = time.perf_counter() - t_start
    command = " ".join(["python examples/11_objectives.py", *(argv if argv is not None else sys.argv[1:])])
    (args.out / "11_objectives.json").write_text(json.dumps(dict(command=command, **report), indent=1) + "\n")
    print(f"\nfigures and 11_objectives.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
