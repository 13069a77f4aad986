"""The Hugging Face commands (§15): a model to and from a folder transformers loads.

    tinyllm export hf --ckpt DIR --out HFDIR [--force] [--trust-pattern]
        model.safetensors, config.json (GPT2LMHeadModel or LlamaForCausalLM), generation_config.json,
        tokenizer.json and tokenizer_config.json (tinyllm/interop/hf.py); a config that no standard
        architecture expresses is refused with the field that decides it
    tinyllm export onnx --ckpt DIR --out ONNXDIR [--force] [--trust-pattern]
        the same model as an ONNX graph ONNX Runtime runs (model.onnx, through optimum's exporter:
        tinyllm/interop/onnx.py; pip install optimum-onnx onnxruntime)
    tinyllm import hf HFDIR --out DIR [--force] [--trust-pattern]
        a GPT-2 or Llama folder (safetensors only) as a tinyllm model folder that `tinyllm sample`,
        `tinyllm finetune` and GPT.from_pretrained read

--out must be a new or empty folder; --force moves what it holds into --out/.replaced-<time>/,
as `tinyllm train --force` does. add_export_format(kinds) adds `hf` and `onnx` to the `tinyllm export` group
(tinyllm/export.py); add_subcommand(sub) adds the `tinyllm import` group.
"""

from __future__ import annotations

from pathlib import Path


def _out_dir(out: str, force: bool) -> Path:
    from tinyllm.cli import move_aside, run_files

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; name a folder")
    held = run_files(path)
    if held and not force:
        raise ValueError(f"--out {path} already holds {len(held)} file(s) (e.g. {held[0].name}); name a new folder "
                         "or pass --force to move them into --out/.replaced-<time>/")
    if held:
        move_aside(path, held)
    return path


def _export(args) -> int:
    from tinyllm.interop.hf import save_hf
    from tinyllm.interop.hf_config import ARCHITECTURE_CLASS, hf_architecture
    from tinyllm.interop.onnx import export_onnx
    from tinyllm.train import load_run

    model, tok = load_run(args.ckpt, device="cpu", trust_pattern=args.trust_pattern)
    arch = hf_architecture(model.config)  # refuse before --out is touched
    out = _out_dir(args.out, args.force)
    if args.kind == "onnx":
        export_onnx(model, tok, out)
        loader = "optimum.onnxruntime.ORTModelForCausalLM"
    else:
        save_hf(model, tok, out)
        loader = "transformers.AutoModelForCausalLM"
    print(f"wrote {out}: {ARCHITECTURE_CLASS[arch]}, {model.num_parameters():,} parameters, a {tok.vocab_size}-token "
          f"tokenizer; load it with {loader}.from_pretrained({str(out)!r})")
    return 0


def _import_hf(args) -> int:
    from tinyllm.data import save_tokenizer
    from tinyllm.interop.hf import load_hf

    model, tok = load_hf(args.hf_dir, device="cpu", trust_pattern=args.trust_pattern)
    out = _out_dir(args.out, args.force)
    model.save_pretrained(out)
    if tok is not None:
        save_tokenizer(tok, out)
    note = "" if tok is not None else (f"; {args.hf_dir} has no tokenizer.json, so {out} has no tokenizer "
                                       "(tinyllm sample needs one)")
    print(f"wrote {out}: {model.num_parameters():,} parameters ({model.config.pos_encoding} positions, "
          f"{model.config.activation}){note}")
    return 0


_TRUST = "run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)"


def add_export_format(kinds) -> None:
    """`tinyllm export hf` and `tinyllm export onnx` under the export group's subparsers."""
    for kind, help_text in (("hf", "a Hugging Face model folder (transformers loads it, no custom code)"),
                            ("onnx", "an ONNX graph for ONNX Runtime (through transformers and optimum)")):
        h = kinds.add_parser(kind, help=help_text)
        h.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (tinyllm train) or a saved model")
        h.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")
        h.add_argument("--force", action="store_true", help="move what --out holds into --out/.replaced-<time>/")
        h.add_argument("--trust-pattern", action="store_true", help=_TRUST)
        h.set_defaults(func=_export, kind=kind)


def add_subcommand(sub) -> None:
    """The `tinyllm import` group: `tinyllm import hf HFDIR --out DIR`."""
    i = sub.add_parser("import", help="read another tool's model folder into tinyllm (Hugging Face)")
    kinds = i.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    h = kinds.add_parser("hf", help="a GPT-2 or Llama model folder of Hugging Face transformers (safetensors)")
    h.add_argument("hf_dir", metavar="HFDIR", help="the folder: config.json, model.safetensors, tokenizer.json")
    h.add_argument("--out", required=True, metavar="DIR", help="the tinyllm model folder to write (new or empty)")
    h.add_argument("--force", action="store_true", help="move what --out holds into --out/.replaced-<time>/")
    h.add_argument("--trust-pattern", action="store_true", help=_TRUST)
    h.set_defaults(func=_import_hf)
