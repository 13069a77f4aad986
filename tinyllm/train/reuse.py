"""train_or_load: a finished run is reused, not retrained.

Labs and the charts of later chapters need "a model trained on
tinyshakespeare"; training it again in every lab wastes minutes. A run folder
(from ``train`` or ``tinyllm train``) already records everything that defines
the run: ckpt.safetensors holds the TrainConfig, the GPTConfig and the step.
So:

    same TrainConfig + same model fields + step == max_iters   -> load it (no training)
    same configs, stopped early (Ctrl-C)                       -> resume it
    anything else (no run, another config)                     -> train from scratch

    result = train_or_load(*preset("shakespeare-char-cpu", out_dir="out/labs/shakespeare-char"))
    result.model, result.tokenizer, result.val_loss, result.trained   # trained: False when reused

What is compared: every TrainConfig field except those that do not change the
weights (where the run lives and runs, how often it evaluates and logs, the
sample printed at the end), the model's fields, and the corpus itself: a
sha256 of its text, kept next to the run in ``reuse.json`` (a path's file may
have changed since). A run without that file (made by ``tinyllm train``), or
whose checkpoint cannot be read, is trained again. The model comes back in
eval mode either way: it is for use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tinyllm.data import load_text, load_tokenizer
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.gpt import GPT
from tinyllm.serialization import CheckpointError, write_atomic
from tinyllm.train.checkpoint import CKPT_NAME, load_checkpoint, read_metrics
from tinyllm.train.config import TrainConfig
from tinyllm.train.loop import TrainResult, prepare, train

# fields that do not change what a run learns (the evaluations draw from their own generator)
_WHERE_NOT_WHAT = ("out_dir", "device", "eval_interval", "eval_iters", "log_interval", "sample_tokens")
FINGERPRINT_NAME = "reuse.json"


@dataclass
class ReusedRun(TrainResult):
    trained: bool = True  # False: loaded from a finished run in out_dir


def _data_sha256(cfg: TrainConfig) -> str:
    return hashlib.sha256(load_text(cfg.data).encode("utf-8")).hexdigest()


def write_fingerprint(cfg: TrainConfig, out_dir: Path) -> None:
    """out_dir/reuse.json: the corpus cfg.data and the sha256 of its text (what _same_run compares)."""
    write_atomic(Path(out_dir) / FINGERPRINT_NAME,
                 (json.dumps({"data": cfg.data, "data_sha256": _data_sha256(cfg)}, indent=2) + "\n").encode())


def _same_run(state: dict, cfg: TrainConfig, model_fields: dict, out_dir: Path) -> bool:
    path = out_dir / FINGERPRINT_NAME
    if not path.exists() or json.loads(path.read_text()).get("data_sha256") != _data_sha256(cfg):
        return False
    saved = TrainConfig.from_dict(state["train_config"]).to_dict()
    asked = cfg.to_dict()
    for name in _WHERE_NOT_WHAT:
        saved.pop(name, None)
        asked.pop(name, None)
    if saved != asked:
        return False
    model = GPTConfig.from_dict(state["model_config"])
    wanted = GPTConfig(vocab_size=model.vocab_size, **model_fields)  # the vocabulary comes from the data
    return wanted == model


def _last_eval(out_dir: Path) -> dict:
    path = out_dir / "metrics.jsonl"
    evals = [r for r in read_metrics(path) if r.get("eval")] if path.exists() else []
    return evals[-1] if evals else {}


def train_or_load(cfg: TrainConfig, model_fields: dict, *, progress: bool = False, log=None) -> ReusedRun:
    """The run ``train(cfg, model_fields)`` would produce, loaded from cfg.out_dir when it is already there."""
    log = log or (lambda *a, **k: None)  # quiet unless the caller passes a logger (e.g. print)
    out_dir = Path(cfg.out_dir)
    try:
        state = load_checkpoint(out_dir) if (out_dir / CKPT_NAME).exists() else None
        same = state is not None and _same_run(state, cfg, model_fields, out_dir)
    except (CheckpointError, ValueError, TypeError, KeyError):  # unreadable, or another version's: train again
        same = False
    if same:
        if int(state["step"]) >= cfg.max_iters:
            model = GPT.from_pretrained(out_dir, device=cfg.device)
            last = _last_eval(out_dir)
            log(f"reusing the finished run in {out_dir} ({int(state['step'])} steps, "
                f"val loss {last.get('val_loss', float('nan')):.4f})")
            return ReusedRun(model=model, tokenizer=load_tokenizer(out_dir), out_dir=out_dir, step=int(state["step"]),
                             train_loss=last.get("train_loss"), val_loss=last.get("val_loss"), stopped_early=False,
                             trained=False)
        result = train(cfg, model_fields, resume=True, progress=progress, log=log)
    else:
        plan = prepare(cfg, model_fields, progress=progress)  # every check first: a bad run writes nothing
        out_dir.mkdir(parents=True, exist_ok=True)
        write_fingerprint(cfg, out_dir)
        result = train(cfg, model_fields, progress=progress, log=log, plan=plan)
    result.model.eval()
    return ReusedRun(**vars(result), trained=True)

