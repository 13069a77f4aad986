"""Lab 1: tokenization. Train byte-level BPE vocabularies and measure what a bigger one buys.

1. Vocabularies of 256 to 8192 tokens trained (GPT-2's split pattern) on the first
   90% of tinyshakespeare; compression in bytes per token on that training text
   and on the held-out last 10%, next to GPT-2's own 50,257 tokens on the same text.
   Check: a smaller vocabulary is exactly the first merges of a larger one.
2. Token lengths: how long the tokens of the vocabulary are, and how long the
   tokens that the held-out text actually uses are (ours at the largest size vs GPT-2).
3. The first merges, replayed with the plain-Python reference (count pairs, merge
   the most frequent, repeat: tinyllm/tokenizer/reference.py), each with the count
   that made it win; the replay must pick the trainer's merges one for one.
4. The split pattern: gpt2 vs gpt4 vs no pre-split at one vocabulary size.
5. One held-out passage cut by several vocabularies (tinyllm.tokenizer.visualize).

    python examples/01_tokenization.py            # the chapter's numbers and figures (docs/figures/01_*.png,
                                                  # the numbers also in docs/figures/01_tokenization.json)
    python examples/01_tokenization.py --quick    # a slice of the text and small vocabularies (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinyllm.data import load_text  # noqa: E402
from tinyllm.tokenizer import BPETokenizer  # noqa: E402
from tinyllm.tokenizer.patterns import GPT2_PATTERN  # noqa: E402
from tinyllm.tokenizer.reference import count_pretokens, get_stats, merge  # noqa: E402
from tinyllm.tokenizer.visualize import plot_token_map, token_label, visualize  # noqa: E402

FULL = dict(chars=None, sizes=(256, 512, 1024, 2048, 4096, 8192), replay=30, pattern_vocab=2048)
QUICK = dict(chars=200_000, sizes=(256, 512, 1024), replay=8, pattern_vocab=512)
# A passage from the held-out tenth (The Taming of the Shrew); the lab checks it is not in the training text.
PROBE = "PETRUCHIO:\nAnd you, good sir! Pray, have you not a daughter\nCall'd Katharina, fair and virtuous?\n"


def split_text(text: str, fraction: float = 0.9) -> tuple[str, str]:
    """(train, held-out): the first `fraction` of the text and the rest, cut at a line break."""
    cut = text.rfind("\n", 0, int(fraction * len(text))) + 1
    return text[:cut], text[cut:]


def bytes_per_token(tok: BPETokenizer, text: str) -> float:
    """Compression: UTF-8 bytes of the text / number of tokens (1.0 for the 256 bytes alone)."""
    return len(text.encode("utf-8")) / len(tok.encode_ordinary(text))


def sweep(train: str, heldout: str, sizes) -> tuple[list[dict], dict]:
    """Train one vocabulary per size; measure bytes/token on both texts and how much of it the held-out text uses."""
    rows, toks = [], {}
    for v in sizes:
        t0 = time.perf_counter()
        tok = BPETokenizer.train(train, v, pattern="gpt2", progress=False)
        seconds = time.perf_counter() - t0
        used = len(set(tok.encode_ordinary(heldout)))
        rows.append(dict(vocab=v, seconds=seconds, train=bytes_per_token(tok, train),
                         heldout=bytes_per_token(tok, heldout), used=used / len(tok.ranks)))
        toks[v] = tok
    return rows, toks


def merges_are_prefixes(toks: dict) -> bool:
    """BPE is greedy: the vocabulary of size v is the first v - 256 merges of any larger one (same text)."""
    sizes = sorted(toks)
    big = toks[sizes[-1]]
    return all(toks[v].merges == big.merges[:len(toks[v].merges)]
               and all(big.ranks[t] == i for t, i in toks[v].ranks.items()) for v in sizes)


def replay_merges(train: str, tok: BPETokenizer, k: int) -> list[tuple[bytes, bytes, int]]:
    """The first k merges again, by the book: count every pair over the unique words (weighted by how often
    each occurs), take the most frequent (ties: the smallest pair), merge it everywhere. Returns
    (left bytes, right bytes, count) and checks each equals the trained merge."""
    word_counts = count_pretokens(train, GPT2_PATTERN)
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    out = []
    for left, right, new_id in tok.merges[:k]:
        stats: dict = {}
        for ids, c in zip(words, counts):
            get_stats(ids, stats, c)
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))  # highest count, then smallest pair
        if pair != (left, right):
            raise AssertionError(f"the replay picked {pair} where the trainer merged {(left, right)}")
        out.append((tok.token_bytes(left), tok.token_bytes(right), stats[pair]))
        words = [merge(ids, pair, new_id) for ids in words]
    return out


def token_lengths(tok: BPETokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(length in bytes of every vocabulary entry, length of every token the text is cut into)."""
    table = [tok.token_bytes(i) for i in sorted(tok.ranks.values())]
    vocab_len = np.array([len(t) for t in table])
    used_len = vocab_len[np.asarray(tok.encode_ordinary(text))]
    return vocab_len, used_len


def patterns(train: str, heldout: str, vocab: int) -> list[dict]:
    rows = []
    for name in ("gpt2", "gpt4", None):
        tok = BPETokenizer.train(train, vocab, pattern=name, progress=False)
        crossing = [t for t in (tok.token_bytes(i) for i in range(256, len(tok.ranks)))
                    if t.strip() and (b" " in t.strip() or b"\n" in t.strip())]
        used = Counter(tok.token_bytes(i) for i in tok.encode_ordinary(heldout))
        newline = [(t, c) for t, c in used.most_common() if b"\n" in t][:3]  # the commonest tokens holding a newline
        rows.append(dict(pattern=str(name), train=bytes_per_token(tok, train), heldout=bytes_per_token(tok, heldout),
                         heldout_tokens=sum(used.values()), newline=newline, crossing=len(crossing),
                         examples=crossing[:6]))
    return rows


# ----------------------------------------------------------------------------- figures

def plot_compression(rows, gpt2, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    v = [r["vocab"] for r in rows]
    ax.plot(v, [r["train"] for r in rows], "o-", label="tinyllm BPE, training text (90%)")
    ax.plot(v, [r["heldout"] for r in rows], "s-", label="tinyllm BPE, held-out text (10%)")
    if gpt2 is not None:
        ax.plot([50257], [gpt2["train"]], "o", color="C0", mfc="none", ms=9, label="GPT-2 (50,257), training text")
        ax.plot([50257], [gpt2["heldout"]], "s", color="C1", mfc="none", ms=9, label="GPT-2 (50,257), held-out text")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vocabulary size (tokens)")
    ax.set_ylabel("bytes per token (higher = shorter sequences)")
    ax.set_title("tinyshakespeare: compression vs vocabulary size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def plot_lengths(lengths: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    top = max(int(np.percentile(vl, 99.9)) for vl, _ in lengths.values())
    bins = np.arange(0.5, top + 1.5)
    for ax, which, title in ((axes[0], 0, "vocabulary entries"), (axes[1], 1, "tokens of the held-out text")):
        for k, (name, pair) in enumerate(lengths.items()):
            data = pair[which]
            ax.hist(data, bins=bins, density=True, histtype="step", lw=1.8, color=f"C{k}",
                    label=f"{name} (mean {data.mean():.2f})")
        ax.set_title(f"length in bytes of the {title}")
        ax.set_xlabel("bytes")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def plot_merges(replayed, path: Path) -> None:
    n = len(replayed)
    fig, ax = plt.subplots(figsize=(6.4, 0.25 * n + 1.0))
    def show(t: bytes) -> str:
        return "[" + token_label(t).replace(" ", "\u2423") + "]"

    labels = [f"{256 + i}: {show(a)} + {show(b)} -> {show(a + b)}" for i, (a, b, _) in enumerate(replayed)]
    ax.barh(range(n), [c for _, _, c in replayed], color="C0")
    ax.set_yticks(range(n), labels, family="monospace", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("occurrences of the pair when it was merged")
    ax.set_title("the first merges learned on tinyshakespeare (␣ = space)")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def jsonable(obj):
    """json.dumps's fallback: token bytes as text (undecodable bytes as \\xNN), NumPy numbers as Python ones."""
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def gpt2_or_none():
    data_dir = os.environ.get("TINYLLM_DATA_DIR")
    if data_dir and (Path(data_dir) / "gpt2.tiktoken").is_file():
        return BPETokenizer.gpt2(Path(data_dir) / "gpt2.tiktoken")
    print("GPT-2's ranks not found (set TINYLLM_DATA_DIR to the folder holding gpt2.tiktoken): no GPT-2 comparison")
    return None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200k characters and vocabularies up to 1024 (CI)")
    p.add_argument("--out", type=Path, default=None, help="folder for the figures (default docs/figures; "
                   "--quick: out/labs/01_tokenization-quick, so a quick run never replaces the committed figures)")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/01_tokenization-quick" if args.quick else "docs/figures")
    cfg = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    text = load_text("tinyshakespeare")
    if cfg["chars"]:
        text = text[:cfg["chars"]]
    train, heldout = split_text(text)
    print(f"tinyshakespeare{' (first %d characters)' % cfg['chars'] if cfg['chars'] else ''}: "
          f"{len(train.encode()):,} bytes to train on, {len(heldout.encode()):,} held out")

    # 1. compression vs vocabulary size
    rows, toks = sweep(train, heldout, cfg["sizes"])
    gpt2_tok = gpt2_or_none()
    gpt2 = None
    if gpt2_tok is not None:
        gpt2 = dict(train=bytes_per_token(gpt2_tok, train), heldout=bytes_per_token(gpt2_tok, heldout),
                    used=len(set(gpt2_tok.encode_ordinary(heldout))) / len(gpt2_tok.ranks))
    print(f"\n{'vocab':>6} {'train s':>8} {'bytes/token train':>18} {'held-out':>9} {'vocab used by held-out':>23}")
    for r in rows:
        print(f"{r['vocab']:>6} {r['seconds']:>8.2f} {r['train']:>18.3f} {r['heldout']:>9.3f} {r['used']:>22.1%}")
    if gpt2 is not None:
        print(f"{'GPT-2':>6} {'':>8} {gpt2['train']:>18.3f} {gpt2['heldout']:>9.3f} {gpt2['used']:>22.1%}")
    prefix = merges_are_prefixes(toks)
    print(f"each smaller vocabulary = the first merges of the largest: {prefix}")
    largest = toks[cfg["sizes"][-1]]
    overlap = None
    if gpt2_tok is not None:
        ours = [largest.token_bytes(i) for i in range(256, len(largest.ranks))]
        overlap = sum(t in gpt2_tok.ranks for t in ours) / len(ours)
        print(f"of our {len(ours)} merged tokens (vocab {cfg['sizes'][-1]}), {overlap:.1%} are also GPT-2 tokens")
    longest = sorted((largest.token_bytes(i) for i in largest.ranks.values()), key=lambda t: (-len(t), t))[:8]
    print("longest tokens:", ", ".join(repr(t.decode("utf-8", "replace")) for t in longest))
    plot_compression(rows, gpt2, args.out / "01_compression.png")

    # 2. token lengths
    lengths = {f"tinyllm {cfg['sizes'][-1]}": token_lengths(largest, heldout)}
    if gpt2_tok is not None:
        lengths["GPT-2 50257"] = token_lengths(gpt2_tok, heldout)
    print()
    for name, (vl, ul) in lengths.items():
        print(f"{name}: mean token length {vl.mean():.2f} bytes in the vocabulary, "
              f"{ul.mean():.2f} bytes per token used on held-out text, {(ul == 1).mean():.1%} of those 1 byte long")
    plot_lengths(lengths, args.out / "01_token_lengths.png")

    # 3. the first merges, replayed with the reference
    replayed = replay_merges(train, largest, cfg["replay"])
    print(f"\nthe first {len(replayed)} merges (the plain-Python replay picked the same ones):")
    for i, (a, b, c) in enumerate(replayed):
        print(f"  {256 + i}: {token_label(a)!r:>8} + {token_label(b)!r:<8} -> {token_label(a + b)!r:<12} {c:>7,}")
    plot_merges(replayed, args.out / "01_first_merges.png")

    # 4. split patterns
    pats = patterns(train, heldout, cfg["pattern_vocab"])
    print(f"\nsplit pattern at vocab {cfg['pattern_vocab']}: bytes/token on train / held-out, held-out tokens, "
          f"its commonest tokens holding a newline (count), merged tokens spanning a word boundary")
    for r in pats:
        nl = " ".join(f"{t.decode('utf-8', 'replace')!r}({c})" for t, c in r["newline"])
        ex = ", ".join(repr(t.decode("utf-8", "replace")) for t in r["examples"][:4])
        print(f"  {r['pattern']:>5}: {r['train']:.3f} / {r['heldout']:.3f}  {r['heldout_tokens']:>7,}  {nl:<40} "
              f"{r['crossing']:>4} {ex}")

    # 5. one passage, several vocabularies
    shown = (cfg["sizes"][0], cfg["sizes"][len(cfg["sizes"]) // 2], cfg["sizes"][-1])
    views = [visualize(toks[v], PROBE) for v in shown]
    titles = [f"tinyllm BPE, vocab {v}: {len(vw)} tokens" for v, vw in zip(shown, views)]
    if gpt2_tok is not None:
        views.append(visualize(gpt2_tok, PROBE))
        titles.append(f"GPT-2, vocab 50257: {len(views[-1])} tokens")
    fig = plot_token_map(views, titles=titles, width=84, path=args.out / "01_token_map.png")
    plt.close(fig)
    print(f"\nthe probe passage ({len(PROBE.encode())} bytes): " + ", ".join(t.split(": ")[1] for t in titles)
          + f"; in the training text: {PROBE in train}")

    seconds = time.perf_counter() - t_start
    report = dict(rows=rows, gpt2=gpt2, prefix=prefix, overlap=overlap, replayed=replayed, patterns=pats,
                  lengths={k: (float(v[0].mean()), float(v[1].mean())) for k, v in lengths.items()},
                  one_byte={k: float((v[1] == 1).mean()) for k, v in lengths.items()},
                  probe_tokens=[len(v) for v in views], seconds=seconds)
    saved = dict(command="python examples/01_tokenization.py" + (" --quick" if args.quick else ""), **report,
                 longest=[t.decode("utf-8", "replace") for t in longest])
    (args.out / "01_tokenization.json").write_text(json.dumps(saved, indent=1, default=jsonable) + "\n")
    print(f"\nfigures in {args.out}/01_*.png, numbers in 01_tokenization.json; {seconds:.1f} s")
    return report


if __name__ == "__main__":
    main()
