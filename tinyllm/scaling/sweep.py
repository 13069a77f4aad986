"""A sweep: every size of the family trained on the same tokens, each in its own run folder.

    rows = sweep(["xs", "s", "m"], tokens=2_000_000, out_dir="out/sweep")

For each size (family.py) the run is `tinyllm train` with the same data, tokenizer,
batch and context for all, max_iters = tokens / (batch_size · context_length), the
learning rate of Kaplan et al.'s rule for its N, and the same schedule (a warmup of
5% of the steps, then cosine to a tenth). The folder out_dir/<size> holds the run, so
a sweep can be stopped and started again in pieces:

    finished   (its checkpoint is at max_iters)   skipped, its numbers read back
    stopped    (a checkpoint short of max_iters)   resumed with --resume's guarantees
    absent                                          trained from the start

Each row: the size, N, the final val loss, the wall time per step and per token, tokens/s,
FLOPs per token and the achieved FLOP/s. out_dir/sweep.json keeps the rows.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tinyllm.scaling.family import SIZES, flops_per_token, learning_rate, non_embedding_params, size_fields


def run_config(name: str, tokens: int, out_dir, *, data: str = "tinyshakespeare", tokenizer: str = "char",
               batch_size: int = 16, context_length: int = 128, eval_iters: int = 20, seed: int = 1337):
    """(TrainConfig, model fields) of one size's run in out_dir/<name>."""
    from tinyllm.train.config import TrainConfig

    fields = size_fields(name, context_length)
    iters = tokens // (batch_size * context_length)
    if iters < 1:
        raise ValueError(f"tokens={tokens:,} is less than one batch of {batch_size} x {context_length}; "
                         f"give at least {batch_size * context_length:,} tokens")
    lr = learning_rate(non_embedding_params(fields["n_layer"], fields["d_model"]))
    cfg = TrainConfig(data=data, tokenizer=tokenizer, out_dir=str(Path(out_dir) / name), batch_size=batch_size,
                      max_iters=iters, learning_rate=lr, min_lr=lr / 10, warmup_iters=iters // 20,
                      eval_interval=max(1, iters // 8), eval_iters=eval_iters, log_interval=max(1, iters // 50),
                      seed=seed, sample_tokens=0)
    return cfg, fields


def _status(folder: Path, max_iters: int) -> str:
    from tinyllm.train.checkpoint import load_checkpoint

    if not (folder / "ckpt.safetensors").exists():
        return "absent"
    step = int(load_checkpoint(folder)["step"])
    return "finished" if step >= max_iters else "stopped"


def row_of(name: str, cfg, fields: dict) -> dict:
    """The sweep's numbers for one finished run, from its metrics.jsonl."""
    from tinyllm.train import read_metrics

    records = read_metrics(Path(cfg.out_dir) / "metrics.jsonl")
    evals = [r for r in records if r.get("eval")]
    steps = [r for r in records if "tokens_per_s" in r][1:]  # the first includes loading the kernels
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in steps) if steps else float("nan")
    L, d, T = fields["n_layer"], fields["d_model"], fields["context_length"]
    per_token = flops_per_token(L, d, T)
    return dict(size=name, n_layer=L, d_model=d, non_embedding_params=non_embedding_params(L, d),
                tokens=cfg.max_iters * cfg.batch_size * T, steps=cfg.max_iters, val_loss=evals[-1]["val_loss"],
                train_loss=evals[-1]["train_loss"], tokens_per_s=tokens_per_s,
                seconds_per_step=cfg.batch_size * T / tokens_per_s, flops_per_token=per_token,
                flops_per_s=per_token * tokens_per_s, learning_rate=cfg.learning_rate,
                curve=[(r["step"], r["val_loss"]) for r in evals])


def sweep(sizes, tokens: int, out_dir, *, log=None, progress: bool = False, **settings) -> list[dict]:
    """Train (or skip, or resume) each size; return the rows and write out_dir/sweep.json."""
    from tinyllm.train import train

    log = log or (lambda *a: None)
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    rows = []
    for name in sizes:
        cfg, fields = run_config(name, tokens, out_dir, **settings)
        status = _status(Path(cfg.out_dir), cfg.max_iters)
        log(f"{name}: {status}" + ("" if status == "finished" else f", training {cfg.max_iters} steps"))
        if status != "finished":
            train(cfg, fields, resume=status == "stopped", progress=progress)
        rows.append(row_of(name, cfg, fields))
    from tinyllm.serialization import write_atomic

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(out_dir) / "sweep.json", json.dumps(rows, indent=1).encode())
    return rows
