"""The data commands (§16): `tinyllm synth`, `tinyllm clean`, `tinyllm dedup`.

    tinyllm synth KIND --n N --out FILE.jsonl [--seed S] [--force]
        stories        [--vocabulary F] [--arcs A]              the story grammar, one story a record
        arithmetic | sorting | qa   [--difficulty 1|2|3]        templated tasks with verifiable answers
        self-instruct  --ckpt DIR [--seeds FILE.jsonl] [--temperature T] [--top-k K] [--verify]
                       [--reward DIR --min-score X]             new prompt/response records from a model
        samples        --ckpt DIR [--prompts FILE] [--max-new-tokens N] [--temperature T] [--top-k K]
                                                                the model's continuations of prompts

    tinyllm clean IN OUT [--min-chars N] [--max-chars N] [--scripts Latin,Greek | --scripts any]
                         [--min-script F] [--no-gopher] [--set RULE=VALUE ...] [--format jsonl|text]
                         [--field NAME] [--force]
    tinyllm dedup IN OUT [--threshold T] [--num-perm P] [--ngram N] [--bands B] [--seed S] [--exact-only]
                         [--format jsonl|text] [--field NAME] [--force]

Every synth record carries a "provenance" field (generator, seed, index, model and knobs).
For clean and dedup, IN and OUT are corpus files: JSONL (one object per line, the text in --field, other fields kept)
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


SYNTH_KINDS = ("stories", "arithmetic", "sorting", "qa", "self-instruct", "samples")


def _reward_scorer(directory, tok):
    """score(prompt, response) -> float from a reward model folder (tinyllm/train/rlhf/reward.py)."""
    import numpy as np

    from tinyllm.backend import to_numpy
    from tinyllm.tensor import no_grad
    from tinyllm.train.rlhf.reward import RewardModel

    rm = RewardModel.load(directory)
    context = rm.gpt.config.context_length

    def score(prompt: str, response: str) -> float:
        ids = tok.encode(prompt + response)[-context:]
        with no_grad():
            return float(to_numpy(rm(np.array([ids], dtype=np.int64), np.array([len(ids) - 1])).data)[0])

    return score


def _synth_records(args) -> tuple[list[dict], str]:
    """The records of `tinyllm synth`, and a line saying what was made."""
    kind = args.kind
    if kind == "stories":
        from tinyllm.data.synthetic.stories import generate_stories

        text = generate_stories(args.n, args.seed, vocabulary=args.vocabulary, arcs=args.arcs)
        provenance = dict(generator="stories", seed=args.seed, vocabulary=args.vocabulary, arcs=args.arcs)
        return [{"text": t, "provenance": {**provenance, "index": i}}
                for i, t in enumerate(text.rstrip("\n").split("\n\n"))], f"{args.n} stories"
    if kind in ("arithmetic", "sorting", "qa"):
        from tinyllm.data.synthetic.verifiable import generate

        return generate(kind, args.n, args.seed, args.difficulty), f"{args.n} {kind} records"
    if args.ckpt is None:
        raise ValueError(f"synth {kind} samples from a trained model: give --ckpt DIR (a tinyllm train run)")
    from tinyllm.data.synthetic.self_instruct import ModelSampler, sample_documents, self_instruct
    from tinyllm.train import load_run

    model, tok = load_run(args.ckpt, trust_pattern=args.trust_pattern)
    sampler = ModelSampler(model.eval(), tok, temperature=args.temperature, top_k=args.top_k, name=str(args.ckpt))
    if kind == "samples":
        prompts = ["\n"]
        if args.prompts:
            prompts = [line for line in Path(args.prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
            if not prompts:
                raise ValueError(f"{args.prompts} holds no prompt; write one a line")
        return sample_documents(sampler, prompts, args.n, args.max_new_tokens, seed=args.seed), \
            f"{args.n} samples of {args.max_new_tokens} tokens"
    if args.seeds:
        from tinyllm.data.sft import read_records

        seeds = read_records(args.seeds)
    else:
        from tinyllm.data.synthetic.verifiable import TASKS, generate

        seeds = [r for task in TASKS for r in generate(task, 4, seed=args.seed)]
    score = _reward_scorer(args.reward, tok) if args.reward else None
    verify = None
    if args.verify:
        from tinyllm.data.synthetic.verifiable import verify
    records, report = self_instruct(sampler, seeds, args.n, seed=args.seed, max_new_tokens=args.max_new_tokens,
                                    verify=verify, score=score, min_score=args.min_score, model_name=str(args.ckpt))
    return records, report.summary()


def _synth(args) -> int:
    import json

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name a .jsonl file")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"the folder of --out, {out.parent}, does not exist; create it first")
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    records, said = _synth_records(args)
    from tinyllm.serialization import write_atomic

    write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
    print(f"{said}; wrote {len(records)} records to {out}")
    return 0


def add_subcommand(sub) -> None:
    y = sub.add_parser("synth", help="generate synthetic data: stories, verifiable tasks, or a model's own records",
                       description="Write synthetic records as JSONL, each with its provenance "
                                   "(tinyllm/data/synthetic/).")
    y.add_argument("kind", choices=SYNTH_KINDS, metavar="KIND", help=" | ".join(SYNTH_KINDS))
    y.add_argument("--n", type=int, required=True, help="records to make (self-instruct: at most)")
    y.add_argument("--out", required=True, metavar="FILE.jsonl", help="where the records go")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--force", action="store_true", help="replace --out if it exists")
    y.add_argument("--vocabulary", type=float, default=1.0, metavar="F",
                   help="stories: the fraction of each word list used (default 1)")
    y.add_argument("--arcs", type=int, default=1, metavar="A", help="stories: story arcs per story (default 1)")
    y.add_argument("--difficulty", type=int, default=1, choices=(1, 2, 3), help="arithmetic, sorting, qa")
    y.add_argument("--ckpt", default=None, metavar="DIR", help="self-instruct, samples: a tinyllm train run")
    y.add_argument("--seeds", default=None, metavar="FILE.jsonl", help="self-instruct: seed prompt/response "
                   "records (default: 4 of each verifiable task)")
    y.add_argument("--reward", default=None, metavar="DIR", help="self-instruct: a reward model folder "
                   "(RewardModel.save); candidates scoring below --min-score are dropped")
    y.add_argument("--min-score", type=float, default=0.0, help="self-instruct with --reward (default 0)")
    y.add_argument("--verify", action="store_true", help="self-instruct: keep only records whose prompt is a "
                   "verifiable task's template and whose response is its answer (verifiable.verify)")
    y.add_argument("--prompts", default=None, metavar="FILE", help="samples: prompts, one a line (default: a "
                   "newline)")
    y.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="self-instruct, samples (default 64)")
    y.add_argument("--temperature", type=float, default=1.0, help="self-instruct, samples (default 1)")
    y.add_argument("--top-k", type=int, default=None, help="self-instruct, samples (default off)")
    y.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)")
    y.set_defaults(func=_synth)

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
