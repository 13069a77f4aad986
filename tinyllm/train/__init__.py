"""tinyllm.train: the training loop, its configuration and checkpoints.

    TrainConfig, PRESETS, preset    what a run is                       (config.py)
    train, TrainResult              the loop                            (loop.py)
    prepare, RunPlan                every check, before a file is written (loop.py)
    save_checkpoint, load_checkpoint, read_metrics, load_run            (checkpoint.py)
    train_or_load, ReusedRun        reuse a finished run, else train    (reuse.py)
    check_fits                      the least memory a run needs        (memory.py)
"""

from tinyllm.train.checkpoint import load_checkpoint, load_run, read_metrics, save_checkpoint
from tinyllm.train.config import DEFAULT_PRESET, PRESETS, TrainConfig, model_fields, preset
from tinyllm.train.loop import NonFiniteLossError, RunPlan, TrainResult, estimate_loss, make_optimizer, prepare, train
from tinyllm.train.reuse import ReusedRun, train_or_load

__all__ = [
    "DEFAULT_PRESET", "PRESETS", "TrainConfig", "TrainResult", "estimate_loss", "load_checkpoint", "load_run",
    "make_optimizer", "model_fields", "NonFiniteLossError", "prepare", "preset", "read_metrics", "ReusedRun",
    "RunPlan", "save_checkpoint", "train", "train_or_load",
]
