"""Lab 5: what the sampling knobs do to text: entropy against diversity and quality; loops at temperature 0.

1. A grid of knobs (temperature alone; top-k, top-p, min-p at T = 1; a few mixes)
   on a character model of tinyshakespeare. For each setting, S samples for
   each of P prompts (16 characters from the held-out text, 48 new characters,
   so that prompt + sample fit the model's 64-character context and one
   forward pass rescores every step exactly). Per setting:
     entropy      mean over steps of H(the distribution each token was drawn from), nats
     distinct-n   unique word n-grams / all word n-grams of a prompt's S samples (Li et al. 2016), n = 1, 2, 3
     self-sim     mean Jaccard overlap of the 4-character n-gram sets of two samples of one prompt
     NLL          the model's own -log p (temperature 1) of the tokens it sampled, nats/char
   and the same measures for real held-out text (its entropy: the model's, on that text).
   Figures: diversity and quality against entropy.
2. Repetition: R prompts continued for 240 characters greedily (T = 0), greedily
   with a repetition penalty, and at T = 0.7 and 1.0. A greedy model with a
   64-character context is a deterministic map on 64-character windows, so it
   must end in a loop; we measure where it starts, its period, and the share of
   repeated character n-grams, against real text.

Every run is seeded: a rerun prints the same numbers.

    python examples/05_sampling.py            # the chapter's numbers and figures (docs/figures/05-*.png)
    python examples/05_sampling.py --quick    # a tiny model and a small grid, for CI (figures go to --out)
    python examples/05_sampling.py --ckpt out/shakespeare-char-cpu   # any `tinyllm train` run of a char model
    python examples/05_sampling.py --dashboard-shot   # only docs/figures/05-dashboard.png (Playwright + chromium)
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinyllm import backend, runtime  # noqa: E402
from tinyllm.data import load_text  # noqa: E402
from tinyllm.inference.sampling import entropy, filter_logits  # noqa: E402
from tinyllm.labs import lab_model  # noqa: E402
from tinyllm.tensor import no_grad  # noqa: E402

PROMPT_LEN = 16
FAMILIES = ("temperature", "top-k", "top-p", "min-p", "mix")
COLORS = dict(zip(FAMILIES, ("#1e88e5", "#43a047", "#e53935", "#8e24aa", "#fb8c00")))


def grid(quick: bool) -> list[dict]:
    """The settings: (family, knobs); every family but temperature samples at T = 1."""
    if quick:
        temps, ks, ps, mins = (0.0, 0.7, 1.0, 1.5), (5,), (0.9,), (0.1,)
    else:
        temps = (0.0, 0.3, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0)
        ks, ps, mins = (2, 5, 10, 20, 40), (0.3, 0.5, 0.7, 0.8, 0.9, 0.95), (0.02, 0.05, 0.1, 0.2, 0.4)
    out = [dict(family="temperature", temperature=t) for t in temps]
    out += [dict(family="top-k", top_k=k) for k in ks]
    out += [dict(family="top-p", top_p=p) for p in ps]
    out += [dict(family="min-p", min_p=m) for m in mins]
    if not quick:
        out += [dict(family="mix", temperature=0.7, top_p=0.9), dict(family="mix", temperature=1.5, top_p=0.9),
                dict(family="mix", temperature=1.5, min_p=0.1), dict(family="mix", temperature=2.0, min_p=0.2)]
    return out


def name(setting: dict) -> str:
    knobs = {k: v for k, v in setting.items() if k != "family"}
    return " ".join(f"{k.replace('temperature', 'T').replace('_', '-')}={v:g}" for k, v in knobs.items())


def short(setting: dict) -> str:
    """A compact label for a figure: dict(temperature=1.5, top_p=0.9) -> "T1.5 p.9"."""
    marks = dict(temperature="T", top_k="k", top_p="p", min_p="m")
    return " ".join(marks[k] + f"{v:g}".lstrip("0") for k, v in knobs_of(setting).items())


def knobs_of(setting: dict) -> dict:
    return {k: v for k, v in setting.items() if k in ("temperature", "top_k", "top_p", "min_p")}


# ---------------------------------------------------------------------------- measures


def words(text: str) -> list[str]:
    return text.split()


def distinct_n(texts, n: int) -> float:
    """Unique word n-grams / all word n-grams, pooled over texts. distinct_n(["a b a b"], 2) -> 2/3."""
    grams = [tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def char_ngrams(text: str, n: int) -> set:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def self_similarity(texts, n: int = 4) -> float:
    """Mean over pairs of |A ∩ B| / |A ∪ B| of their character n-gram sets: 1 = identical, 0 = nothing shared."""
    sets = [char_ngrams(t, n) for t in texts]
    pairs = [len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2) if a | b]
    return float(np.mean(pairs)) if pairs else 0.0


def repeated_share(text: str, n: int) -> float:
    """Share of the character n-grams of text that already occurred earlier in it. ("abcabc", 3) -> 1/4 (abc)."""
    seen, repeats, total = set(), 0, 0
    for i in range(len(text) - n + 1):
        g = text[i:i + n]
        repeats += g in seen
        total += 1
        seen.add(g)
    return repeats / total if total else 0.0


def find_loop(seq, min_len: int = 64):
    """(onset, period) of the shortest period p with which seq ends: seq[j] == seq[j + p] for every j >= onset,
    over a periodic stretch of at least max(2p, min_len) tokens; (None, None) if it does not end in one.

    find_loop([5, 1, 2, 3, 1, 2, 3, 1, 2, 3], min_len=6) -> (1, 3)
    """
    seq = list(seq)
    n = len(seq)
    for p in range(1, n // 2 + 1):
        j = n - p - 1
        while j >= 0 and seq[j] == seq[j + p]:
            j -= 1
        onset = j + 1
        if n - onset >= max(2 * p, min_len):
            return onset, p
    return None, None


# ---------------------------------------------------------------------------- part 1: the grid


@no_grad()
def step_logits(model, rows):
    """The logits every generated token was drawn from: one forward over prompt + sample (<= context)."""
    logits, _ = model(np.asarray(rows))  # (B, T, V)
    return backend.to_numpy(logits.data).astype(np.float64)[:, PROMPT_LEN - 1:-1]  # (B, new, V)


def measure(model, rows, setting) -> dict:
    """The measures of part 1 for token rows (B, PROMPT_LEN + new) drawn with `setting` (None: real text)."""
    z = step_logits(model, rows)  # (B, new, V)
    new = np.asarray(rows)[:, PROMPT_LEN:]  # (B, new)
    logp = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)  # log softmax at T = 1
    nll = -np.take_along_axis(logp, new[..., None], axis=-1).mean()
    z2 = z.reshape(-1, z.shape[-1])  # (B, new, V) -> (B·new, V)
    drawn_from = z2 if setting is None else filter_logits(z2, **knobs_of(setting))
    # KL(q || p) per step, q the sampling distribution, p the model's: in expectation NLL = H(q) + KL(q || p)
    logq = drawn_from - np.logaddexp.reduce(drawn_from, axis=-1, keepdims=True)
    q = np.exp(logq)
    kl = (q * np.where(q > 0, logq - logp.reshape(z2.shape), 0.0)).sum(axis=-1)  # subtle: 0 · -inf would be nan
    return dict(entropy=float(entropy(drawn_from).mean()), model_entropy=float(entropy(z).mean()), nll=float(nll),
                kl=float(kl.mean()))


def diversity(texts, per_prompt: int) -> dict:
    groups = [texts[i:i + per_prompt] for i in range(0, len(texts), per_prompt)]
    out = {f"distinct_{n}": float(np.mean([distinct_n(g, n) for g in groups])) for n in (1, 2, 3)}
    out["self_similarity"] = float(np.mean([self_similarity(g) for g in groups]))
    return out


def part1(model, tok, val: str, n_prompts: int, per_prompt: int, quick: bool, seed: int) -> dict:
    new = model.config.context_length - PROMPT_LEN
    starts = np.linspace(0, len(val) // 2, n_prompts).astype(int)
    prompts = [val[s:s + PROMPT_LEN] for s in starts]
    idx = np.repeat(np.asarray([tok.encode(p) for p in prompts]), per_prompt, axis=0)  # (P·S, PROMPT_LEN)
    results = []
    for setting in grid(quick):
        t0 = time.perf_counter()
        rows = model.generate(idx, new, seed=seed, **knobs_of(setting))
        texts = [tok.decode(r[PROMPT_LEN:].tolist()) for r in rows]
        r = dict(setting=setting, name=name(setting), **measure(model, rows, setting),
                 **diversity(texts, per_prompt), example=prompts[0] + texts[0])
        results.append(r)
        print(f"  {r['name']:<18} H {r['entropy']:5.3f}  NLL {r['nll']:5.3f}  KL {r['kl']:5.3f}  "
              f"distinct-1/2/3 {r['distinct_1']:.2f} {r['distinct_2']:.2f} {r['distinct_3']:.2f}  "
              f"self-sim {r['self_similarity']:.3f}  "
              f"({time.perf_counter() - t0:.1f} s)  {texts[0][:40]!r}")
    # real text: random held-out windows, in groups of per_prompt, measured the same way
    rng = np.random.default_rng(seed)
    starts = rng.integers(len(val) // 2, len(val) - PROMPT_LEN - new, size=len(idx))
    rows = np.asarray([tok.encode(val[s:s + PROMPT_LEN + new]) for s in starts])
    human = dict(name="real text", **measure(model, rows, None),
                 **diversity([val[s + PROMPT_LEN:s + PROMPT_LEN + new] for s in starts], per_prompt))
    print(f"  {'real text':<18} H {human['entropy']:5.3f}  NLL {human['nll']:5.3f}  KL   -    distinct-1/2/3 "
          f"{human['distinct_1']:.2f} {human['distinct_2']:.2f} {human['distinct_3']:.2f}  "
          f"self-sim {human['self_similarity']:.3f}")
    return dict(prompts=prompts, new_tokens=new, per_prompt=per_prompt, settings=results, human=human)


def label_offsets(ax, xy, texts, fontsize: float) -> list[tuple[float, float]]:
    """(dx, dy) in points for each point's label, so that no label overlaps another label or any point: each
    label tries the spots just beside its point first, then rings of growing radius (greedy, in the order given)."""
    pts = ax.transData.transform(np.asarray(xy, dtype=float)) * 72 / ax.figure.dpi  # (N, 2) in points
    placed = [(px - 3, py - 3, px + 3, py + 3) for px, py in pts]  # the markers themselves
    rings = [(r, np.radians(a)) for r in (1, 5, 10, 16, 23, 31, 40) for a in (45, 0, 90, 315, 135, 270, 180, 225)]
    out = []
    for (px, py), text in zip(pts, texts):
        w, h = 0.6 * fontsize * max(len(text), 1) + 1, fontsize + 1
        for r, a in rings:
            dx, dy = np.cos(a) * (r + w / 2 + 2), np.sin(a) * (r + h / 2 + 2)
            box = (px + dx - w / 2, py + dy - h / 2, px + dx + w / 2, py + dy + h / 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        out.append((float(dx), float(dy)))
    return out


def plot_part1(p1: dict, path_div: Path, path_quality: Path) -> None:
    fams = [f for f in FAMILIES if any(r["setting"]["family"] == f for r in p1["settings"])]
    h = p1["human"]
    fontsize = 9

    def lines(ax, key):
        """One curve per family of knobs against entropy; returns the points to label (x, y, text, color)."""
        points = []
        for f in fams:
            rs = sorted((r for r in p1["settings"] if r["setting"]["family"] == f), key=lambda r: r["entropy"])
            style = "o" if f == "mix" else "o-"
            ax.plot([r["entropy"] for r in rs], [r[key] for r in rs], style, color=COLORS[f], label=f, ms=5)
            points += [(r["entropy"], r[key], short(r["setting"]) if f == "mix" else r["name"].split("=")[-1],
                        COLORS[f]) for r in rs]
        ax.plot([h["entropy"]], [h[key]], "*", color="black", ms=13, label="real text (model's entropy on it)")
        ax.set_xlabel("mean entropy of the sampling distribution per step (nats)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        return points

    def label(ax, points, keep=lambda x, y: True):
        """Each point's knob value beside it, after the layout is final (the offsets are in points)."""
        points = [p for p in points if keep(p[0], p[1])]
        for (x, y, text, color), (dx, dy) in zip(points, label_offsets(ax, [p[:2] for p in points],
                                                                        [p[2] for p in points], fontsize)):
            ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color=color,
                        ha="center", va="center", arrowprops=dict(arrowstyle="-", lw=0.5, color="0.6", shrinkA=0,
                                                                  shrinkB=2) if np.hypot(dx, dy) > 14 else None)

    fig, axes = plt.subplots(2, 2, figsize=(11, 10), gridspec_kw=dict(height_ratios=[1.4, 1]))
    ax1, ax2, ax3, key_ax = axes.ravel()
    pts1 = lines(ax1, "distinct_1")
    ax1.set_ylabel("distinct-1 (unique words / all words)", fontsize=10)
    ax1.set_title("distinct words in a prompt's samples", fontsize=11)
    pts2 = lines(ax2, "distinct_2")
    ax2.set_ylabel("distinct-2 (unique word bigrams / all)", fontsize=10)
    ax2.set_title("distinct word bigrams: saturates early", fontsize=11)
    ax2.axhline(0.99, color="0.5", lw=0.8, ls=":")
    ax2.text(0.97, 0.05, "above the dotted line (unlabelled): 0.99 to 1", ha="right", va="bottom", fontsize=fontsize,
             color="0.3", transform=ax2.transAxes)
    floor2 = 0.5  # the panel shows 0.5..1, where the knobs differ; a point below is marked at the bottom edge
    ax2.set_ylim(floor2, 1.04)
    for x, y, text, color in [q for q in pts2 if q[1] < floor2]:
        ax2.annotate(f"{text}: {y:.2f}, off the axis", (x, floor2), xytext=(10, 30), textcoords="offset points",
                     fontsize=fontsize, color=color, arrowprops=dict(arrowstyle="->", lw=0.8, color=color))
    pts2 = [q for q in pts2 if q[1] >= floor2]
    ax1.set_ylim(None, 1.08)  # room for the labels of the points near 1
    pts3 = lines(ax3, "self_similarity")
    ax3.set_ylabel("self-similarity (4-gram Jaccard between samples)", fontsize=10)
    ax3.set_title("how alike two samples of one prompt are", fontsize=11)
    ax3.set_yscale("symlog", linthresh=0.01)
    key_ax.axis("off")
    key_ax.legend(*ax1.get_legend_handles_labels(), loc="center", fontsize=11, title="knob (label: its value; "
                  "mix: T temperature,\nk top-k, p top-p, m min-p)", title_fontsize=10)
    fig.tight_layout()
    label(ax1, pts1)
    label(ax2, pts2, keep=lambda x, y: y < 0.99)
    label(ax3, pts3)
    fig.savefig(path_div, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.2))
    ax = axes[0]
    top = max(r["nll"] for r in p1["settings"])
    ax.plot([0, top], [0, top], ":", color="grey", lw=1, label="NLL = entropy (sampling the model as it is)")
    pts_nll = lines(ax, "nll")
    ax.set_ylabel("the model's own NLL of its samples at T = 1 (nats/char)", fontsize=10)
    ax.set_title("quality: how likely the model finds what it wrote", fontsize=11)
    ax.legend(fontsize=8.5, loc="upper left")
    ax = axes[1]
    pts_kl = lines(ax, "kl")
    ax.lines[-1].remove()  # real text is the model's own distribution: KL 0, off a log axis
    ax.set_yscale("symlog", linthresh=0.01)  # KL is 0 at T = 1
    ax.set_ylim(0, None)
    ax.set_ylabel("KL(sampling distribution || model) per step (nats)", fontsize=10)
    ax.set_title("NLL - entropy = KL: how far each knob moves off the model", fontsize=11)
    fig.tight_layout()
    label(axes[0], pts_nll)
    label(axes[1], pts_kl)
    fig.savefig(path_quality, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- part 2: repetition

REPETITION = (("T=0 (greedy)", dict(temperature=0.0)),
              ("T=0, repetition penalty 1.3", dict(temperature=0.0, repetition_penalty=1.3)),
              ("T=0, presence penalty 1.0", dict(temperature=0.0, presence_penalty=1.0)),
              ("T=0, frequency penalty 0.05", dict(temperature=0.0, frequency_penalty=0.05)),
              ("T=0.7", dict(temperature=0.7)), ("T=1.0", dict(temperature=1.0)))
NS = (4, 8, 12, 16, 24, 32)


def part2(model, tok, val: str, n_prompts: int, length: int, seed: int) -> dict:
    starts = np.linspace(len(val) // 2, len(val) - PROMPT_LEN - length - 1, n_prompts).astype(int)
    idx = np.asarray([tok.encode(val[s:s + PROMPT_LEN]) for s in starts])  # (R, PROMPT_LEN)
    ctx = model.config.context_length
    out = {}
    for label, knobs in REPETITION:
        t0 = time.perf_counter()
        rows = model.generate(idx, length, seed=seed, **knobs)[:, PROMPT_LEN:]
        out[label] = summarize_repetition([tok.decode(r.tolist()) for r in rows], [r.tolist() for r in rows], ctx)
        print(f"  {label:<28} {out[label]['looping']}/{n_prompts} end in a loop (period "
              f"{out[label]['periods']}, starting at {out[label]['onsets']}); repeated 12-grams "
              f"{out[label]['repeated'][str(12)]:.2f}  ({time.perf_counter() - t0:.1f} s)")
    texts = [val[s + PROMPT_LEN:s + PROMPT_LEN + length] for s in starts]
    out["real text"] = summarize_repetition(texts, [tok.encode(t) for t in texts], ctx)
    print(f"  {'real text':<28} {out['real text']['looping']}/{n_prompts} end in a loop; repeated 12-grams "
          f"{out['real text']['repeated'][str(12)]:.2f}")
    return dict(n_prompts=n_prompts, length=length, settings=out)


def summarize_repetition(texts, seqs, ctx: int) -> dict:
    loops = [find_loop(s, min_len=ctx) for s in seqs]
    looping = [(o, p, t) for (o, p), t in zip(loops, texts) if p is not None]
    cycles = sorted({_canonical(t[o:o + p]) for o, p, t in looping})
    return dict(looping=len(looping), periods=[p for _, p, _ in looping], onsets=[o for o, _, _ in looping],
                distinct_loops=cycles,
                repeated={str(n): float(np.mean([repeated_share(t, n) for t in texts])) for n in NS},
                example=texts[0])


def _canonical(cycle: str) -> str:
    """A loop read from any of its rotations -> one name (the smallest rotation)."""
    return min(cycle[i:] + cycle[:i] for i in range(len(cycle)))


def plot_part2(p2: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw=dict(width_ratios=(1, 1.15)))
    labels = list(p2["settings"])
    colors = dict(zip(labels, ("#e53935", "#fb8c00", "#8e24aa", "#6d4c41", "#1e88e5", "#43a047", "black")))
    for label, r in p2["settings"].items():
        axes[0].plot(NS, [r["repeated"][str(n)] for n in NS], "o-", label=label, color=colors[label],
                     lw=2.5 if label == "real text" else 1.5)
    axes[0].set_xlabel("n (characters)")
    axes[0].set_ylabel("share of n-grams seen earlier in the same text")
    axes[0].set_title(f"Repetition in {p2['length']} characters ({p2['n_prompts']} prompts)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    ax = axes[1]
    for y, (label, r) in enumerate(p2["settings"].items()):
        ax.scatter(r["onsets"], [y] * len(r["onsets"]), color=colors[label], s=30, alpha=0.7)
        loops = ", ".join(repr(c) for c in r["distinct_loops"]) or "none"
        periods = sorted(set(r["periods"]))
        ax.annotate(f"{r['looping']}/{p2['n_prompts']} loop" + (f", period {periods}: {loops}" if periods else ""),
                    (0, y), xytext=(4, 7), textcoords="offset points", fontsize=8, color=colors[label])
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(labels) - 0.3)
    ax.set_xlim(0, p2["length"])
    ax.invert_yaxis()
    ax.set_xlabel("the exact loop starts at generated character")
    ax.set_title("Which settings end in an exact loop, and from where")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- main


def trained_model(args):
    """--ckpt as given; --quick: a tiny model in OUT/model-quick; else the labs' shared run (tinyllm.labs.lab_model)."""
    return lab_model(args.ckpt, quick_dir=args.out / "model-quick" if args.quick else None)


def dashboard_screenshot(model, tok, path: Path, prompt: str = "ROMEO:\nWhat say", temperature: float = 0.8,
                         top_p: float = 0.9) -> None:
    """The dashboard (tinyllm.viz.dashboard) on this model, photographed by headless chromium (Playwright)."""
    from playwright.sync_api import sync_playwright

    from tinyllm.viz.dashboard.server import serve

    server = serve(model, tok)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport=dict(width=1280, height=900))
            page.goto(server.url)
            page.wait_for_function("Number(document.body.dataset.seq) > 0", timeout=60000)
            seq = int(page.evaluate("document.body.dataset.seq"))
            page.fill("#prompt", prompt)
            page.fill("#temperature", str(temperature))
            page.fill("#top_p", str(top_p))
            page.wait_for_function(f"Number(document.body.dataset.seq) > {seq}", timeout=60000)
            page.screenshot(path=str(path), full_page=True)
            browser.close()
    finally:
        server.stop()
    from tinyllm.viz.dashboard.report import next_token_report

    r = next_token_report(model, tok, dict(prompt=prompt, temperature=temperature, top_p=top_p, n_samples=0))
    print(f"dashboard screenshot: {path} (prompt {prompt!r}, T={temperature}, top-p={top_p})")
    print(f"  entropy: model {r['entropy_model']:.3f}, after temperature {r['entropy_before']:.3f}, after filtering "
          f"{r['entropy_after']:.3f} nats; {r['kept_tokens']} tokens kept, mass {r['kept_mass']:.4f}")
    for t in r["top"][:3]:
        print(f"  {t['label']!r:>6}: model {t['p_model']:.3f}  after temperature {t['p_before']:.3f}  "
              f"after top-p {t['p_after']:.3f}")


def main(argv=None) -> dict:
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between steps (if the model trains)
    with runtime.one_blas_thread() as one_thread:
        if not one_thread:
            print(runtime.ONE_BLAS_THREAD_HINT)
        return run(argv)


def run(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model and a small grid (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for figures and JSON (default docs/figures; "
                   "--quick: out/labs/05_sampling-quick)")
    p.add_argument("--ckpt", default=None, help="a `tinyllm train` run folder of a character model of tinyshakespeare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dashboard-shot", action="store_true", help="only photograph the dashboard on the model "
                   "(05-dashboard.png in --out; needs playwright and /usr/bin/chromium)")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/05_sampling-quick" if args.quick else "docs/figures")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    model, tok = trained_model(args)
    if model.config.context_length <= PROMPT_LEN + 8:
        raise SystemExit(f"this lab needs a context longer than {PROMPT_LEN + 8} tokens, "
                         f"the model has {model.config.context_length}")
    if args.dashboard_shot:
        dashboard_screenshot(model, tok, args.out / "05-dashboard.png")
        return {}
    text = load_text("tinyshakespeare")
    val = text[int(0.9 * len(text)):]  # the held-out tenth (as tinyllm train splits it)
    n_prompts, per_prompt = (2, 4) if args.quick else (4, 16)
    print(f"1. The grid: {n_prompts} prompts x {per_prompt} samples of "
          f"{model.config.context_length - PROMPT_LEN} characters per setting")
    p1 = part1(model, tok, val, n_prompts, per_prompt, args.quick, args.seed)
    plot_part1(p1, args.out / "05-entropy-diversity.png", args.out / "05-entropy-quality.png")

    n_rep, length = (4, 96) if args.quick else (12, 240)
    print(f"\n2. Repetition: {n_rep} prompts continued for {length} characters")
    p2 = part2(model, tok, val, n_rep, length, args.seed)
    plot_part2(p2, args.out / "05-repetition.png")

    report = dict(model=dict(n_layer=model.config.n_layer, d_model=model.config.d_model,
                             context_length=model.config.context_length, parameters=model.num_parameters()),
                  grid=p1, repetition=p2, seconds=round(time.perf_counter() - t_start, 1))
    (args.out / "05_sampling.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"\nfigures and 05_sampling.json in {args.out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
