"""The `tinyllm` command line.

    tinyllm --help
    tinyllm demo [--steps N] [--device cpu|strict|cuda]   train a tiny MLP with autograd, check a gradient

Later chapters add their own subcommands here (train, sample, tokenize, ...).
"""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from tinyllm.backend import keep_host_memory
    from tinyllm.demo import run_demo

    keep_host_memory()  # a training loop: reuse freed memory instead of faulting it in every step

    run_demo(steps=args.steps, device=args.device, seed=args.seed)
    return 0


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinyllm",
        description="tinyllm: the engineering stack of a modern LLM, from first principles, on NumPy.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="train a tiny MLP with tinyllm's autograd and check one gradient")
    d.add_argument("--steps", type=_positive_int, default=300, help="optimizer steps (default 300)")
    d.add_argument("--device", default=None, choices=["cpu", "cuda", "strict"], help="device (default: TINYLLM_DEVICE or cpu)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    return p


def _version() -> str:
    from tinyllm import __version__

    return __version__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
