"""The `tinyllm export` group: a trained model as the files other runtimes load.

    tinyllm export gguf --ckpt DIR --out FILE.gguf [--dtype f32|f16|q8_0|q5_0|q4_0] [--approximate-gelu] [--force]
        a GGUF file for llama.cpp (tinyllm/interop/gguf.py): GPT-2-style configs as its "gpt2"
        architecture, LLaMA-style ones (rope, rmsnorm, swiglu, no bias) as "llama"; the tokenizer as
        a GGUF BPE vocabulary; the blocks' matrices in --dtype, quantized by tinyllm's own quantizers

    tinyllm export awq --ckpt DIR --out HFDIR [--group-size G] [--calib FILE] [--force]
        a LLaMA-style model as a Hugging Face folder with AutoAWQ's 4-bit tensors (tinyllm/interop/awq.py):
        int4 per group of G inputs (default 128); with --calib, AWQ's scales and clipping searched on
        that text first (tinyllm/quant/awq.py), else plain rounding

    tinyllm export hf --ckpt DIR --out HFDIR      a Hugging Face model folder (tinyllm/hf_commands.py)

Registers itself with add_subcommand(sub) (tinyllm/cli.py, _CHAPTER_COMMANDS); the library is
imported only when a command runs. Another format joins the group by naming its module in
EXPORT_FORMATS: that module's add_export_format(kinds) adds `tinyllm export FORMAT`.
"""

from __future__ import annotations

from pathlib import Path

EXPORT_FORMATS = ("tinyllm.hf_commands",)  # modules with add_export_format(kinds): tinyllm export hf


def _out_file(out: str, force: bool) -> Path:
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; name a file, e.g. {path / 'model.gguf'}")
    if path.exists() and not force:
        raise ValueError(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise ValueError(f"the folder of --out, {path.parent}, does not exist; create it first")
    return path


def _gguf(args) -> int:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportError("tinyllm export gguf writes the file with llama.cpp's gguf package: "
                          "pip install gguf") from None
    from tinyllm.interop.gguf import export_gguf
    from tinyllm.train import load_run

    path = _out_file(args.out, args.force)
    model, tok = load_run(args.ckpt, device="cpu", trust_pattern=args.trust_pattern)
    tmp = path.with_name(path.name + ".partial")
    export_gguf(model, tok, tmp, dtype=args.dtype, approximate_gelu=args.approximate_gelu,
                name=Path(args.ckpt).resolve().name)
    tmp.replace(path)  # whole or not at all
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {args.dtype})")
    return 0


def _awq(args) -> int:
    import numpy as np

    from tinyllm.interop.awq import export_awq
    from tinyllm.quant.awq import apply_awq
    from tinyllm.train import load_run

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.force)):
        raise ValueError(f"--out {out} must be a new or empty folder (or pass --force to write into it)")
    model, tok = load_run(args.ckpt, device="cpu", trust_pattern=args.trust_pattern)
    if args.calib:
        ids = np.asarray(tok.encode(Path(args.calib).read_text(encoding="utf-8")), dtype=np.int64)
        T = model.config.context_length
        if len(ids) < T:
            raise ValueError(f"--calib {args.calib} holds {len(ids)} tokens; AWQ needs at least one window of {T}")
        n = min(64, len(ids) // T)
        apply_awq(model, ids[:n * T].reshape(n, T), "int4", args.group_size)  # (n, T) windows
    export_awq(model, tok, out, group_size=args.group_size)
    print(f"wrote {out} (int4, group {args.group_size}, AutoAWQ gemm layout{', AWQ scales' if args.calib else ''})")
    return 0


def add_subcommand(sub) -> None:
    import importlib

    e = sub.add_parser("export", help="write a trained model in another runtime's format (GGUF for llama.cpp, "
                       "a Hugging Face folder)")
    kinds = e.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    g = kinds.add_parser("gguf", help="a GGUF file for llama.cpp")
    g.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    g.add_argument("--out", required=True, metavar="FILE", help="the .gguf file to write")
    g.add_argument("--dtype", default="f32", choices=("f32", "f16", "q8_0", "q5_0", "q4_0"),
                   help="the blocks' matrices (default f32); embeddings, head, norms and biases stay f32")
    g.add_argument("--approximate-gelu", action="store_true",
                   help="export a model trained with exact GELU although llama.cpp computes its tanh form")
    g.add_argument("--force", action="store_true", help="replace --out if it exists")
    g.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it")
    g.set_defaults(func=_gguf)
    a = kinds.add_parser("awq", help="a Hugging Face Llama folder with AutoAWQ's 4-bit tensors")
    a.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    a.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")
    a.add_argument("--group-size", type=int, default=128, choices=(32, 64, 128), help="inputs per scale (default 128)")
    a.add_argument("--calib", metavar="FILE", default=None,
                   help="text to search AWQ's scales on (without it: plain round-to-nearest)")
    a.add_argument("--force", action="store_true", help="write into a folder that holds files")
    a.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it")
    a.set_defaults(func=_awq)
    for name in EXPORT_FORMATS:
        importlib.import_module(name).add_export_format(kinds)
