"""The `tinyllm` command line.

    tinyllm --help
    tinyllm [--debug] COMMAND ...                         --debug: a failing command shows its traceback
    tinyllm train [--preset NAME] [--data NAME|PATH] [--tokenizer char|bpe:VOCAB] [--out DIR]
                  [--resume | --force] [--skip-nonfinite] [--max-iters N]
                  [--<any TrainConfig or GPTConfig field> VALUE]
    tinyllm sample --ckpt DIR [--prompt TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
                   [--min-p P] [--repetition-penalty R] [--presence-penalty A] [--frequency-penalty F]
                   [--seed S] [--num-samples N] [--no-cache] [--prefix-lm] [--trust-pattern]
                   [--quantize METHOD [--group-size G]]   the blocks' matrices quantized first (§14)
    tinyllm tokenize TEXT [--vocab FILE|DIR | --gpt2-ranks FILE] [--html FILE] [--no-color]
                          [--max-tokens N] [--start-token S] [--trust-pattern]
                                                          colored token spans and ids
    tinyllm demo [--steps N] [--device cpu|strict|cuda]   train a tiny MLP with autograd, check a gradient
    tinyllm attention --ckpt DIR --prompt TEXT [--out F]  every head's attention weights, as a grid (§3)
    tinyllm dashboard --ckpt DIR [--port P]               the sampling knobs, live in a browser (§5)
    tinyllm kv-viz --ckpt DIR --prompts FILE [--out FILE] which positions a prefix cache reused (§6)
    tinyllm render attention|positional [--quality l|m|h] the Manim animations of §3 and §2
    tinyllm finetune --from DIR --data FILE --out DIR     continue a model on your data, LoRA optional (§12)
    tinyllm rlhf --policy DIR --reward DIR --prompts F --out DIR   PPO against a reward model (§12)
    tinyllm synth KIND --n N --out FILE.jsonl [--seed S]  stories, verifiable tasks, a model's own records (§16)
    tinyllm clean IN OUT                                  normalize a corpus, drop what breaks quality rules (§16)
    tinyllm dedup IN OUT [--threshold T]                  remove exact copies and near-duplicates (§16)
    tinyllm export hf --ckpt DIR --out HFDIR              a folder Hugging Face transformers loads (§15)
    tinyllm export gguf --ckpt DIR --out FILE [--dtype q8_0|q4_0|...]  a GGUF file llama.cpp runs (§14)
    tinyllm import hf HFDIR --out DIR                     a GPT-2 or Llama folder of transformers, into tinyllm (§15)

The commands of later chapters live in their tool modules (tinyllm/viz/, tinyllm/render.py);
each registers itself with add_subcommand(sub) (see _CHAPTER_COMMANDS).

Errors: a command that fails on its input (a bad flag, file, checkpoint or folder) prints one line,
`tinyllm CMD: what was wrong and what to do`, and exits with status 2; only a bug shows a traceback
(or any failure, with --debug). `tinyllm train` checks everything before it writes to --out: see _train.
--trust-pattern (sample, tokenize, attention, dashboard, kv-viz): a run folder's tokenizer whose split
regex tinyllm does not know is refused, since a hostile regex can hang the process; this runs it anyway.

`tinyllm train` and `tinyllm demo` set a process-wide malloc option before they train
(tinyllm.runtime.keep_host_memory: freed memory is reused, not faulted in again each step), and
`tinyllm train` chooses its BLAS and kernel thread counts by timing its own steps
(tinyllm.runtime.ThreadTuner); the library never changes the process it runs in, the command does, here.

Every subcommand imports what it needs when it runs, so `tinyllm --help` costs little more than
`import tinyllm` itself (most of that is Numba's import: `python -X importtime -m tinyllm --help`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

_TRUST_PATTERN_HELP = "run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)"


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(parse):
    def parse_or_none(text: str):
        return None if text.lower() == "none" else parse(text)
    return parse_or_none


def _parser_for(hint):
    """An argparse type for a dataclass field's annotation: int, float, str, bool, X | None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args and len(args) < len(typing.get_args(hint)):  # Optional[X]
        return _optional(_parser_for(args[0]))
    return {bool: _bool, int: int, float: float}.get(hint, str)


def _add_fields(group, cls, skip=()):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        has_default = f.default is not dataclasses.MISSING
        group.add_argument(flag, dest=f.name, type=_parser_for(hints[f.name]), default=None, metavar="V",
                           help=f"(default: the preset's, or {f.default!r})" if has_default
                           else "(default: the preset's)")


# ----------------------------------------------------------------------------- train / sample

_TRAIN_OWN = ("out_dir",)  # set with --out
# settings that decide which tokens a run sees: a resumed run keeps them
_RUN_IDENTITY = ("data", "tokenizer", "val_fraction", "seed", "objective")
REPLACED_PREFIX = ".replaced-"


def _run_files(out) -> list:
    """What a fresh run would overwrite in `out` (earlier runs moved aside by --force do not count)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if not p.name.startswith(REPLACED_PREFIX))


def _move_aside(out, files) -> object:
    """--force: move `files` into out/.replaced-<UTC time>/ with os.replace (a rename each; nothing deleted)."""
    import os
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    aside, n = out / f"{REPLACED_PREFIX}{stamp}", 1
    while aside.exists():
        n += 1
        aside = out / f"{REPLACED_PREFIX}{stamp}-{n}"
    aside.mkdir()
    for p in files:
        os.replace(p, aside / p.name)
    return aside


def _resume_settings(args, given: dict, out: str):
    """(TrainConfig, model fields) of the run in `out`, with the explicit flags that may change applied."""
    from tinyllm.train.checkpoint import load_checkpoint
    from tinyllm.train.config import TrainConfig, model_fields

    state = load_checkpoint(out)
    try:
        saved = TrainConfig.from_dict(state["train_config"])
        saved_model = dict(state["model_config"])
        step = int(state["step"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the checkpoint in {out} does not hold a usable run ({e}); start a new run") from None
    for name in model_fields():
        if name in given and given[name] != saved_model.get(name):
            raise ValueError(f"--resume: the run in {out} has {name}={saved_model.get(name)!r}; a resumed run keeps "
                             f"its model, so drop --{name.replace('_', '-')} (or start a new run in another --out)")
    for name in _RUN_IDENTITY:
        if name in given and given[name] != getattr(saved, name):
            raise ValueError(f"--resume: the run in {out} trained with {name}={getattr(saved, name)!r}; it cannot "
                             f"change on resume: drop --{name.replace('_', '-')} (or start a new run in another --out)")
    max_iters = given.get("max_iters", saved.max_iters)
    if max_iters <= step:
        if "max_iters" not in given:
            raise ValueError(f"--resume: the run in {out} is finished (step {step} of max_iters={max_iters}); "
                             f"give a larger --max-iters to train further")
        raise ValueError(f"--resume: the run in {out} is at step {step} and --max-iters {max_iters} is not beyond "
                         f"it; give a larger --max-iters to train further")
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {k: v for k, v in given.items() if k in train_names}
    cfg = dataclasses.replace(saved, out_dir=str(out), **changes)
    return cfg, {k: v for k, v in saved_model.items() if k != "vocab_size"}


def _process_group(args):
    """The ranks of `mpiexec -n N tinyllm train --data-parallel`, or None for one process."""
    from tinyllm.distributed import init_process_group, launched_size

    n = launched_size()
    if n > 1 and not args.data_parallel:
        raise ValueError(f"launched by mpiexec as one of {n} processes without --data-parallel: each would train "
                         f"its own copy into the same --out; add --data-parallel (or run one process)")
    if not args.data_parallel:
        if args.zero:
            raise ValueError("--zero shards the optimizer over data-parallel ranks: add --data-parallel "
                             "and start the ranks with mpiexec -n N")
        return None
    return init_process_group()


def _threads_per_rank() -> int:
    """The cores of this machine split over the ranks that run on it (MPI_LOCALNRANKS, set by MPICH's mpiexec)."""
    import os

    local = os.environ.get("MPI_LOCALNRANKS") or os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or "1"
    return max(1, len(os.sched_getaffinity(0)) // max(1, int(local) if local.isdigit() else 1))


def _train(args) -> int:
    from pathlib import Path

    from tinyllm.train import preset
    from tinyllm.train.config import TrainConfig, model_fields
    from tinyllm.train.loop import prepare, train

    given = {}
    for name in [f.name for f in dataclasses.fields(TrainConfig)] + model_fields():
        value = getattr(args, name, None)
        if value is not None:
            given[name] = value
    if args.resume and args.force:
        raise ValueError("--resume continues the run in --out and --force replaces it: give one of them")
    from tinyllm.distributed import launched_rank

    global _SILENT_ERRORS
    _SILENT_ERRORS = launched_rank() > 0  # under mpiexec the ranks fail alike: rank 0 says why, once
    group = _process_group(args)
    # 1. check everything, writing nothing
    if args.resume:
        out = args.out if args.out is not None else preset(args.preset)[0].out_dir
        cfg, fields = _resume_settings(args, given, out)
    else:
        if args.out is not None:
            given["out_dir"] = args.out
        cfg, fields = preset(args.preset, **given)
    out_dir = Path(cfg.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; choose another --out")
    old = [] if args.resume else _run_files(out_dir)
    if old and not args.force:
        names = ", ".join(p.name for p in old[:4]) + (", ..." if len(old) > 4 else "")
        raise ValueError(f"{out_dir} already holds files ({names}); continue that run with --resume, or start a "
                         f"new one with --force (the old files are moved to {out_dir}/{REPLACED_PREFIX}<time>/)")
    plan = prepare(cfg, fields, resume=args.resume, progress=not args.no_progress, group=group, zero=args.zero)
    # 2. then write (in a data-parallel run, rank 0 writes)
    writer = group is None or group.rank == 0
    if old and writer:
        print(f"--force: moved the previous files of {out_dir} to {_move_aside(out_dir, old)}")
    if group is not None:
        group.barrier()  # the other ranks start once rank 0 has moved the old files aside
    from tinyllm import runtime

    runtime.keep_host_memory()  # process-wide, the command's choice: reuse freed memory between steps
    tuner = runtime.ThreadTuner() if group is None else runtime.FixedThreads(_threads_per_rank())
    from tinyllm.distributed import CollectiveTimeout

    try:
        with tuner as threads:  # BLAS and kernel threads: timed by the run itself, or the cores split over the ranks
            result = train(cfg, fields, resume=args.resume, progress=not args.no_progress, log=print,
                           skip_nonfinite=args.skip_nonfinite, plan=plan, on_step=threads.observe)
    except CollectiveTimeout as e:  # another rank is gone: say so, and end the whole job rather than wait
        print(f"tinyllm train: {_one_line(e)}", file=sys.stderr, flush=True)
        group.abort(2)
        raise
    if not writer:
        return 0
    print(f"checkpoint: {result.out_dir}  (sample with: tinyllm sample --ckpt {result.out_dir})")
    if cfg.sample_tokens and not result.stopped_early:
        print("\n--- a sample (temperature 0.8, top-k 200) ---")
        print(_generate_text(result.model, result.tokenizer, prompt=None, max_new_tokens=cfg.sample_tokens,
                             seed=cfg.seed, temperature=0.8, top_k=200, prefix_lm=cfg.objective == "prefix_lm"))
    return 0


def _start_ids(tok, prompt):
    """The prompt's token ids; with no prompt, a newline (nanoGPT's start) or else token 0."""
    from tinyllm.data import encode_text

    if prompt:
        return encode_text(tok, prompt)
    try:
        ids = encode_text(tok, "\n")
    except (KeyError, ValueError):
        ids = []
    return ids or [0]


def _generate_text(model, tok, prompt, max_new_tokens, seed, prefix_lm=False, **knobs) -> str:
    """prompt + the generated continuation; knobs: generate's sampling arguments.

    A prefix LM reads the prompt as its bidirectional prefix; a masked LM (causal=False) fills up to
    max_new_tokens [MASK] positions after the prompt, within its context, by iterative unmasking
    (tinyllm/inference/unmask.py; of the knobs, temperature and top_k apply).
    """
    from tinyllm import runtime

    with runtime.generation_threads(model.num_parameters()):  # small models: one thread, no spin-waits
        return _generate_text_with(model, tok, prompt, max_new_tokens, seed, prefix_lm, **knobs)


def _generate_text_with(model, tok, prompt, max_new_tokens, seed, prefix_lm=False, **knobs) -> str:
    import numpy as np

    ids = _start_ids(tok, prompt)
    T = model.config.context_length
    if not model.config.causal:
        from tinyllm.inference.unmask import unmask

        mask_id = tok.special_tokens.get("[MASK]")
        if mask_id is None:
            raise ValueError("this model reads both ways (causal=False) but its tokenizer has no [MASK] token to "
                             "sample by unmasking; train it with --objective mlm")
        ids = ids[-(T - 1):]
        n = min(max_new_tokens, T - len(ids))
        idx = np.asarray([ids + [mask_id] * n], dtype=np.int64)
        out = unmask(model, idx, mask_id, temperature=knobs.get("temperature", 1.0), top_k=knobs.get("top_k"),
                     banned=[i for i in tok.special_tokens.values() if i != mask_id], seed=seed)
        return (prompt or "") + tok.decode([int(t) for t in out[0, len(ids):]])
    idx = np.asarray([ids[-T:]], dtype=np.int64)  # the model sees at most context_length tokens
    if prefix_lm:
        knobs["prefix_len"] = idx.shape[1]
    out = model.generate(idx, max_new_tokens, seed=seed, **knobs)
    new = [int(t) for t in out[0, idx.shape[1]:]]
    return (prompt or "") + tok.decode(new)


def _sample(args) -> int:
    from tinyllm.inference.sampling import check_sampling_args
    from tinyllm.train import load_run

    try:
        model, tok = load_run(args.ckpt, trust_pattern=args.trust_pattern)
        if args.quantize:  # round-to-nearest, every Linear of the blocks (tinyllm/quant/linear.py, §14)
            from tinyllm.quant import quantize_model

            quantize_model(model, args.quantize, group_size=args.group_size)
    except (OSError, ValueError) as e:
        print(f"tinyllm sample: {_one_line(e)}", file=sys.stderr)
        return 2

    knobs = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                 repetition_penalty=args.repetition_penalty, presence_penalty=args.presence_penalty,
                 frequency_penalty=args.frequency_penalty)
    try:
        check_sampling_args(**knobs)
    except ValueError as e:
        print(f"tinyllm sample: {_one_line(e)}", file=sys.stderr)
        return 2
    try:
        for i in range(args.num_samples):
            seed = None if args.seed is None else args.seed + i
            text = _generate_text(model, tok, args.prompt, args.max_new_tokens, seed, use_cache=not args.no_cache,
                                  prefix_lm=args.prefix_lm, **knobs)
            print(text)
            if i + 1 < args.num_samples:
                print("---------------")
    except (KeyError, ValueError) as e:
        print(f"tinyllm sample: {_one_line(e)}", file=sys.stderr)
        return 2
    return 0


def _tokenize(args) -> int:
    from tinyllm.viz.tokens import tokenize_command

    return tokenize_command(args)


def _demo(args) -> int:
    from tinyllm import runtime
    from tinyllm.demo import run_demo

    runtime.keep_host_memory()  # a training loop: reuse freed memory instead of faulting it in every step

    run_demo(steps=args.steps, device=args.device, seed=args.seed)
    return 0


# modules with an add_subcommand(sub); they import only the standard library at the top, so --help loads
# no Manim, server or plotting code
_CHAPTER_COMMANDS = (
    "tinyllm.viz.attention_maps",        # tinyllm attention
    "tinyllm.viz.dashboard.cli",         # tinyllm dashboard
    "tinyllm.viz.kv_viz",                # tinyllm kv-viz
    "tinyllm.render",                    # tinyllm render
    "tinyllm.posttrain",                 # tinyllm finetune, tinyllm rlhf
    "tinyllm.data_commands",             # tinyllm synth, clean, dedup
    "tinyllm.hf_commands",               # tinyllm import hf (tinyllm export hf: through tinyllm/export.py)
    "tinyllm.export",                    # tinyllm export gguf | hf | onnx
    "tinyllm.scaling.command",           # tinyllm sweep
)

# the --out rules and flag builder of `tinyllm train`, shared with the chapter commands (tinyllm/posttrain.py)
add_fields, run_files, move_aside = _add_fields, _run_files, _move_aside


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from tinyllm.nn.config import GPTConfig
    from tinyllm.train.config import DEFAULT_PRESET, PRESETS, TrainConfig

    p = argparse.ArgumentParser(
        prog="tinyllm",
        description="tinyllm: the engineering stack of a modern LLM, from first principles, on NumPy.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train",
                       help="train a GPT (default: a character model of the built-in stories) and sample from it",
                       description="Train a GPT. A preset sets everything; any flag below overrides it.")
    t.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help=f"(default {DEFAULT_PRESET})")
    t.add_argument("--out", default=None, metavar="DIR", help="run folder: checkpoints, metrics.jsonl, tokenizer")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its saved settings")
    t.add_argument("--force", action="store_true",
                   help="start a new run in a folder that holds one: its files are moved to --out/.replaced-<time>/")
    t.add_argument("--skip-nonfinite", action="store_true",
                   help="skip a step whose loss or gradient norm is NaN/inf (default: stop there)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--data-parallel", action="store_true",
                   help="under mpiexec -n N: N ranks train one model, each on 1/N of every batch")
    t.add_argument("--zero", type=int, default=0, choices=(0, 1),
                   help="with --data-parallel: 1 splits AdamW's state over the ranks (ZeRO stage 1); default 0")
    _add_fields(t.add_argument_group("training (TrainConfig)"), TrainConfig, skip=_TRAIN_OWN)
    _add_fields(t.add_argument_group("model (GPTConfig)"), GPTConfig, skip=("vocab_size",))
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="generate text from a trained model")
    s.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    s.add_argument("--prompt", default=None, help="text to continue (default: a newline)")
    s.add_argument("--max-new-tokens", type=_positive_int, default=300)
    s.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    s.add_argument("--top-k", type=_optional(int), default=200,
                   help="sample among the k most likely tokens (default 200; none = off)")
    s.add_argument("--top-p", type=_optional(float), default=None,
                   help="nucleus: the smallest set of tokens with probability >= p (default off)")
    s.add_argument("--min-p", type=_optional(float), default=None,
                   help="drop tokens below min_p x the top probability (default off)")
    s.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages tokens already seen "
                   "(Hugging Face's; default 1 = off)")
    s.add_argument("--presence-penalty", type=float, default=0.0, help="subtract this from seen tokens' logits")
    s.add_argument("--frequency-penalty", type=float, default=0.0,
                   help="subtract this x count from seen tokens' logits")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--num-samples", type=_positive_int, default=1)
    s.add_argument("--no-cache", action="store_true", help="recompute the whole window at each step (no KV cache)")
    s.add_argument("--prefix-lm", action="store_true", help="read the prompt as a bidirectional prefix (a model "
                   "trained with --objective prefix_lm); a masked LM (--objective mlm) is sampled by unmasking")
    s.add_argument("--trust-pattern", action="store_true", help=_TRUST_PATTERN_HELP)
    s.add_argument("--quantize", default=None, metavar="METHOD",
                   help="quantize the blocks' matrices first: f16, q8_0, q5_0, q4_0, int8, int8_asym, int4, int4_sym")
    s.add_argument("--group-size", type=int, default=None, metavar="G",
                   help="with --quantize int4/int4_sym: inputs per scale, 32, 64 or 128 (default 128)")
    s.set_defaults(func=_sample)

    k = sub.add_parser("tokenize", help="show how a tokenizer cuts text into tokens (colored spans and ids)")
    k.add_argument("text", help="the text to tokenize ('-' reads standard input)")
    which = k.add_mutually_exclusive_group()
    which.add_argument("--vocab", metavar="FILE", help="a tinyllm tokenizer file (tokenizer.tiktoken / tokenizer.json) "
                       "or a run folder")
    which.add_argument("--gpt2-ranks", metavar="FILE", help="GPT-2's rank file (gpt2.tiktoken) with the GPT-2 pattern; "
                       "the default is $TINYLLM_DATA_DIR/gpt2.tiktoken when neither flag is given")
    k.add_argument("--html", metavar="FILE", default=None, help="also write a standalone HTML page")
    k.add_argument("--no-color", action="store_true", help="brackets instead of ANSI colors")
    k.add_argument("--max-tokens", type=int, default=2000, metavar="N",
                   help="show at most N tokens (default 2000; 0 = all); the summary says how many were left out")
    k.add_argument("--start-token", type=int, default=0, metavar="S", help="the first token shown (default 0)")
    k.add_argument("--trust-pattern", action="store_true", help=_TRUST_PATTERN_HELP)
    k.set_defaults(func=_tokenize)

    d = sub.add_parser("demo", help="train a tiny MLP with tinyllm's autograd and check one gradient")
    d.add_argument("--steps", type=_positive_int, default=300, help="optimizer steps (default 300)")
    d.add_argument("--device", default=None, choices=["cpu", "cuda", "strict"],
                   help="device (default: TINYLLM_DEVICE or cpu)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)

    for name in _CHAPTER_COMMANDS:
        importlib.import_module(name).add_subcommand(sub)
    return p


def _version() -> str:
    from tinyllm import __version__

    return __version__


# what a user's input or machine can cause: one line and exit status 2. Anything else is a bug and shows
# its traceback. tinyllm's own errors derive from these (DataError, CheckpointError are ValueErrors,
# NonFiniteLossError a FloatingPointError). TypeError is left out on purpose: a command's arguments are
# parsed strings, so a TypeError ("unexpected keyword argument") is a wrong call in the code, a bug.
_USER_ERRORS = (ValueError, OSError, NotImplementedError, ImportError, FloatingPointError)
_SILENT_ERRORS = False  # set on data-parallel ranks > 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text


def main(argv=None) -> int:
    """Run a command: 0 on success; 2 and one line `tinyllm CMD: what was wrong` on stderr for a user error.

    --debug shows the traceback instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"tinyllm {args.command}: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as e:
        if args.debug:
            raise
        if not _SILENT_ERRORS:
            print(f"tinyllm {args.command}: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
