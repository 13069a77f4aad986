"""The commands of post-training (§12): tinyllm finetune.

    tinyllm finetune --from DIR --data FILE --out DIR [--lora-r R [--lora-alpha A] [--lora-targets c_attn,...]
                     [--lora-dropout P]] [--base-data NAME] [--resume | --force] [--no-progress]
                     [--<any TrainConfig field> VALUE]
        continue a trained model on a text file, or on a .jsonl of {"prompt", "response"} records (loss on
        the response tokens only); the run folder is a `tinyllm train` one (checkpoints, --resume,
        metrics.jsonl), plus finetune.json (the losses on the base corpus and the new data, before and after)
        and, with LoRA, adapters.safetensors (model.safetensors holds the merged weights)

Only the standard library is imported at the top (``tinyllm --help`` stays fast); each command imports
what it needs when it runs. Errors follow tinyllm/cli.py: one line, exit status 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


def _given_train_fields(args) -> dict:
    from tinyllm.train.config import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if f.name != "data" and getattr(args, f.name, None) is not None}  # --data is the command's own


def _check_out(out: Path, resume: bool, force: bool) -> list:
    """The files a fresh run would replace (moved aside only with --force); refusals as ValueError."""
    from tinyllm.cli import REPLACED_PREFIX, run_files

    if resume and force:
        raise ValueError("--resume continues the run in --out and --force replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    old = [] if resume else run_files(out)
    if old and not force:
        names = ", ".join(p.name for p in old[:4]) + (", ..." if len(old) > 4 else "")
        raise ValueError(f"{out} already holds files ({names}); continue that run with --resume, or start a new one "
                         f"with --force (the old files are moved to {out}/{REPLACED_PREFIX}<time>/)")
    return old


def _finetune(args) -> int:
    from tinyllm.train.checkpoint import load_checkpoint
    from tinyllm.train.config import TrainConfig
    from tinyllm.train.finetune import FinetuneSpec, finetune, finetune_config, prepare_finetune, read_spec

    out = Path(args.out)
    given = _given_train_fields(args)
    lora = {k: v for k, v in dict(lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                  lora_targets=args.lora_targets, base_data=args.base_data).items() if v is not None}
    old = _check_out(out, args.resume, args.force)
    if args.resume:
        saved = read_spec(out)["spec"]
        spec = FinetuneSpec(**{**saved, **({"base": args.base} if args.base else {}), **lora})
        try:
            saved_cfg = TrainConfig.from_dict(load_checkpoint(out)["train_config"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"the checkpoint in {out} does not hold a usable run ({e}); start a new run") from None
        cfg = dataclasses.replace(saved_cfg, out_dir=str(out), **({"data": args.data} if args.data else {}), **given)
    else:
        if not args.base or not args.data:
            raise ValueError("a new finetune needs --from DIR (the base model) and --data FILE (.txt or .jsonl)")
        spec = FinetuneSpec(base=args.base, **lora)
        cfg = finetune_config(spec, args.data, str(out), **given)
    plan = prepare_finetune(cfg, spec, resume=args.resume)  # every check; nothing written yet
    if old:
        from tinyllm.cli import move_aside

        print(f"--force: moved the previous files of {out} to {move_aside(out, old)}")
    from tinyllm import runtime

    runtime.keep_host_memory()
    with runtime.ThreadTuner() as threads:
        result = finetune(spec, cfg, resume=args.resume, progress=not args.no_progress, log=print,
                          on_step=threads.observe, plan_and_extras=plan)
    print(f"checkpoint: {result.out_dir}  (sample with: tinyllm sample --ckpt {result.out_dir})")
    return 0


def _targets(text: str) -> tuple:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise ValueError(f"--lora-targets: expected names of Linear layers separated by commas, got {text!r}")
    return names


def add_subcommand(sub) -> None:
    from tinyllm.cli import add_fields  # the shared flag builder of `tinyllm train`
    from tinyllm.train.config import TrainConfig

    f = sub.add_parser("finetune", help="continue a trained model on your text or prompt/response records",
                       description="Finetune a trained model (all weights, or LoRA adapters) on a text file or a "
                                   ".jsonl of {\"prompt\": ..., \"response\": ...} records (loss on the responses).")
    f.add_argument("--from", dest="base", default=None, metavar="DIR",
                   help="the base model: a run folder of `tinyllm train` (or a saved model with its tokenizer)")
    f.add_argument("--data", default=None, metavar="FILE", help="a text file or folder, or a .jsonl of records")
    f.add_argument("--out", required=True, metavar="DIR", help="the finetune's run folder")
    f.add_argument("--lora-r", type=int, default=None, metavar="R", help="train LoRA adapters of rank R (default: "
                   "every weight trains)")
    f.add_argument("--lora-alpha", type=float, default=None, metavar="A", help="LoRA's scale alpha (default 16)")
    f.add_argument("--lora-targets", type=_targets, default=None, metavar="NAMES",
                   help="Linear layers to adapt, comma-separated (default c_attn)")
    f.add_argument("--lora-dropout", type=float, default=None, metavar="P", help="dropout on the adapters' input")
    f.add_argument("--base-data", default=None, metavar="NAME",
                   help="the base model's corpus, to measure forgetting (default: the one its run recorded)")
    f.add_argument("--resume", action="store_true", help="continue the finetune in --out from its checkpoint")
    f.add_argument("--force", action="store_true",
                   help="start a new run in a folder that holds one: its files are moved to --out/.replaced-<time>/")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_fields(f.add_argument_group("training (TrainConfig; defaults: tinyllm/train/finetune.py's)"), TrainConfig,
               skip=("out_dir", "data", "tokenizer", "sample_tokens"))
    f.set_defaults(func=_finetune)
