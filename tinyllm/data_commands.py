"""The data commands (§16): `tinyllm clean`, `tinyllm dedup`.

    tinyllm clean IN OUT [--min-chars N] [--max-chars N] [--scripts Latin,Greek | --scripts any]
                         [--min-script F] [--no-gopher] [--set RULE=VALUE ...] [--format jsonl|text]
                         [--field NAME] [--force]
    tinyllm dedup IN OUT [--threshold T] [--num-perm P] [--ngram N] [--bands B] [--seed S] [--exact-only]
                         [--format jsonl|text] [--field NAME] [--force]

IN and OUT are corpus files: JSONL (one object per line, the text in --field, other fields kept)
or plain text (documents separated by blank lines); the format follows the suffix unless
--format says. Both commands stream: a document at a time for clean, two passes and a few
bytes a document for dedup (tinyllm/data/dedup.py). OUT is written whole or not at all, and an
existing OUT is replaced only with --force. Each prints its report: counts per rule or kind,
and the first documents removed.

Each registers itself with add_subcommand(sub) (tinyllm/cli.py, _CHAPTER_COMMANDS); the library
is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _file_pair(args) -> tuple[Path, Path]:
    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise ValueError(f"no corpus file at {src}; give a .jsonl or .txt file")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"OUT is IN ({src}); write the result to another file")
    if dst.is_dir():
        raise ValueError(f"OUT {dst} is a folder; name a file")
    if dst.exists() and not args.force:
        raise ValueError(f"{dst} exists; pass --force to replace it")
    if not dst.parent.is_dir():
        raise ValueError(f"the folder of OUT, {dst.parent}, does not exist; create it first")
    return src, dst


def _corpus_args(p) -> None:
    p.add_argument("input", metavar="IN", help="corpus file: .jsonl (a JSON object per line) or text")
    p.add_argument("output", metavar="OUT", help="where the result goes (same format as IN)")
    p.add_argument("--format", choices=("jsonl", "text"), default=None,
                   help="file format (default: jsonl for *.jsonl, else text: documents separated by blank lines)")
    p.add_argument("--field", default="text", help="JSONL: the field holding the text (default text)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")


def _assignment(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RULE=VALUE (e.g. min_words=20), got {text!r}") from None


def _clean(args) -> int:
    from tinyllm.data.clean import clean_file, default_rules

    src, dst = _file_pair(args)
    scripts = None if args.scripts.lower() in ("any", "none", "") else tuple(s.strip() for s in args.scripts.split(","))
    rules = default_rules(min_chars=args.min_chars, max_chars=args.max_chars, scripts=scripts,
                          min_script=args.min_script, gopher=not args.no_gopher, thresholds=dict(args.set or ()))
    report = clean_file(src, dst, fmt=args.format, field=args.field, rules=rules)
    print(report.summary())
    print(f"wrote {dst}")
    return 0


def _dedup(args) -> int:
    from tinyllm.data.dedup import dedup_file

    src, dst = _file_pair(args)
    report = dedup_file(src, dst, fmt=args.format, field=args.field, threshold=args.threshold,
                        num_perm=args.num_perm, ngram=args.ngram, seed=args.seed, bands=args.bands,
                        near=not args.exact_only)
    print(report.summary())
    print(f"wrote {dst}")
    return 0


def add_subcommand(sub) -> None:
    c = sub.add_parser("clean", help="normalize a corpus's text and drop documents that break quality rules",
                       description="Unicode NFKC, invisible and control characters, whitespace; then length "
                                   "bounds, a script filter and Gopher's quality and repetition rules "
                                   "(tinyllm/data/clean.py, quality.py). Prints what each rule removed.")
    _corpus_args(c)
    c.add_argument("--min-chars", type=int, default=1, metavar="N", help="shortest document kept (default 1)")
    c.add_argument("--max-chars", type=int, default=1_000_000, metavar="N",
                   help="longest document kept (default 1,000,000)")
    c.add_argument("--scripts", default="Latin", metavar="NAMES",
                   help="Unicode scripts a document's letters must be written in, comma-separated "
                        "(default Latin; 'any' turns the filter off)")
    c.add_argument("--min-script", type=float, default=0.9, metavar="F",
                   help="the share of letters that must be in --scripts (default 0.9)")
    c.add_argument("--no-gopher", action="store_true", help="skip Gopher's quality and repetition rules")
    c.add_argument("--set", type=_assignment, action="append", metavar="RULE=VALUE",
                   help="move a rule's threshold, e.g. --set min_words=20 (repeatable; names in the report)")
    c.set_defaults(func=_clean)

    d = sub.add_parser("dedup", help="remove exact copies and near-duplicates (MinHash + LSH) from a corpus",
                       description="Exact copies by a hash of the normalized text; near-duplicates whose MinHash "
                                   "estimate of word n-gram Jaccard similarity is >= --threshold, found through "
                                   "LSH bands; one document kept per cluster (tinyllm/data/dedup.py).")
    _corpus_args(d)
    d.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity that makes a near-duplicate "
                   "(default 0.8)")
    d.add_argument("--num-perm", type=int, default=128, metavar="P", help="MinHash permutations (default 128)")
    d.add_argument("--ngram", type=int, default=5, metavar="N", help="words per shingle (default 5)")
    d.add_argument("--bands", type=int, default=None, metavar="B",
                   help="LSH bands (default: chosen from the threshold, as datasketch does)")
    d.add_argument("--seed", type=int, default=0, help="seed of the hash functions (default 0)")
    d.add_argument("--exact-only", action="store_true", help="only exact copies (no MinHash)")
    d.set_defaults(func=_dedup)
