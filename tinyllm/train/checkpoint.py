"""Checkpoints of a training run: everything needed to continue bit-identically.

A run's folder OUT/ holds

    ckpt.safetensors    one file, written atomically (tinyllm.save): the step, both configs,
                        the model's and the optimizer's state, the schedule, and the random
                        generators (the data sampler's and tinyllm's own, which dropout uses)
    model.safetensors   the weights alone + config.json: what `tinyllm sample` and exporters read
    config.json
    tokenizer.*         the tokenizer (tokenizer.json for characters, tokenizer.tiktoken for BPE)
    metrics.jsonl       one JSON object per logged step

Why every piece: resuming must replay exactly the batches, dropout masks and
learning rates the uninterrupted run would have seen. Drop the data generator's
state and the resumed run trains on different batches; drop AdamW's moments and
the first steps after a resume take steps of the wrong size.

The step stored is the next step to run: a checkpoint written at step s holds the
state after s training steps, before step s's batch is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyllm import backend
from tinyllm.serialization import CheckpointError, load, save, write_atomic

CKPT_NAME = "ckpt.safetensors"
FORMAT = "tinyllm-train-1"


def save_checkpoint(out_dir, *, step: int, model, optimizer, scheduler, data_rng, train_config,
                    model_config, device: str, save_model=None, rank_rngs: list | None = None) -> Path:
    """Write OUT/ckpt.safetensors (atomically) and the model folder (weights + config.json).

    save_model(model, out_dir) writes the model folder instead of model.save_pretrained(out_dir)
    (a LoRA finetune writes its merged weights there, so `tinyllm sample` reads a plain GPT).
    rank_rngs: every rank's model generator in a data-parallel run (rank 0's is also "tinyllm").
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = {"data": data_rng.bit_generator.state}
    if device != "cuda":  # CuPy's generator state cannot be read back; documented in backend.get_rng_state
        rng["tinyllm"] = backend.get_rng_state(device)
    if rank_rngs is not None:
        rng["ranks"] = rank_rngs
    state = {
        "format": FORMAT,
        "step": int(step),
        "train_config": train_config.to_dict(),
        "model_config": model_config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }
    path = out_dir / CKPT_NAME
    save(state, path)
    if save_model is None:
        model.save_pretrained(out_dir)
    else:
        save_model(model, out_dir)
    return path


def load_checkpoint(out_dir) -> dict:
    """Read OUT/ckpt.safetensors; clear errors when it is missing or not a training checkpoint."""
    path = Path(out_dir) / CKPT_NAME
    if not path.exists():
        raise CheckpointError(f"no training checkpoint at {path}: start a run without --resume, "
                              f"or point --out at the folder of the run to continue")
    state = load(path, device="cpu")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinyllm training checkpoint (format {FORMAT!r} expected)")
    return state


def load_run(out_dir, device: str | None = None, trust_pattern: bool = False):
    """(model, tokenizer) of a run folder (``tinyllm train --out DIR``) or a model folder with its tokenizer.

    trust_pattern=True runs a tokenizer split regex tinyllm does not know (see check_loaded_pattern).
    Raises FileNotFoundError when the folder holds no model, ValueError when its files don't
    fit together; the commands print the message and exit with status 2.
    """
    from tinyllm.data import load_tokenizer
    from tinyllm.nn.gpt import GPT

    out_dir = Path(out_dir)
    if not (out_dir / "config.json").is_file():
        raise FileNotFoundError(f"{out_dir} holds no model (config.json missing); train one with "
                                f"`tinyllm train --out {out_dir}`")
    return GPT.from_pretrained(out_dir, device=device), load_tokenizer(out_dir, trust_pattern=trust_pattern)


def restore_rng(state: dict, data_rng, device: str) -> None:
    data_rng.bit_generator.state = state["rng"]["data"]
    if "tinyllm" in state["rng"] and device != "cuda":
        backend.set_rng_state(state["rng"]["tinyllm"], device)


def restore_training_state(state: dict, out_dir, *, model, optimizer, scheduler, data_rng, device: str) -> int:
    """Load a checkpoint's model, optimizer, schedule and generators into freshly built ones -> its step.

    Every piece is checked as it loads (shapes, dtypes, numbers where numbers belong), so a checkpoint
    that was damaged or edited is a CheckpointError here, before the run writes anything, not a
    failure in the middle of its first step.
    """
    try:  # as in torch: build everything, then load each piece's state
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state, data_rng, device)
        return int(state["step"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError, OverflowError) as e:
        # subtle: the errors of reading a damaged file's values, not of tinyllm's code: the checkpoint is the input
        why = " ".join(str(e).split())[:300] or type(e).__name__
        raise CheckpointError(f"{Path(out_dir) / CKPT_NAME} does not hold a usable training state ({why}); "
                              f"start again without --resume, or restore the file from a backup") from e


def _records(path) -> list[dict]:
    """The records of a metrics.jsonl; a torn last line (a run killed mid-write) is dropped."""
    path = Path(path)
    lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn: the process stopped while writing it
            raise ValueError(f"{path}, line {i + 1}, is not JSON: {line[:60]!r}; repair or delete that line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise ValueError(f"{path}, line {i + 1}, is not a metrics record (no integer 'step')")
        out.append(rec)
    return out


def truncate_metrics(path, step: int) -> None:
    """Keep the metric lines a run had written before `step` (and the evaluation at `step`).

    A run stopped at step s may have logged lines past its last checkpoint; the resumed run
    writes those steps again, so they are dropped first (and a torn last line with them).
    The file is rewritten atomically.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [rec for rec in _records(path) if rec["step"] < step or (rec["step"] == step and rec.get("eval"))]
    write_atomic(path, "".join(json.dumps(rec) + "\n" for rec in kept).encode("utf-8"))


def read_metrics(path) -> list[dict]:
    """All records of OUT/metrics.jsonl, in order (a torn last line is left out)."""
    return _records(path)
