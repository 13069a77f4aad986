"""Finetuning: continue a trained model on new data, in the training loop of tinyllm/train/loop.py.

Pretraining taught the model a corpus; finetuning moves it towards another one, starting
from its weights instead of random ones (Howard & Ruder 2018; Radford et al. 2018). The
loop is the same (AdamW, warmup + cosine, evaluation, checkpoints, resume, metrics.jsonl,
the progress bar): only three things differ, and the RunPlan carries them:

    the model    the base folder's weights (build_model), all trainable, or frozen with
                 LoRA adapters (spec.lora_r >= 1; tinyllm/nn/lora.py)
    the batches  a text file: random windows, as pretraining; a .jsonl file of
                 {"prompt", "response"} records: the loss on the response tokens only
                 (tinyllm/data/sft.py; the sampler)
    the folder   with LoRA, model.safetensors holds the merged weights (a plain GPT that
                 `tinyllm sample` reads) and adapters.safetensors the adapters alone

The tokenizer is the base model's: the new data must be encodable by it (a character
tokenizer knows only the characters of its corpus; a byte-level BPE encodes any text).

Before and after: the mean loss on the base corpus's val split (what the model forgets) and
on the new data's val split (what it learns), on the same batches, into OUT/finetune.json:

    {"spec": {...}, "before": {"base": 1.21, "new": 2.90}, "after": {"base": 1.35, "new": 0.41}}

Example:
    result = finetune(FinetuneSpec(base="out/stories"), TrainConfig(data="tasks.jsonl", out_dir="out/ft", ...))
    result.before, result.after
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllm import backend
from tinyllm.data import encode_corpus, load_text, load_tokenizer, split_tokens
from tinyllm.data.sft import PromptResponseData, read_records
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.gpt import GPT
from tinyllm.nn.lora import DEFAULT_TARGETS, apply_lora, merged_state_dict, save_adapters
from tinyllm.nn.pretrained import CONFIG_NAME
from tinyllm.serialization import CheckpointError, parse_json, read_regular_file, write_atomic
from tinyllm.train.checkpoint import CKPT_NAME, load_checkpoint
from tinyllm.train.config import TrainConfig
from tinyllm.train.loop import RunPlan, TrainResult, estimate_loss, train
from tinyllm.train.memory import check_fits

SPEC_NAME = "finetune.json"
ADAPTERS_NAME = "adapters.safetensors"
EVAL_STEP = 0  # the before and after evaluations draw the same batches (estimate_loss seeds by step)


@dataclass(frozen=True)
class FinetuneSpec:
    """What a finetune starts from and what it trains (its TrainConfig says how)."""

    base: str                        # a model folder: a `tinyllm train` run, or save_pretrained's
    lora_r: int = 0                  # 0: every weight trains; r >= 1: LoRA adapters of rank r, the rest frozen
    lora_alpha: float = 16.0
    lora_targets: tuple = DEFAULT_TARGETS
    lora_dropout: float = 0.0
    base_data: str | None = None     # the base model's corpus (forgetting); None: the one its run recorded

    def __post_init__(self):
        object.__setattr__(self, "base", str(self.base))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 0:
            raise ValueError(f"FinetuneSpec: lora_r must be an integer >= 0 (0 = full finetuning), got {self.lora_r!r}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "lora_targets": list(self.lora_targets)}


@dataclass
class FinetuneResult(TrainResult):
    before: dict | None = None  # {"base": loss or None, "new": loss} of the base model
    after: dict | None = None   # the same for the finetuned model


# a finetune's TrainConfig where the caller says nothing: shorter and gentler than pretraining
FINETUNE_DEFAULTS = dict(max_iters=300, learning_rate=3e-4, min_lr=3e-5, warmup_iters=20, weight_decay=0.0,
                         eval_interval=100, eval_iters=10, log_interval=10, batch_size=16, sample_tokens=0)
LORA_LEARNING_RATE = 1e-3  # LoRA's few parameters take larger steps (Hu et al. 2021 use 2e-4 .. 2e-3)


def finetune_config(spec: FinetuneSpec, data: str, out_dir: str, **overrides) -> TrainConfig:
    """The TrainConfig of a finetune: FINETUNE_DEFAULTS, the base's tokenizer named, `overrides` applied."""
    base = Path(spec.base)
    state = base_run_state(base)
    if state is not None and "train_config" in state:
        tokenizer = TrainConfig.from_dict(state["train_config"]).tokenizer
    else:
        tok = load_tokenizer(base)
        tokenizer = "char" if tok.file_name == "tokenizer.json" else f"bpe:{tok.vocab_size}"
    fields = dict(FINETUNE_DEFAULTS, data=str(data), out_dir=str(out_dir), tokenizer=tokenizer)
    if spec.lora_r:
        fields.update(learning_rate=LORA_LEARNING_RATE, min_lr=LORA_LEARNING_RATE / 10)
    fields.update(overrides)
    if "max_iters" in overrides and "warmup_iters" not in overrides:
        fields["warmup_iters"] = min(fields["warmup_iters"], overrides["max_iters"] // 10)
    if "learning_rate" in overrides and "min_lr" not in overrides:
        fields["min_lr"] = overrides["learning_rate"] / 10
    return TrainConfig(**fields)


def base_run_state(base: Path) -> dict | None:
    """The base folder's training checkpoint, or None when it is a bare model folder."""
    return load_checkpoint(base) if (base / CKPT_NAME).is_file() else None


def _encode(text: str, tok, what: str) -> np.ndarray:
    try:
        return encode_corpus(text, tok)
    except ValueError as e:
        raise ValueError(f"the base model's tokenizer cannot encode {what}: {e}. Finetune a model whose tokenizer "
                         f"covers the data (a byte-level one, --tokenizer bpe:256 or more, encodes any text)"
                         ) from None


def load_data(cfg: TrainConfig, tok, context_length: int):
    """(splits, sampler) of cfg.data: a .jsonl of records (sampler = PromptResponseData.batch) or text (None)."""
    if str(cfg.data).endswith(".jsonl"):
        records = read_records(cfg.data)
        try:
            data = PromptResponseData(records, tok, cfg.val_fraction, cfg.seed, source=str(cfg.data))
        except ValueError as e:
            raise ValueError(f"the base model's tokenizer cannot encode {cfg.data}: {e}") from None
        return data.splits, data.batch
    train_tokens, val_tokens = split_tokens(_encode(load_text(cfg.data), tok, cfg.data), cfg.val_fraction)
    splits = {"train": train_tokens, "val": val_tokens}
    for name, part in splits.items():
        if len(part) < context_length + 1:
            raise ValueError(f"the {name} split of {cfg.data} has {len(part)} tokens, fewer than context_length + 1 "
                             f"= {context_length + 1}: use more data or another val_fraction")
    return splits, None


def read_spec(out_dir) -> dict:
    """OUT/finetune.json of a finetune run: {"spec", "base_data", "before", "after"}."""
    out_dir = Path(out_dir)
    try:
        return parse_json(read_regular_file(out_dir / SPEC_NAME, "finetune spec").decode("utf-8"),
                          str(out_dir / SPEC_NAME))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{out_dir / SPEC_NAME} cannot be read ({e}); start again without --resume") from None


def prepare_finetune(cfg: TrainConfig, spec: FinetuneSpec, *, resume: bool = False) -> tuple[RunPlan, dict]:
    """(RunPlan, extras) with every check done and nothing written; extras: the base corpus's val tokens, ..."""
    out_dir, base = Path(cfg.out_dir), Path(spec.base)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the run folder {out_dir} is a file, not a folder; choose another --out")
    if not (base / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{base} holds no model ({CONFIG_NAME} missing); give --from a folder written by "
                                f"`tinyllm train` (or save_pretrained)")
    device = backend.check_device(cfg.device or backend.get_device())
    model_config = GPTConfig.from_dict(parse_json(read_regular_file(base / CONFIG_NAME, "model config")
                                                  .decode("utf-8"), str(base / CONFIG_NAME)))
    tok = load_tokenizer(base)
    if tok.vocab_size != model_config.vocab_size:
        raise ValueError(f"{base}: the tokenizer has {tok.vocab_size} ids but the model {model_config.vocab_size}")
    state = load_checkpoint(out_dir) if resume else None
    if state is not None:
        saved = read_spec(out_dir).get("spec")
        if saved != spec.to_dict():
            raise ValueError(f"--resume: the finetune in {out_dir} was {saved}; got {spec.to_dict()}: keep its "
                             f"--from and LoRA settings, or start a new run in another --out")
        try:
            saved_cfg, start = TrainConfig.from_dict(state["train_config"]), int(state["step"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{out_dir / CKPT_NAME} does not hold a usable run ({e}); start again") from None
        if saved_cfg.data != cfg.data:
            raise ValueError(f"--resume: the run in {out_dir} finetuned on {saved_cfg.data!r}, not {cfg.data!r}")
        if start > cfg.max_iters:
            raise ValueError(f"--resume: the checkpoint in {out_dir} is at step {start}, past max_iters="
                             f"{cfg.max_iters}; give a larger --max-iters to continue it")
    splits, sampler = load_data(cfg, tok, model_config.context_length)
    base_state = base_run_state(base)
    base_data = spec.base_data or (base_state and TrainConfig.from_dict(base_state["train_config"]).data)
    base_val = None
    if base_data:
        base_val = split_tokens(_encode(load_text(base_data), tok, base_data), cfg.val_fraction)[1]
    check_fits(model_config, cfg.batch_size, device)

    def build_model(config):
        model = GPT.from_pretrained(base, device=device).train()
        if spec.lora_r:
            apply_lora(model, r=spec.lora_r, alpha=spec.lora_alpha, targets=spec.lora_targets,
                       dropout=spec.lora_dropout)
        return model

    def save_model(model, folder):
        plain = GPT(model.config)  # the adapters merged into the base: what `tinyllm sample` loads
        plain.load_state_dict(merged_state_dict(model))
        plain.save_pretrained(folder)
        save_adapters(model, Path(folder) / ADAPTERS_NAME)

    plan = RunPlan(cfg=cfg, device=device, state=state, tokenizer=tok, splits=splits, model_config=model_config,
                   resume=resume, sampler=sampler, build_model=build_model,
                   save_model=save_model if spec.lora_r else None)
    return plan, {"base_val": base_val, "base_data": base_data}


def evaluate(model, plan: RunPlan, base_val) -> dict:
    """{"base": mean loss on the base corpus's val split (None without one), "new": on the new data's val split}."""
    cfg, T = plan.cfg, plan.model_config.context_length
    new = estimate_loss(model, {"val": plan.splits["val"]}, cfg, T, EVAL_STEP, plan.device, sampler=plan.sampler)
    base = None if base_val is None else estimate_loss(model, {"val": base_val}, cfg, T, EVAL_STEP, plan.device)
    return {"base": None if base is None else base["val"], "new": new["val"]}


def finetune(spec: FinetuneSpec, cfg: TrainConfig, *, resume: bool = False, progress: bool = False, log=None,
             on_step=None, plan_and_extras=None) -> FinetuneResult:
    """Finetune spec.base on cfg.data into cfg.out_dir; see the module docstring. Quiet unless given `log`."""
    log = log or (lambda *a, **k: None)
    plan, extras = plan_and_extras or prepare_finetune(cfg, spec, resume=resume)
    out_dir = Path(cfg.out_dir)
    before = read_spec(out_dir).get("before") if resume else None
    if before is None:
        base_model = plan.build_model(plan.model_config)
        before = evaluate(base_model, plan, extras["base_val"])
        del base_model
    log(f"before: loss {before['new']:.4f} on the new data" +
        ("" if before["base"] is None else f", {before['base']:.4f} on the base corpus ({extras['base_data']})"))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"spec": spec.to_dict(), "base_data": extras["base_data"], "before": before, "after": None}
    write_atomic(out_dir / SPEC_NAME, (json.dumps(record, indent=2) + "\n").encode())
    result = train(cfg, {}, resume=resume, progress=progress, log=log, on_step=on_step, plan=plan)
    after = evaluate(result.model, plan, extras["base_val"])
    log(f"after:  loss {after['new']:.4f} on the new data" +
        ("" if after["base"] is None else f", {after['base']:.4f} on the base corpus"))
    write_atomic(out_dir / SPEC_NAME, (json.dumps({**record, "after": after}, indent=2) + "\n").encode())
    return FinetuneResult(**vars(result), before=before, after=after)
