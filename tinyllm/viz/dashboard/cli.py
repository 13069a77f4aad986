"""`tinyllm dashboard --ckpt DIR [--port P] [--host 127.0.0.1]`: the sampling dashboard in a browser.

Only the standard library is imported here; the model and the server load when
the command runs, so `tinyllm --help` stays instant. Standalone:
``python -m tinyllm.viz.dashboard.cli --ckpt DIR``.
"""

from __future__ import annotations

import argparse
import sys

NAME = "dashboard"


def _port(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0 = any free port), got {n}")
    return n


def add_subcommand(sub) -> None:
    d = sub.add_parser(NAME, help="a page in the browser where temperature, top-k, top-p and min-p move live",
                       description="Serve the sampling dashboard: the next-token distribution before and after "
                                   "filtering, its entropy, the mass kept, and sampled continuations.")
    d.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    d.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)")
    d.add_argument("--port", type=_port, default=8000, help="(default 8000; 0 = any free port)")
    d.add_argument("--host", default="127.0.0.1", help="(default 127.0.0.1: this machine only)")
    d.add_argument("--verbose", action="store_true", help="log every request")
    d.set_defaults(func=run)


def run(args) -> int:
    ckpt = args.ckpt
    from tinyllm.train import load_run
    from tinyllm.viz.dashboard.server import make_server

    try:
        model, tok = load_run(ckpt, trust_pattern=getattr(args, "trust_pattern", False))
    except (OSError, ValueError) as e:
        print(f"tinyllm dashboard: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    except KeyError as e:  # a config or tokenizer file missing a field
        print(f"tinyllm dashboard: cannot load {ckpt}: field {e} is missing from one of its files", file=sys.stderr)
        return 2
    try:
        server = make_server(model, tok, args.host, args.port, quiet=not args.verbose)
    except OSError as e:
        print(f"tinyllm dashboard: cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
              f"pick another --port (0 = any free port)", file=sys.stderr)
        return 2
    print(f"tinyllm dashboard: {server.url}  (model {ckpt}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\ntinyllm dashboard: stopped")
    finally:
        server.server_close()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([NAME, *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
