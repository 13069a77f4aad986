"""Benchmark: near-duplicate detection, tinyllm's MinHash + LSH against datasketch's, and against the truth.

The corpus: tinyllm.data.synthetic.duplicates.planted_corpus, 16,000 background documents
(40-300 Zipf-distributed pseudo-words) and 4,000 changed copies of random ones (word edits,
inserted spans, deleted spans, reordered chunks, each changing up to 30%): 20,000 documents.
The truth: every pair with exact word-5-gram Jaccard >= t (tinyllm.data.jaccard.similar_pairs,
the prefix filter, exact).

(a) speed: the same job, texts in, verified pairs out, threshold 0.8, 128 permutations,
    word 5-gram shingles of the same normalized words:
      tinyllm     near_duplicates(texts, 0.8, 128, 5, bands, rows): shingling, signatures and the LSH pairs in
                  Numba kernels, one thread; its own bands (12 x 10: misses weighted 0.8, see
                  tinyllm/data/dedup.py), and again with datasketch's bands (9 x 13)
      datasketch  the shingle strings made in Python, MinHash.bulk, MinHashLSH (its own choice of
                  bands, 9 x 13) with an insertion session, a query per document, candidates kept
                  when MinHash.jaccard >= 0.8 (so both report pairs whose estimate passes)
    timed in alternating rounds (A B C D, D C B A, ...) after one warm-up of tinyllm's (Numba
    compiles there); the ratio is the median of the per-round ratios. datasketch is also timed
    from ready-made shingles (its MinHash and LSH alone), the strictest comparison. Precision and
    recall of each against the truth.
(b) quality, tinyllm only: precision and recall against the truth as the threshold, the number
    of bands (at t = 0.8) and the number of permutations change; and the S-curve: for the
    4,000 planted pairs, the share that became LSH candidates, by their exact Jaccard,
    against 1 - (1 - s^r)^b.

    python benchmarks/bench_dedup.py                 # both parts; docs/figures/16_bench_dedup.json, 16_dedup_*.png
    python benchmarks/bench_dedup.py --part speed --rounds 5
    python benchmarks/bench_dedup.py --quick         # a smoke test: 2,000 documents, one round, no figures
"""

from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"  # before numba loads: the kernels run on one thread, as datasketch does

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinyllm.data import dedup, jaccard, minhash, shingles  # noqa: E402
from tinyllm.data.synthetic.duplicates import planted_corpus  # noqa: E402

WORD = re.compile(rb"[0-9A-Za-z\x80-\xff]+")  # the words of tinyllm/data/shingles.py


def shingle_strings(text: str, n: int) -> list[bytes]:
    """The same word n-grams tinyllm hashes, as byte strings for datasketch."""
    words = WORD.findall(shingles.normalize_bytes(text))
    if not words:
        return []
    k = min(n, len(words))
    return [b" ".join(words[i:i + k]) for i in range(len(words) - k + 1)]


def datasketch_pairs(sets: list[list[bytes]], threshold: float, num_perm: int, params) -> set:
    from datasketch import MinHash, MinHashLSH

    sigs = MinHash.bulk(sets, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
    with lsh.insertion_session() as session:
        for i, m in enumerate(sigs):
            session.insert(i, m, check_duplication=False)
    pairs = set()
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j > i and m.jaccard(sigs[j]) >= threshold:
                pairs.add((i, j))
    return pairs


def score(found: set, truth: set) -> dict:
    hit = len(found & truth)
    return dict(pairs=len(found), precision=hit / max(1, len(found)), recall=hit / max(1, len(truth)))


def interleaved(contenders: dict, rounds: int, warm=()) -> dict:
    for name in warm:
        contenders[name]()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def ratio(times, a, b) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def speed(docs, truth_at, args) -> dict:
    import datasketch

    t, P, n = 0.8, 128, 5
    b, r = minhash.lsh_params(t, P)  # datasketch's rule
    own = minhash.lsh_params(t, P, dedup.FP_WEIGHT, dedup.FN_WEIGHT)
    sets = [shingle_strings(d, n) for d in docs]
    results = {}

    def ours(name, bands):
        return lambda: results.__setitem__(name, set(dedup.near_duplicates(docs, t, P, n, bands=bands[0],
                                                                           rows=bands[1])))

    contenders = {
        "tinyllm": ours("tinyllm", own),
        f"tinyllm, {b} x {r} bands": ours(f"tinyllm, {b} x {r} bands", (b, r)),
        "datasketch": lambda: results.__setitem__("datasketch", datasketch_pairs(
            [shingle_strings(d, n) for d in docs], t, P, None)),
        "datasketch, no shingling": lambda: datasketch_pairs(sets, t, P, None),
    }
    times = interleaved(contenders, args.rounds, warm=list(contenders)[:2])
    truth = truth_at(t)
    out = dict(threshold=t, num_perm=P, ngram=n, bands=dict(tinyllm=own, datasketch=(b, r)), rounds=args.rounds,
               datasketch_version=datasketch.__version__, truth_pairs=len(truth))
    for name, ts in times.items():
        out[name] = dict(seconds=statistics.median(ts), docs_per_s=len(docs) / statistics.median(ts))
        if name in results:
            out[name].update(score(results[name], truth))
    same = f"tinyllm, {b} x {r} bands"
    out["speedup"] = ratio(times, "datasketch", "tinyllm")
    out["speedup_same_bands"] = ratio(times, "datasketch", same)
    out["speedup_no_shingling"] = ratio(times, "datasketch, no shingling", same)
    out["seconds_per_round"] = times
    spread = [x / y for x, y in zip(times["datasketch"], times["tinyllm"])]
    print(f"\n(a) {len(docs):,} documents, t={t}, {P} permutations, word {n}-grams; {len(truth):,} true pairs; "
          f"median of {args.rounds} alternating rounds")
    print(f"  {'':28s}{'bands':>8s}{'seconds':>9s}{'docs/s':>10s}{'precision':>11s}{'recall':>8s}")
    for name in contenders:
        row = out[name]
        bands = "{} x {}".format(*(own if name == "tinyllm" else (b, r)))
        extra = f"{row['precision']:11.3f}{row['recall']:8.3f}" if "recall" in row else ""
        print(f"  {name:28s}{bands:>8s}{row['seconds']:9.2f}{row['docs_per_s']:10,.0f}{extra}")
    print(f"  tinyllm is {out['speedup']:.1f}x datasketch end to end ({out['speedup_same_bands']:.1f}x with the same "
          f"bands; {out['speedup_no_shingling']:.1f}x datasketch's MinHash + LSH alone), median per-round ratios; "
          f"end to end per round: {min(spread):.1f}x to {max(spread):.1f}x")
    return out


def quality(docs, truth_at, source, args) -> dict:
    P0 = 128
    out = dict(thresholds=[], bands=[], num_perm=[])
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        b, r = minhash.lsh_params(t, P0, dedup.FP_WEIGHT, dedup.FN_WEIGHT)
        t0 = time.perf_counter()
        found = set(dedup.near_duplicates(docs, t, P0, 5))
        out["thresholds"].append(dict(threshold=t, bands=b, rows=r, seconds=time.perf_counter() - t0,
                                      truth=len(truth_at(t)), **score(found, truth_at(t))))
    sig = minhash.signatures(docs, P0, 5, 0)
    for b in (5, 7, 9, 12, 16, 20, 25, 32):
        found = {tuple(p) for p in minhash.lsh_pairs(sig, 0.8, b, P0 // b).tolist()}
        out["bands"].append(dict(bands=b, rows=P0 // b, **score(found, truth_at(0.8))))
    for P in (32, 64, 128, 256):
        t0 = time.perf_counter()
        found = set(dedup.near_duplicates(docs, 0.8, P, 5))
        b, r = minhash.lsh_params(0.8, P, dedup.FP_WEIGHT, dedup.FN_WEIGHT)
        out["num_perm"].append(dict(num_perm=P, bands=b, rows=r, seconds=time.perf_counter() - t0,
                                    **score(found, truth_at(0.8))))
    # the S-curve: planted pairs (copy, source), their exact Jaccard, and whether they shared a band
    values, starts = shingles.shingle_sets(docs, 5)
    copies = np.flatnonzero(source >= 0)
    exact = np.array([jaccard.jaccard(values[starts[c]:starts[c + 1]], values[starts[s]:starts[s + 1]])
                      for c, s in zip(copies, source[copies])])
    curves = []
    for b, r in ((5, 25), (9, 13), (12, 10)):
        keys = minhash.band_keys(sig, b, r)
        candidate = (keys[copies] == keys[source[copies]]).any(axis=1)
        edges = np.linspace(0, 1, 21)
        which = np.clip(np.digitize(exact, edges) - 1, 0, 19)
        bins = [dict(s=float((edges[k] + edges[k + 1]) / 2), n=int((which == k).sum()),
                     share=float(candidate[which == k].mean()) if (which == k).any() else None) for k in range(20)]
        curves.append(dict(bands=b, rows=r, bins=bins))
    out["s_curve"] = curves
    print("\n(b) precision and recall against exact Jaccard (tinyllm, 128 permutations unless said)")
    print("  threshold  bands x rows  true pairs  found  precision  recall  seconds")
    for row in out["thresholds"]:
        print(f"  {row['threshold']:9.1f}  {row['bands']:5d} x {row['rows']:<4d}  {row['truth']:10,d}  "
              f"{row['pairs']:5,d}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['seconds']:7.2f}")
    print("  at t = 0.8:  bands x rows (rows = 128 // bands)   found  precision  recall")
    for row in out["bands"]:
        print(f"              {row['bands']:5d} x {row['rows']:<4d}  {row['pairs']:5,d}  {row['precision']:9.3f}  "
              f"{row['recall']:6.3f}")
    print("  at t = 0.8:  permutations  bands x rows  found  precision  recall  seconds")
    for row in out["num_perm"]:
        print(f"              {row['num_perm']:12d}  {row['bands']:5d} x {row['rows']:<4d}  {row['pairs']:5,d}  "
              f"{row['precision']:9.3f}  {row['recall']:6.3f}  {row['seconds']:7.2f}")
    return out


def figures(q: dict, folder: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    s = np.linspace(0, 1, 201)
    for curve, color in zip(q["s_curve"], ("#1e88e5", "#e53935", "#43a047")):
        b, r = curve["bands"], curve["rows"]
        ax.plot(s, minhash.candidate_probability(s, b, r), color=color, lw=1.5, label=f"1-(1-s^{r})^{b}")
        pts = [(x["s"], x["share"]) for x in curve["bins"] if x["n"] >= 10]
        ax.plot(*zip(*pts), "o", color=color, ms=5, label=f"{b} bands x {r} rows, measured")
    ax.axvline(0.8, color="grey", ls=":", lw=1)
    ax.set(xlabel="exact Jaccard similarity s of a planted pair", ylabel="share that became LSH candidates",
           title="LSH's S-curve: theory (lines) and 4,000 planted pairs (dots)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "16_dedup_s_curve.png", dpi=130)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    th = q["thresholds"]
    axes[0].plot([x["threshold"] for x in th], [x["recall"] for x in th], "o-", label="recall")
    axes[0].plot([x["threshold"] for x in th], [x["precision"] for x in th], "s-", label="precision")
    axes[0].set(xlabel="threshold t (bands chosen from it)", ylim=(0, 1.02), title="against exact Jaccard >= t")
    bands = q["bands"]
    axes[1].plot([x["bands"] for x in bands], [x["recall"] for x in bands], "o-", label="recall")
    axes[1].plot([x["bands"] for x in bands], [x["precision"] for x in bands], "s-", label="precision")
    axes[1].axvline(12, color="grey", ls=":", lw=1)
    axes[1].set(xlabel="LSH bands b (rows = 128 // b), t = 0.8", ylim=(0, 1.02), title="more bands: more recall")
    for ax in axes:
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "16_dedup_recall.png", dpi=130)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("speed", "quality", "both"), default="both")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--docs", type=int, default=16_000, help="background documents (copies: a quarter as many more)")
    p.add_argument("--quick", action="store_true", help="2,000 documents, one round, no figures or JSON")
    p.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "figures")
    args = p.parse_args(argv)
    if args.quick:
        args.docs, args.rounds = 1600, 1
    t0 = time.perf_counter()
    docs, source, kind = planted_corpus(args.docs, args.docs // 4, seed=0)
    values, starts = shingles.shingle_sets(docs, 5)
    pairs, sim = jaccard.similar_pairs(values, starts, 0.5)
    exact = dict(zip(map(tuple, pairs.tolist()), sim))

    def truth_at(t):
        return {p for p, j in exact.items() if j >= t}

    print(f"{len(docs):,} documents ({sum(map(len, docs)) / 1e6:.1f} MB), {len(pairs):,} pairs with exact Jaccard "
          f">= 0.5 ({time.perf_counter() - t0:.1f} s to make and measure); {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}")
    report = dict(documents=len(docs), command="python benchmarks/bench_dedup.py" + (" --quick" if args.quick else ""))
    if args.part in ("speed", "both"):
        report["speed"] = speed(docs, truth_at, args)
    if args.part in ("quality", "both"):
        report["quality"] = quality(docs, truth_at, source, args)
        if not args.quick:
            figures(report["quality"], args.out)
    if not args.quick:
        name = "16_bench_dedup.json" if args.part == "both" else f"16_bench_dedup_{args.part}.json"
        (args.out / name).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.out / name}" + (" and the figures 16_dedup_*.png" if "quality" in report else ""))
    return report


if __name__ == "__main__":
    main()
