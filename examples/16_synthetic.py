"""Lab 16: synthetic data: real vs synthetic vs mixed, cleaning and deduplication, and training on your own samples.

The real text is tinyshakespeare, cut in three: A (the first 40%) trains a *teacher*,
B (the next 50%) is the real training text, H (the last 10%) is held out. Every model
below is the same character GPT trained for the same number of steps on a corpus of
the same size D, and every one is scored on H (nats per character): the question is
always "how good is this data for modelling real text?".

1. Real vs synthetic vs mixed: students trained on
     real        B[:D]
     model       D characters sampled (temperature 1) from the teacher, trained on A
     template    D characters of the stories grammar (tinyllm/data/synthetic/stories.py)
     mix p       p·D model characters + (1 - p)·D real ones, p = 25%, 50%, 75%
2. Cleaning and deduplication: a "raw" corpus made of B's speeches with web-like damage:
   some speeches copied many times (exactly, and with a few words changed), and junk
   documents (menus of repeated lines, symbol soup, number lists, bullet lists). Students on
   raw, cleaned (tinyllm.data.clean, thresholds set for short speeches), and cleaned then
   deduplicated (tinyllm.data.dedup). Held-out loss, what each step removed (and whether it
   was junk), and memorization: the share of 8-, 16- and 32-character strings of 20,000
   sampled characters found verbatim in the student's training text, and an extraction
   probe: from a speech's first 32 characters, how many of the next 48 the student
   reproduces greedily, for copied speeches, speeches seen once, and speeches never seen.
3. Recursive training (Shumailov et al. 2023, "The curse of recursion"): generation 0 is the
   real student of part 1; generation g + 1 trains from scratch on D characters sampled from
   generation g. Per generation: held-out loss, and the tails of its samples' distributions:
   distinct words, the share of words that are rare in real text, the share of invented
   words, the mass of rare characters, KL(real || sample) of the character frequencies.

    python examples/16_synthetic.py           # the chapter's numbers and figures (docs/figures/16_*.png, 16_synthetic.json)
    python examples/16_synthetic.py --quick   # a tiny model, small corpora, 2 generations (CI; figures go to --out)
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import encode_corpus, load_text  # noqa: E402
from tinyllm.data.clean import CleanReport, default_rules  # noqa: E402
from tinyllm.data.dedup import dedup  # noqa: E402
from tinyllm.data.synthetic.duplicates import change  # noqa: E402
from tinyllm.data.synthetic.self_instruct import ModelSampler, sample_documents  # noqa: E402
from tinyllm.data.synthetic.stories import generate_stories  # noqa: E402
from tinyllm.nn.config import GPTConfig  # noqa: E402
from tinyllm.tokenizer import CharTokenizer  # noqa: E402
from tinyllm.train import TrainConfig, train  # noqa: E402
from tinyllm.train.loop import RunPlan  # noqa: E402

JUNK_CHARS = "#|*0123456789•"  # the junk documents' characters that Shakespeare does not have
MEMO_NS = (8, 16, 32)          # memorization: verbatim strings of these many characters
PROBE = (32, 48)               # extraction: a speech's first 32 characters in, 48 greedy characters out
SIZES = {  # model, training and corpus sizes: the full lab and --quick
    False: dict(n_layer=3, n_head=4, d_model=96, context_length=64, batch_size=16, steps=400, teacher_steps=800,
                D=200_000, generations=4, eval_windows=1024, memo_chars=20_000, copies=(30, 20), type_window=10_000),
    True: dict(n_layer=2, n_head=2, d_model=32, context_length=32, batch_size=8, steps=40, teacher_steps=80,
               D=16_000, generations=2, eval_windows=64, memo_chars=2_000, copies=(6, 6), type_window=1_500),
}


# ---------------------------------------------------------------------------- training and scoring


class Lab:
    """The shared pieces: the tokenizer, the held-out tokens, the sizes, where runs go."""

    def __init__(self, quick: bool, out: Path, real: str):
        self.size, self.quick, self.out = SIZES[quick], quick, out
        n = len(real)
        self.A, self.B, self.H = real[:int(0.4 * n)], real[int(0.4 * n):int(0.9 * n)], real[int(0.9 * n):]
        self.tok = CharTokenizer.from_text(real + generate_stories(50) + JUNK_CHARS)
        self.heldout = encode_corpus(self.H, self.tok)
        self.runs: dict[str, float] = {}

    def model_fields(self) -> dict:
        s = self.size
        return dict(n_layer=s["n_layer"], n_head=s["n_head"], d_model=s["d_model"], context_length=s["context_length"])

    def train(self, name: str, text: str, steps: int | None = None, seed: int = 0):
        """A fresh GPT trained on `text` (the shared tokenizer; H as the validation split) -> the model."""
        s = self.size
        steps = steps or s["steps"]
        cfg = TrainConfig(out_dir=str(self.out / "runs" / name), batch_size=s["batch_size"], max_iters=steps,
                          learning_rate=2e-3, min_lr=2e-4, warmup_iters=steps // 10, eval_interval=steps,
                          eval_iters=2, sample_tokens=0, seed=seed)
        plan = RunPlan(cfg=cfg, device="cpu", state=None, tokenizer=self.tok, resume=False,
                       splits={"train": encode_corpus(text, self.tok), "val": self.heldout},
                       model_config=GPTConfig(vocab_size=self.tok.vocab_size, **self.model_fields()))
        t0 = time.perf_counter()
        model = train(cfg, self.model_fields(), plan=plan).model.eval()
        loss = self.heldout_loss(model)
        self.runs[name] = loss
        print(f"  {name:22s} {len(text):>9,} chars  held-out loss {loss:.4f}  ({time.perf_counter() - t0:.0f} s)")
        return model

    def heldout_loss(self, model) -> float:
        """Mean cross-entropy (nats/char) over fixed windows spread evenly over H: the same for every model."""
        T = self.size["context_length"]
        starts = np.linspace(0, len(self.heldout) - T - 1, self.size["eval_windows"]).astype(np.int64)
        idx = starts[:, None] + np.arange(T + 1)[None, :]                   # (W, T + 1)
        windows = np.asarray(self.heldout, dtype=np.int64)[idx]
        losses = []
        with tinyllm.no_grad():
            for b in range(0, len(windows), 64):
                x, y = windows[b:b + 64, :-1], windows[b:b + 64, 1:]
                _, loss = model(x, y)
                losses.append(float(tinyllm.to_numpy(loss.data)) * len(x))
        return sum(losses) / len(windows)

    def sample(self, model, n_chars: int, seed: int) -> str:
        """About n_chars characters from the model at temperature 1: rows started from a newline."""
        T = self.size["context_length"]
        sampler = ModelSampler(model, self.tok, temperature=1.0, batch_size=128)
        docs = sample_documents(sampler, ["\n"], math.ceil(n_chars / (T - 1)), T - 1, seed=seed, keep_prompt=False)
        return "\n".join(d["text"] for d in docs)[:n_chars]


# ---------------------------------------------------------------------------- 1. real vs synthetic vs mixed


def real_vs_synthetic(lab: Lab) -> dict:
    D = lab.size["D"]
    print(f"1. Real vs synthetic vs mixed: D = {D:,} characters each, {lab.size['steps']} steps, scored on H "
          f"({len(lab.H):,} characters)")
    teacher = lab.train("teacher (on A)", lab.A, steps=lab.size["teacher_steps"], seed=1)
    synthetic = lab.sample(teacher, D, seed=2)
    template = generate_stories(math.ceil(D / 400), seed=3)[:D]
    real = lab.B[:D]
    corpora = {"real": real, "model": synthetic, "template": template}
    for p in (0.25, 0.5, 0.75):
        k = int(p * D)
        corpora[f"mix {int(p * 100)}% model"] = synthetic[:k] + "\n" + real[:D - k]
    models = {name: lab.train(name, text) for name, text in corpora.items()}
    return dict(D=D, teacher=lab.runs["teacher (on A)"], loss={name: lab.runs[name] for name in corpora},
                synthetic_sample=synthetic[:300]), models["real"]


# ---------------------------------------------------------------------------- 2. cleaning and deduplication


def junk_documents(n: int, rng: np.random.Generator) -> list[str]:
    """Web-like junk: menus of repeated lines, symbol soup, number lists, bullet lists."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append("\n".join(["Home | About | Contact | Login"] * int(rng.integers(4, 9))))
        elif kind == 1:
            out.append("".join(rng.choice(list("#$&*|-:;.!?3"), size=int(rng.integers(60, 200)))))
        elif kind == 2:
            out.append(", ".join(str(v) for v in rng.integers(0, 100_000, size=int(rng.integers(20, 60)))))
        else:
            out.append("\n".join(f"• item {j} | see more" for j in range(int(rng.integers(5, 12)))))
    return out


def raw_corpus(lab: Lab, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """(documents, their kind: real | copy | junk, the speeches that were copied)."""
    speeches = [s for s in lab.B.split("\n\n") if s.strip()]
    n_copied, times = lab.size["copies"]
    D = lab.size["D"]
    copied = [speeches[i] for i in rng.choice(len(speeches) // 2, size=n_copied, replace=False)]
    docs, kinds, size = [], [], 0
    for s in speeches:  # unique speeches up to ~70% of D
        if size > 0.7 * D:
            break
        docs.append(s)
        kinds.append("real")
        size += len(s) + 2
    filler = lab.B.split()
    for s in copied:  # each copied `times` times: half exactly, half with ~5% of its words changed
        for t in range(times):
            words = s.split(" ")
            docs.append(s if t % 2 == 0 else " ".join(change(words, "edit", 0.05, rng, filler)))
            kinds.append("copy")
    junk = junk_documents(max(8, int(0.1 * D) // 150), rng)
    docs += junk
    kinds += ["junk"] * len(junk)
    order = rng.permutation(len(docs))
    return [docs[i] for i in order], [kinds[i] for i in order], copied


def ngrams(text: str, n: int) -> set:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def memorized(sample: str, grams: set, n: int) -> float:
    """The share of the sample's n-character strings found verbatim in `grams`."""
    mine = [sample[i:i + n] for i in range(len(sample) - n + 1)]
    return sum(g in grams for g in mine) / max(1, len(mine))


def common_prefix(a: str, b: str) -> int:
    """How many characters two strings share from the start: common_prefix("abcx", "abcd") -> 3."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def extraction(model, tok, texts: list[str], prefix: int = PROBE[0], n: int = PROBE[1]) -> float:
    """Mean characters a model continues verbatim (greedy) from each text's first `prefix` characters.

    An extraction probe (Carlini et al. 2021): a memorized text comes back word for word.
    """
    texts = [t for t in texts if len(t) >= prefix + n]
    ids = np.array([tok.encode(t[:prefix]) for t in texts], dtype=np.int64)  # (N, prefix): a char per token
    out = model.generate(ids, n, temperature=0.0)[:, prefix:]                 # (N, n) greedy
    return float(np.mean([common_prefix(tok.decode(row.tolist()), t[prefix:prefix + n])
                          for row, t in zip(out, texts)]))


def cleaning_and_dedup(lab: Lab) -> dict:
    rng = np.random.default_rng(4)
    docs, kinds, copied = raw_corpus(lab, rng)
    print(f"\n2. Cleaning and deduplication: a raw corpus of {len(docs):,} documents "
          f"({Counter(kinds)['real']:,} speeches, {Counter(kinds)['copy']:,} copies of {len(copied)} speeches, "
          f"{Counter(kinds)['junk']:,} junk)")
    # short speeches are the domain here: Gopher's 50-word minimum would remove most of Shakespeare
    rules = default_rules(thresholds={"min_words": 3, "stop_words": 0})
    report = CleanReport(rules=rules)
    cleaned = [report.add(d, rules) for d in docs]  # the normalized text, or None when a rule removed it
    clean_docs = [t for t in cleaned if t is not None]
    clean_kinds = [k for k, t in zip(kinds, cleaned) if t is not None]
    keep = dedup(clean_docs, threshold=0.8, ngram=3)
    dedup_docs = [d for d, k in zip(clean_docs, keep) if k]
    removed_by_clean = Counter(k for k, t in zip(kinds, cleaned) if t is None)
    removed_by_dedup = Counter(k for k, m in zip(clean_kinds, keep) if not m)
    print(f"  cleaning removed {sum(removed_by_clean.values())}: {dict(removed_by_clean)}; "
          f"rules: {report.removed}")
    print(f"  dedup removed {sum(removed_by_dedup.values())}: {dict(removed_by_dedup)} "
          f"(of {Counter(kinds)['copy']} copies planted)")
    corpora = {"raw": "\n\n".join(docs), "cleaned": "\n\n".join(clean_docs),
               "cleaned + deduplicated": "\n\n".join(dedup_docs)}
    copied_set = set(copied)
    times = lab.size["copies"][1]
    probes = {f"copied {times}x": copied,  # copied `times` times in the raw corpus, once after deduplication
              "seen once": [d for d, k in zip(docs, kinds) if k == "real" and d not in copied_set][:len(copied)],
              "never seen": [s for s in lab.H.split("\n\n") if s.strip()][:len(copied)]}
    heldout_grams = {n: memorized(lab.H, ngrams(corpora["raw"], n), n) for n in MEMO_NS}
    out = dict(documents=len(docs), kinds=dict(Counter(kinds)), removed_by_clean=dict(removed_by_clean),
               removed_by_rule=report.removed, removed_by_dedup=dict(removed_by_dedup), runs={},
               heldout_overlap_with_raw=heldout_grams)
    for name, text in corpora.items():
        model = lab.train(name, text, seed=5)
        sample = lab.sample(model, lab.size["memo_chars"], seed=6)
        r = out["runs"][name] = dict(chars=len(text), loss=lab.runs[name],
                                     verbatim={n: memorized(sample, ngrams(text, n), n) for n in MEMO_NS},
                                     extraction={k: extraction(model, lab.tok, v) for k, v in probes.items()})
        print(f"  {'':22s} its samples' strings found in its training text: " +
              ", ".join(f"{n} chars {v:.1%}" for n, v in r["verbatim"].items()))
        print(f"  {'':22s} greedy characters reproduced after a speech's first {PROBE[0]}: " +
              ", ".join(f"{k} {v:.1f}" for k, v in r["extraction"].items()))
    print("  for scale, held-out text's strings found in the raw corpus: " +
          ", ".join(f"{n} chars {v:.1%}" for n, v in heldout_grams.items()))
    return out


# ---------------------------------------------------------------------------- 3. recursive training


def words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalpha() else " " for c in text).split()]


def tails(text: str, real_words: Counter, real_chars: Counter, window: int) -> dict:
    """The tails of a text's distributions, measured against the real text's."""
    w = words(text)
    counts = Counter(w)
    chars = Counter(text)
    n_chars, total_real = sum(chars.values()), sum(real_chars.values())
    rare_chars = {c for c, k in real_chars.items() if k / total_real < 1e-3}
    vocab = sorted(set(real_chars) | set(chars))
    p = np.array([real_chars[c] + 0.5 for c in vocab]) / (total_real + 0.5 * len(vocab))  # add-half smoothing
    q = np.array([chars[c] + 0.5 for c in vocab]) / (n_chars + 0.5 * len(vocab))
    return dict(distinct_words=len(set(w[:window])),  # among the first `window` words: comparable across texts
                rare_word_share=sum(k for x, k in counts.items() if 0 < real_words[x] <= 3) / max(1, len(w)),
                invented_word_share=sum(k for x, k in counts.items() if real_words[x] == 0) / max(1, len(w)),
                rare_char_mass=sum(chars[c] for c in rare_chars) / max(1, n_chars),
                kl_real_sample=float(np.sum(p * np.log(p / q))),
                rank_frequency=[k for _, k in counts.most_common()])


def recursive(lab: Lab, gen0) -> dict:
    D, G = lab.size["D"], lab.size["generations"]
    print(f"\n3. Recursive training: each generation trains on {D:,} characters sampled from the one before")
    real = lab.B[:D]
    real_words, real_chars = Counter(words(lab.B)), Counter(lab.B)
    window = lab.size["type_window"]
    gens = [dict(generation="real text", **tails(real, real_words, real_chars, window))]
    model = gen0
    for g in range(G + 1):
        loss = lab.runs["real"] if g == 0 else lab.runs[f"generation {g}"]
        sample = lab.sample(model, D, seed=100 + g)
        t = tails(sample, real_words, real_chars, window)
        gens.append(dict(generation=g, loss=loss, **t))
        print(f"  generation {g}: held-out loss {loss:.4f}; its samples: {t['distinct_words']} distinct "
              f"words in {window:,}, rare words {t['rare_word_share']:.2%}, invented {t['invented_word_share']:.2%}, "
              f"rare characters {t['rare_char_mass']:.3%}, KL(real || sample) {t['kl_real_sample']:.4f}")
        if g < G:
            model = lab.train(f"generation {g + 1}", sample, seed=200 + g)
    r = gens[0]
    print(f"  real text:    {r['distinct_words']} distinct words in {window:,}, rare words "
          f"{r['rare_word_share']:.2%}, rare characters {r['rare_char_mass']:.3%}")
    return dict(generations=gens)


# ---------------------------------------------------------------------------- figures


def plot(report: dict, out: Path) -> None:
    loss = report["real_vs_synthetic"]["loss"]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    names = list(loss)
    colors = ["#1e88e5" if n == "real" else "#e53935" if n in ("model", "template") else "#8e24aa" for n in names]
    ax.barh(names[::-1], [loss[n] for n in names][::-1], color=colors[::-1])
    for i, n in enumerate(names[::-1]):
        ax.text(loss[n], i, f" {loss[n]:.3f}", va="center", fontsize=9)
    ax.set(xlabel="held-out loss on real text H (nats/char; lower is better)",
           xlim=(min(loss.values()) * 0.9, max(loss.values()) * 1.12),
           title="Same model, same steps, same corpus size: what the data was")
    fig.tight_layout()
    fig.savefig(out / "16_real_vs_synthetic.png", dpi=130)
    plt.close(fig)

    runs = report["cleaning"]["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    names = list(runs)
    axes[0].bar(names, [runs[n]["loss"] for n in names], color="#1e88e5")
    for i, n in enumerate(names):
        axes[0].text(i, runs[n]["loss"], f"{runs[n]['loss']:.3f}", ha="center", va="bottom", fontsize=11)
    axes[0].set(ylabel="held-out loss (nats/char)", ylim=(min(runs[n]["loss"] for n in names) * 0.97,
                                                          max(runs[n]["loss"] for n in names) * 1.02))
    probes = list(runs[names[0]]["extraction"])
    width = 0.8 / len(probes)
    for k, (probe, color) in enumerate(zip(probes, ("#e53935", "#fb8c00", "#9e9e9e"))):
        axes[1].bar(np.arange(len(names)) + (k - 1) * width, [runs[n]["extraction"][probe] for n in names], width,
                    color=color, label=probe)
    axes[1].set_xticks(np.arange(len(names)), names)
    axes[1].set(ylabel=f"characters reproduced verbatim\n(greedy, after {PROBE[0]} of a speech)")
    axes[1].legend(fontsize=10)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=10)
        ax.set_xticks(np.arange(len(names)), [n.replace(" + ", "\n+ ") for n in names])  # two lines: room to read
    fig.suptitle("Raw, cleaned, cleaned + deduplicated: held-out loss and memorization", fontsize=12)
    fig.tight_layout()
    fig.savefig(out / "16_cleaning.png", dpi=130)
    plt.close(fig)

    gens = report["recursive"]["generations"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    cmap = plt.get_cmap("viridis")
    for k, g in enumerate(gens):
        rf = np.array(g["rank_frequency"], dtype=np.float64)
        label = "real" if g["generation"] == "real text" else f"gen {g['generation']}"
        axes[0].loglog(np.arange(1, len(rf) + 1), rf / rf.sum(), color="black" if k == 0 else cmap(k / len(gens)),
                       lw=2 if k == 0 else 1.2, label=label)
    axes[0].set(xlabel="word rank", ylabel="frequency", title="Word rank-frequency of each generation's samples")
    axes[0].legend(fontsize=8)
    model_gens = [g for g in gens if g["generation"] != "real text"]
    x = [g["generation"] for g in model_gens]
    axes[1].plot(x, [100 * g["rare_word_share"] for g in model_gens], "o-", label="rare real words (count <= 3)")
    axes[1].plot(x, [100 * g["invented_word_share"] for g in model_gens], "s-", label="invented words")
    axes[1].axhline(100 * gens[0]["rare_word_share"], color="black", ls=":", lw=1, label="rare words, real text")
    axes[1].set(xlabel="generation", ylabel="% of sampled words", title="The tails, generation by generation")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "16_recursive.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> dict:
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between steps
    # small matrices: one BLAS and kernel thread beats several, whose spin-waits cost more than the work
    with runtime.FixedThreads(1):
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model and small corpora (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for figures and JSON (default docs/figures; "
                   "--quick: out/labs/16_synthetic-quick); runs go to out/labs/16_synthetic[-quick]/runs")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/16_synthetic-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Path("out/labs/16_synthetic-quick" if args.quick else "out/labs/16_synthetic")
    t0 = time.perf_counter()
    lab = Lab(args.quick, runs, load_text("tinyshakespeare"))
    report = dict(sizes=lab.size)
    report["real_vs_synthetic"], gen0 = real_vs_synthetic(lab)
    report["cleaning"] = cleaning_and_dedup(lab)
    report["recursive"] = recursive(lab, gen0)
    report["seconds"] = time.perf_counter() - t0
    plot(report, args.out)
    for g in report["recursive"]["generations"]:
        g["rank_frequency"] = g["rank_frequency"][:2000]  # the figure's data, cut to keep the JSON small
    (args.out / "16_synthetic.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nfigures and 16_synthetic.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
