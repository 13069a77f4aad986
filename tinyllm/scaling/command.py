"""`tinyllm sweep --sizes xs,s,m --tokens N --out DIR`: the scaling sweep from the command line.

Each size trains in DIR/<size> (skipped when finished, resumed when stopped: run it again to
continue a sweep), then one line per size: N, the val loss, tokens/s and the achieved FLOP/s.
"""

from __future__ import annotations

from tinyllm.scaling.family import SIZES


def add_subcommand(sub) -> None:
    p = sub.add_parser("sweep", help="train a family of sizes on the same tokens (§13)",
                       description="Train each size of tinyllm/scaling/family.py on the same data and token "
                                   "budget, each in DIR/<size>; finished sizes are skipped, stopped ones resumed.")
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, from {', '.join(SIZES)} (default all)")
    p.add_argument("--tokens", type=int, required=True, help="training tokens per size")
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder")
    p.add_argument("--data", default="tinyshakespeare", help="corpus name, file or folder (default tinyshakespeare)")
    p.add_argument("--tokenizer", default="char", help="char or bpe:VOCAB (default char)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context-length", type=int, default=128)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.scaling.sweep import sweep

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    rows = sweep(sizes, args.tokens, args.out, data=args.data, tokenizer=args.tokenizer,
                 batch_size=args.batch_size, context_length=args.context_length, log=print,
                 progress=not args.no_progress)
    print(f"{'size':6s} {'N':>12s} {'val loss':>9s} {'tokens/s':>10s} {'GFLOP/s':>8s}")
    for r in rows:
        print(f"{r['size']:6s} {r['non_embedding_params']:12,d} {r['val_loss']:9.4f} {r['tokens_per_s']:10,.0f} "
              f"{r['flops_per_s'] / 1e9:8.2f}")
    print(f"rows: {args.out}/sweep.json")
    return 0
