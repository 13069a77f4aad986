"""The commands of post-training (§12): tinyllm finetune, tinyllm rlhf.

    tinyllm finetune --from DIR --data FILE --out DIR [--lora-r R [--lora-alpha A] [--lora-targets c_attn,...]
                     [--lora-dropout P]] [--base-data NAME] [--resume | --force] [--no-progress]
                     [--<any TrainConfig field> VALUE]
        continue a trained model on a text file, or on a .jsonl of {"prompt", "response"} records (loss on
        the response tokens only); the run folder is a `tinyllm train` one (checkpoints, --resume,
        metrics.jsonl), plus finetune.json (the losses on the base corpus and the new data, before and after)
        and, with LoRA, adapters.safetensors (model.safetensors holds the merged weights)

    tinyllm rlhf --policy DIR --reward DIR --prompts FILE --out DIR [--prompt-tokens P] [--stop TEXT] [--force]
                 [--<any PPOConfig field> VALUE]
        PPO (tinyllm/train/rlhf/ppo.py) of the policy against a reward model saved by RewardModel.save; the
        prompts (one a line) keep their last P tokens (default: the shortest prompt's length); --out gets
        metrics.jsonl (one record per PPO step), the tuned policy as a model folder with its tokenizer, and
        rlhf.json (the reward model's score and the KL to the start, before and after, on the prompts)

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


def _prompt_ids(path: Path, tok, prompt_tokens, room: int):
    """(N, P) int64: each non-blank line's last P tokens; P <= room (the context left beside the response)."""
    import numpy as np

    from tinyllm.data import encode_text

    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path} holds no prompts; write one prompt a line")
    try:
        ids = [encode_text(tok, ln) for ln in lines]
    except ValueError as e:
        raise ValueError(f"the policy's tokenizer cannot encode {path}: {e}") from None
    P = min(len(i) for i in ids) if prompt_tokens is None else prompt_tokens
    if not 1 <= P <= room:
        raise ValueError(f"--prompt-tokens must be in [1, {room}] (the policy's context_length minus "
                         f"--response-tokens), got {P}")
    short = sum(len(i) < P for i in ids)
    if short:
        raise ValueError(f"{short} of the {len(ids)} prompts in {path} have fewer than --prompt-tokens {P} tokens; "
                         f"lower --prompt-tokens or drop them")
    return np.asarray([i[-P:] for i in ids], dtype=np.int64)


def _rlhf(args) -> int:
    import json

    from tinyllm.data import encode_text, save_tokenizer
    from tinyllm.train import load_run
    from tinyllm.train.rlhf.policy import copy_model, evaluate_policy
    from tinyllm.train.rlhf.ppo import PPOConfig, ppo_train
    from tinyllm.train.rlhf.reward import RewardModel

    out = Path(args.out)
    old = _check_out(out, False, args.force)
    cfg = PPOConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PPOConfig)
                       if getattr(args, f.name, None) is not None})
    gpt, tok = load_run(args.policy)
    rm = RewardModel.load(args.reward)
    if rm.gpt.config.vocab_size != gpt.config.vocab_size:
        raise ValueError(f"the reward model in {args.reward} reads {rm.gpt.config.vocab_size} token ids but the "
                         f"policy's tokenizer has {gpt.config.vocab_size}: train the reward model from the policy")
    ctx = min(gpt.config.context_length, rm.gpt.config.context_length)
    prompts = _prompt_ids(Path(args.prompts), tok, args.prompt_tokens, ctx - cfg.response_tokens)
    stop_id = None
    if args.stop is not None:
        stop = encode_text(tok, args.stop)
        if len(stop) != 1:
            raise ValueError(f"--stop must be one token of the policy's tokenizer, {args.stop!r} is {len(stop)}")
        stop_id = stop[0]
    if old:
        from tinyllm.cli import move_aside

        print(f"--force: moved the previous files of {out} to {move_aside(out, old)}")
    ref = copy_model(gpt)
    held = prompts[:64]
    before = evaluate_policy(gpt, ref, rm, held, cfg.response_tokens, seed=cfg.seed + 1, stop_id=stop_id)
    print(f"before: score {before['score']:.3f} on {len(held)} prompts")
    ppo_train(gpt, rm, prompts, cfg, ref=ref, stop_id=stop_id, out_dir=out, log=print)
    after = evaluate_policy(gpt, ref, rm, held, cfg.response_tokens, seed=cfg.seed + 1, stop_id=stop_id)
    print(f"after:  score {after['score']:.3f}, KL to the start {after['kl']:.2f} nats per response")
    gpt.save_pretrained(out)
    save_tokenizer(tok, out)
    (out / "rlhf.json").write_text(json.dumps({"before": before, "after": after}, indent=2) + "\n")
    print(f"policy: {out}  (sample with: tinyllm sample --ckpt {out})")
    return 0


def add_subcommand(sub) -> None:
    from tinyllm.cli import add_fields  # the shared flag builder of `tinyllm train`
    from tinyllm.train.config import TrainConfig
    from tinyllm.train.rlhf.ppo import PPOConfig

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

    r = sub.add_parser("rlhf", help="tune a policy by PPO against a reward model (RLHF)",
                       description="PPO of --policy against the reward model in --reward on the prompts of --prompts "
                                   "(tinyllm/train/rlhf/ppo.py): a KL penalty to the starting policy, GAE, "
                                   "the clipped objective; metrics.jsonl per step.")
    r.add_argument("--policy", required=True, metavar="DIR", help="a run folder or model folder with its tokenizer")
    r.add_argument("--reward", required=True, metavar="DIR", help="a reward model folder (RewardModel.save)")
    r.add_argument("--prompts", required=True, metavar="FILE", help="a text file, one prompt a line")
    r.add_argument("--out", required=True, metavar="DIR", help="metrics.jsonl, rlhf.json and the tuned policy")
    r.add_argument("--prompt-tokens", type=int, default=None, metavar="P",
                   help="each prompt keeps its last P tokens (default: the shortest prompt's length)")
    r.add_argument("--stop", default=None, metavar="TEXT", help="a token that ends a response (e.g. a newline)")
    r.add_argument("--force", action="store_true",
                   help="use a folder that holds files: they are moved to --out/.replaced-<time>/")
    add_fields(r.add_argument_group("PPO (PPOConfig)"), PPOConfig)
    r.set_defaults(func=_rlhf)
