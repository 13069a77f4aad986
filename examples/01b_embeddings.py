"""Lab 1b: one-hot vs learned embeddings. What does a character model's embedding table know?

A character enters a GPT as a row of ``transformer.wte.weight`` (V, C): the
one-hot vector e_i times that matrix. One-hot vectors are all orthogonal (their
cosine-similarity matrix is the identity: every character equally unlike every
other); random initial rows are nearly orthogonal too (cosines ~ N(0, 1/C)).
Whatever structure the trained rows have, training put there. This lab measures it:

1. train nanoGPT's CPU recipe on tinyshakespeare (characters; the preset
   ``shakespeare-char-cpu`` of ``tinyllm train``), or load a run with --ckpt DIR;
2. cosine-similarity heatmaps: one-hot, the same model at initialization, trained;
3. groups: is a vowel closer to vowels than to consonants, a capital to capitals,
   a punctuation mark to punctuation? Mean cosine within vs between groups, with a
   permutation test (shuffle the group labels) for the trained and the initial rows;
4. case pairs ('a' vs 'A'), nearest neighbours of some characters, and how far each
   row moved from its initial value vs how often the character occurs;
5. a 2-D projection (PCA with numpy's SVD).

The preset ties the embedding to the output layer (GPT-2's choice, as nanoGPT):
each row is both how a character is read and how it is predicted.

    python examples/01b_embeddings.py                    # trains (~1-2 min on 2 cores),
                                                         # figures in docs/figures/01b_*.png,
                                                         # numbers in docs/figures/01b_embeddings.json
    python examples/01b_embeddings.py --ckpt out/sc      # analyse a run of
                                                         # `tinyllm train --preset shakespeare-char-cpu --out out/sc`
    python examples/01b_embeddings.py --quick            # a tiny model, a few steps (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import load_text, load_tokenizer  # noqa: E402
from tinyllm.nn import GPT  # noqa: E402
from tinyllm.train import load_checkpoint, preset, read_metrics, train  # noqa: E402

PRESET = "shakespeare-char-cpu"
QUICK = dict(max_iters=60, eval_interval=60, eval_iters=2, batch_size=8, n_layer=1, n_head=2, d_model=32,
             context_length=32)
GROUPS = ("whitespace", "punctuation", "digit", "upper vowel", "upper consonant", "lower vowel", "lower consonant")
PROBES = ("a", "e", "t", "A", "T", ",", ".", "?", " ", "\n")


def group_of(ch: str) -> str:
    """The group a character is tested in (y/Y count as consonants)."""
    if ch.isspace():
        return "whitespace"
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        case = "upper" if ch.isupper() else "lower"
        return f"{case} {'vowel' if ch.lower() in 'aeiou' else 'consonant'}"
    return "punctuation"


def show(ch: str) -> str:
    return {"\n": "\\n", " ": "␣"}.get(ch, ch)


def token_chars(tok) -> list[str]:
    """The character each id stands for: chars[i] = decode([i]), one character that encodes back to [i].

    This lab reads one embedding row per character, so a tokenizer with any other token
    (a BPE merge such as " the", or a lone byte of a multi-byte character) is refused.
    """
    chars = [tok.decode([i]) for i in range(tok.vocab_size)]
    for i, ch in enumerate(chars):
        if len(ch) != 1 or tok.encode_ordinary(ch) != [i]:
            raise SystemExit(f"this lab reads a character model's embeddings, one row per character, but token {i} "
                             f"of {tok!r} is {tok.token_bytes(i)!r}; pass --ckpt a run trained with the character "
                             f"tokenizer (tinyllm train --preset {PRESET})")
    return chars


# ----------------------------------------------------------------------------- the model

def get_model(ckpt: Path | None, quick: bool, progress: bool):
    """(trained model, tokenizer, the same model's initial weights or None, run info). Trains into ckpt
    (a temporary folder when None) unless ckpt already holds a model."""
    if ckpt is not None and (ckpt / "config.json").exists():
        model, tok = GPT.from_pretrained(ckpt), load_tokenizer(ckpt)
        seed, val = None, None
        if (ckpt / "ckpt.safetensors").exists():  # a training run: its seed rebuilds the initial weights
            seed = load_checkpoint(ckpt)["train_config"]["seed"]
        evals = [r for r in read_metrics(ckpt / "metrics.jsonl") if "val_loss" in r] \
            if (ckpt / "metrics.jsonl").exists() else []
        if evals:
            val = evals[-1]["val_loss"]
        info = dict(source=f"loaded from {ckpt}", val_loss=val, seconds=None)
    else:
        tmp = None
        if ckpt is None:
            tmp = tempfile.TemporaryDirectory(prefix="tinyllm-01b-")
            ckpt = Path(tmp.name)
        cfg, fields = preset(PRESET, out_dir=str(ckpt), sample_tokens=0, **(QUICK if quick else {}))
        t0 = time.perf_counter()
        result = train(cfg, fields, progress=progress, log=print)
        model, tok, seed = result.model, result.tokenizer, cfg.seed
        info = dict(source=f"trained: preset {PRESET}" + (" with " + str(QUICK) if quick else "")
                    + f", {result.step} steps", val_loss=result.val_loss, seconds=time.perf_counter() - t0)
        if tmp is not None:
            tmp.cleanup()
    init = None
    if seed is not None:  # train() seeds tinyllm with cfg.seed, then builds GPT(config): do the same
        tinyllm.manual_seed(seed)
        init = tinyllm.to_numpy(GPT(model.config).transformer.wte.weight.data).astype(np.float64)
    return model, tok, init, info


# ----------------------------------------------------------------------------- measurements

def cosine_matrix(E: np.ndarray) -> np.ndarray:
    """S[i, j] = cos(E_i, E_j) = E_i·E_j / (|E_i| |E_j|). For one-hot rows S is the identity."""
    U = E / np.linalg.norm(E, axis=1, keepdims=True)
    return U @ U.T


def within_minus_between(S: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine over pairs (i != j) in the same group minus the mean over pairs in different groups."""
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(S[same & off].mean() - S[~same].mean())


def permutation_p(S: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n: int = 2000) -> float:
    """How often shuffled labels give a within-minus-between at least as large as the real one."""
    real = within_minus_between(S, labels)
    hits = sum(within_minus_between(S, rng.permutation(labels)) >= real for _ in range(n))
    return (hits + 1) / (n + 1)


def group_table(S: np.ndarray, labels: np.ndarray) -> list[tuple[str, int, float, float]]:
    """(group, size, mean cosine to the rest of its group, mean cosine to the other characters)."""
    rows = []
    for g in GROUPS:
        m = labels == g
        if m.sum() < 2:
            continue
        block = S[np.ix_(m, m)]
        within = (block.sum() - np.trace(block)) / (m.sum() * (m.sum() - 1))
        rows.append((g, int(m.sum()), float(within), float(S[np.ix_(m, ~m)].mean())))
    return rows


def case_pairs(S: np.ndarray, chars: list[str]) -> dict:
    """For each letter whose other case is in the vocabulary: cos(x, X) and X's rank among x's neighbours."""
    index = {c: i for i, c in enumerate(chars)}
    cos, ranks = [], []
    for c in chars:
        if c.islower() and c.upper() in index:
            i, j = index[c], index[c.upper()]
            order = [k for k in np.argsort(-S[i]) if k != i]
            cos.append(S[i, j])
            ranks.append(order.index(j) + 1)
    letters = [index[c] for c in chars if c.isalpha()]
    L = S[np.ix_(letters, letters)]
    all_letters = (L.sum() - np.trace(L)) / (len(letters) * (len(letters) - 1))
    return dict(n=len(cos), mean_cos=float(np.mean(cos)), all_letters_cos=float(all_letters),
                median_rank=float(np.median(ranks)), top1=float(np.mean(np.array(ranks) == 1)),
                top5=float(np.mean(np.array(ranks) <= 5)))


def neighbours(S: np.ndarray, chars: list[str], probes, k: int = 5) -> dict:
    index = {c: i for i, c in enumerate(chars)}
    out = {}
    for p in probes:
        if p in index:
            i = index[p]
            order = [j for j in np.argsort(-S[i]) if j != i][:k]
            out[p] = [(chars[j], float(S[i, j])) for j in order]
    return out


def pca2(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates on the top two principal components (V, 2), fraction of variance of each component)."""
    Ec = E - E.mean(axis=0)  # (V, C), centred
    _, s, Vt = np.linalg.svd(Ec, full_matrices=False)  # Ec = U diag(s) Vt
    return Ec @ Vt[:2].T, s**2 / np.sum(s**2)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# ----------------------------------------------------------------------------- figures

def plot_heatmaps(mats, titles, chars, order, labels, path: Path) -> None:
    fig, axes = plt.subplots(1, len(mats), figsize=(6.0 * len(mats), 6.4), layout="constrained")
    ticks = [show(chars[i]) for i in order]
    bounds = [k for k in range(1, len(order)) if labels[order[k]] != labels[order[k - 1]]]
    for ax, S, title in zip(axes, mats, titles):
        im = ax.imshow(S[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(order)), ticks, fontsize=6, family="monospace")
        ax.set_yticks(range(len(order)), ticks, fontsize=6, family="monospace")
        for b in bounds:
            ax.axhline(b - 0.5, color="k", lw=0.4)
            ax.axvline(b - 0.5, color="k", lw=0.4)
    fig.colorbar(im, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle("cosine similarity of the character embeddings; blocks: "
                 + ", ".join(g for g in GROUPS if g in set(labels)), fontsize=11)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def label_offsets(ax, xy: np.ndarray, texts: list[str], fontsize: float) -> list[tuple[float, float]]:
    """(dx, dy) in points for each point's label, so that no label overlaps another label or any point: each
    label tries the spots just beside its point first, then rings of growing radius (greedy, in the order given)."""
    pts = ax.transData.transform(xy) * 72 / ax.figure.dpi  # (N, 2) in points
    placed = [(px - 2.5, py - 2.5, px + 2.5, py + 2.5) for px, py in pts]  # the dots themselves
    rings = [(r, math.radians(a)) for r in (1, 5, 10, 16, 23, 31, 40, 50) for a in range(0, 360, 30)]
    out = []
    for (px, py), text in zip(pts, texts):
        w, h = 0.62 * fontsize * max(len(text), 1) + 1, fontsize + 1
        for r, a in rings:
            dx, dy = math.cos(a) * (r + w / 2 + 2), math.sin(a) * (r + h / 2 + 2)
            box = (px + dx - w / 2, py + dy - h / 2, px + dx + w / 2, py + dy + h / 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        out.append((dx, dy))
    return out


def plot_pca(panels, chars, labels, path: Path) -> None:
    """One scatter per panel: a dot per character, its label beside it (with a thin line when pushed away)."""
    fontsize = 11
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.6))
    axes = np.atleast_1d(axes)
    colors = {g: f"C{k}" for k, g in enumerate(GROUPS)}
    texts = [show(c) for c in chars]
    for ax, (title, (xy, var)) in zip(axes, panels):
        pad = 0.1 * (xy.max(axis=0) - xy.min(axis=0))
        ax.set_xlim(xy[:, 0].min() - pad[0], xy[:, 0].max() + pad[0])
        ax.set_ylim(xy[:, 1].min() - pad[1], xy[:, 1].max() + pad[1])
        ax.set_xlabel(f"PC1 ({var[0]:.0%} of the variance)", fontsize=11)
        ax.set_ylabel(f"PC2 ({var[1]:.0%})", fontsize=11)
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], ls="", marker="o", color=colors[g], label=g) for g in GROUPS if g in set(labels)]
    fig.legend(handles=handles, fontsize=10, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # first the layout, then the labels: their spacing is in points
    for ax, (title, (xy, var)) in zip(axes, panels):
        order = np.argsort(-np.linalg.norm(xy - np.median(xy, axis=0), axis=1))  # outliers first: they keep their spot
        offsets = label_offsets(ax, xy[order], [texts[i] for i in order], fontsize)
        for i, (dx, dy) in zip(order, offsets):
            color = colors[labels[i]]
            ax.plot(*xy[i], "o", ms=3, color=color)
            ax.annotate(texts[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha="center", va="center",
                        color=color, fontsize=fontsize, family="monospace", annotation_clip=False,
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="0.6", shrinkA=0, shrinkB=2)
                        if math.hypot(dx, dy) > 16 else None)
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def jsonable(obj):
    """json.dumps's fallback: NumPy numbers and arrays as Python ones."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model trained for a few steps (CI)")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="a run folder: analysed if it holds a model, else the model is trained into it")
    p.add_argument("--out", type=Path, default=None, help="folder for the figures (default docs/figures; "
                   "--quick: out/labs/01b_embeddings-quick, so a quick run never replaces the committed figures)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/01b_embeddings-quick" if args.quick else "docs/figures")
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between training steps
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    model, tok, init, info = get_model(args.ckpt, args.quick, progress=not args.no_progress)
    chars = token_chars(tok)
    E = tinyllm.to_numpy(model.transformer.wte.weight.data).astype(np.float64)  # (V, C)
    V, C = E.shape
    labels = np.array([group_of(c) for c in chars])
    order = sorted(range(V), key=lambda i: (GROUPS.index(labels[i]), chars[i]))
    val = f", val loss {info['val_loss']:.4f}" if info["val_loss"] is not None else ""
    took = f" in {info['seconds']:.0f} s" if info["seconds"] is not None else ""
    print(f"model: {info['source']}{took}{val}; embeddings {V} x {C}, "
          f"tied to the output: {model.config.tie_embeddings}")

    one_hot = np.eye(V)
    S = cosine_matrix(E)
    mats = {"one-hot": cosine_matrix(one_hot), "trained": S}
    if init is not None:
        mats["initial"] = cosine_matrix(init)
    offdiag = ~np.eye(V, dtype=bool)
    print(f"\noff-diagonal cosine: one-hot all {mats['one-hot'][offdiag].max():.0f}; " + "; ".join(
        f"{k} mean {m[offdiag].mean():+.3f}, std {m[offdiag].std():.3f}, max {m[offdiag].max():+.3f}"
        for k, m in mats.items() if k != "one-hot") + f"  (1/sqrt(C) = {1 / np.sqrt(C):.3f})")

    rng = np.random.default_rng(0)
    stats = {}
    for name in [k for k in ("initial", "trained") if k in mats]:
        stat = within_minus_between(mats[name], labels)
        stats[name] = (stat, permutation_p(mats[name], labels, rng, n=200 if args.quick else 2000))
        print(f"{name}: mean cosine within groups - between groups = {stat:+.3f} "
              f"(permutation p = {stats[name][1]:.4f})")
    table = group_table(S, labels)
    print(f"\n{'group (trained)':<16} {'n':>3} {'within':>7} {'to others':>9}")
    for g, n, w, b in table:
        print(f"{g:<16} {n:>3} {w:>+7.3f} {b:>+9.3f}")

    cases = case_pairs(S, chars)
    print(f"\ncase pairs (x, X), {cases['n']} letters: mean cos {cases['mean_cos']:+.3f} (all letter pairs: "
          f"{cases['all_letters_cos']:+.3f}); X is x's nearest neighbour for {cases['top1']:.0%}, in its top 5 for "
          f"{cases['top5']:.0%}; median rank {cases['median_rank']:.0f} of {V - 1}")
    if init is not None:
        c0 = case_pairs(mats["initial"], chars)
        print(f"  at initialization: mean cos {c0['mean_cos']:+.3f}, top 5 for {c0['top5']:.0%}, "
              f"median rank {c0['median_rank']:.0f}")

    near = neighbours(S, chars, PROBES)
    print("\nnearest neighbours (cosine):")
    for c, nb in near.items():
        print(f"  {show(c):>3}: " + "  ".join(f"{show(d)} {s:+.2f}" for d, s in nb))

    text = load_text("tinyshakespeare")
    counts = np.array([text.count(c) for c in chars], dtype=np.float64)
    movement = None
    if init is not None:
        moved = np.linalg.norm(E - init, axis=1) / np.linalg.norm(init, axis=1)
        movement = dict(spearman=spearman(counts, moved), rarest=[(chars[i], int(counts[i]), float(moved[i]))
                                                                  for i in np.argsort(counts)[:4]],
                        commonest=[(chars[i], int(counts[i]), float(moved[i])) for i in np.argsort(-counts)[:4]])
        print(f"\nhow far each row moved, |w - w0| / |w0|, vs how often the character occurs: Spearman "
              f"{movement['spearman']:+.2f}; rarest " + ", ".join(f"{show(c)} ({n}x) {m:.2f}" for c, n, m in
                                                                 movement["rarest"])
              + "; commonest " + ", ".join(f"{show(c)} ({n}x) {m:.2f}" for c, n, m in movement["commonest"]))

    xy, var = pca2(E)
    pc = {g: (float(xy[labels == g, 0].mean()), float(xy[labels == g, 1].mean()))
          for g in GROUPS if (labels == g).any()}
    freq_pc1 = spearman(counts, xy[:, 0])
    print(f"\nPCA of the trained rows: PC1 {var[0]:.1%}, PC2 {var[1]:.1%} of the variance; mean (PC1, PC2) by group: "
          + ", ".join(f"{g} ({a:+.2f}, {b:+.2f})" for g, (a, b) in pc.items()))
    print(f"PC1 vs how often the character occurs: Spearman {freq_pc1:+.2f}")
    # What is left once the frequency-like first direction is gone: project it out and test the groups again.
    Ec = E - E.mean(axis=0)
    _, _, Vt = np.linalg.svd(Ec, full_matrices=False)
    rest = Ec - np.outer(Ec @ Vt[0], Vt[0])  # (V, C) minus its component along PC1
    S_rest = cosine_matrix(rest)
    stats["trained, PC1 removed"] = (within_minus_between(S_rest, labels),
                                     permutation_p(S_rest, labels, rng, n=200 if args.quick else 2000))
    cases_rest = case_pairs(S_rest, chars)
    print(f"without PC1: within - between = {stats['trained, PC1 removed'][0]:+.3f} (permutation p = "
          f"{stats['trained, PC1 removed'][1]:.4f}); case pairs mean cos {cases_rest['mean_cos']:+.3f}, X in x's "
          f"top 5 for {cases_rest['top5']:.0%}")
    print(f"{'group (PC1 removed)':<20} {'n':>3} {'within':>7} {'to others':>9}")
    for g, n, w, b in group_table(S_rest, labels):
        print(f"{g:<20} {n:>3} {w:>+7.3f} {b:>+9.3f}")
    panels = [("trained embeddings", (xy, var))]
    if init is not None:
        panels.insert(0, ("the same rows at initialization", pca2(init)))

    heat = [mats["one-hot"]] + ([mats["initial"]] if init is not None else []) + [S]
    titles = ["one-hot: the identity"] + (["learned, at initialization"] if init is not None else []) \
        + ["learned, after training"]
    plot_heatmaps(heat, titles, chars, order, labels, args.out / "01b_cosine.png")
    plot_pca(panels, chars, labels, args.out / "01b_pca.png")
    seconds = time.perf_counter() - t_start
    report = dict(V=V, C=C, stats=stats, groups=table, cases=cases, cases_rest=cases_rest, neighbours=near,
                  movement=movement, pca_var=var[:2].tolist(), pca_group_means=pc, freq_pc1=freq_pc1,
                  groups_pc1_removed=group_table(S_rest, labels), val_loss=info["val_loss"], seconds=seconds)
    command = "python examples/01b_embeddings.py" + (" --quick" if args.quick else "") \
        + (f" --ckpt {args.ckpt}" if args.ckpt else "")
    (args.out / "01b_embeddings.json").write_text(
        json.dumps(dict(command=command, model=info["source"], **report), indent=1, default=jsonable) + "\n")
    print(f"\nfigures in {args.out}/01b_*.png, numbers in 01b_embeddings.json; {seconds:.1f} s")
    return report


if __name__ == "__main__":
    main()
