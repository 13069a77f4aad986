"""The training loop: batches in, AdamW steps out, with evaluation, logging and checkpoints.

One iteration s (as in nanoGPT's train.py):

    1. every eval_interval steps (and at the last): estimate the mean train and val loss over
       eval_iters batches each, log them, and write a checkpoint
    2. x, y = a random batch of B windows of T tokens; y is x shifted by one
    3. logits, loss = model(x, y); loss.backward()
    4. clip the gradients' global norm to grad_clip; AdamW step at lr(s); zero the gradients

The evaluation batches come from their own generator, seeded by (seed, step), so
evaluating more or less often never changes which batches training sees.

A run stops cleanly at an iteration boundary: Ctrl-C (once) or a callback asking
to stop writes a checkpoint at that step; ``resume=True`` continues from it and
gives exactly the losses the uninterrupted run would have (on the CPU).

Data parallel (``plan.group`` of N ranks, tinyllm/distributed/): every rank draws the
same global batch and trains on its 1/N of the rows; step 3's gradients are averaged
over the ranks before step 4, so N ranks take the step one process would take with
the whole batch. Evaluation is sharded the same way. Only rank 0 writes files.
With grad_accum = K, each rank's rows are split into K micro-batches whose
gradients add up (each loss scaled by 1/K) before the step.

    result = train(TrainConfig(max_iters=200), dict(n_layer=2, n_head=2, d_model=64, context_length=64))
    print(result.val_loss)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm.data import (
    build_tokenizer,
    encode_corpus,
    get_batch,
    load_text,
    load_tokenizer,
    save_tokenizer,
    split_tokens,
)
from tinyllm.distributed import DataParallel, SingleProcess, ZeroOptimizer
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.gpt import GPT
from tinyllm.nn.moe import moe_report
from tinyllm.nn.pretrained import check_sizes
from tinyllm.optim import AdamW, WarmupCosine, clip_grad_norm_
from tinyllm.serialization import CheckpointError
from tinyllm.train.checkpoint import (
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    truncate_metrics,
)
from tinyllm.train.config import TrainConfig
from tinyllm.train.memory import check_fits
from tinyllm.train.objectives import Objective
from tinyllm.train.objectives import model_fields as objective_fields
from tinyllm.train.objectives import special_tokens as objective_tokens


@dataclass
class TrainResult:
    model: GPT
    tokenizer: object
    out_dir: Path
    step: int                 # steps completed
    train_loss: float | None  # last evaluation (None if none ran)
    val_loss: float | None
    stopped_early: bool


def make_optimizer(model, cfg: TrainConfig):
    """AdamW with weight decay on matrices only (ndim >= 2), and the warmup + cosine schedule."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:  # frozen ones (LoRA's base weights) get no optimizer state
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))
    sched = WarmupCosine(opt, warmup_steps=cfg.warmup_iters, max_steps=cfg.decay_iters,
                         min_lr_ratio=cfg.min_lr / cfg.learning_rate)
    return opt, sched


def estimate_loss(model, splits: dict, cfg: TrainConfig, context_length: int, step: int, device: str,
                  sampler=None, dp: DataParallel | None = None) -> dict:
    """Mean loss over cfg.eval_iters random batches of each split, in eval mode, without gradients.

    sampler(split, batch_size, context_length, rng) -> (x, y) draws the batches instead of
    get_batch's windows of splits[split] (finetuning on prompt/response records, an objective
    other than clm: RunPlan.sampler); (x, y, prefix_len) for a prefix LM.
    With `dp`, each rank evaluates its rows of every batch and the means are averaged over the ranks.
    """
    rng = np.random.default_rng([cfg.seed, 1, step])  # its own generator: see the module docstring
    out = {}
    model.eval()
    with tinyllm.no_grad():
        for name, tokens in splits.items():
            losses = []
            for _ in range(cfg.eval_iters):
                batch = (get_batch(tokens, cfg.batch_size, context_length, rng) if sampler is None
                         else sampler(name, cfg.batch_size, context_length, rng))
                if dp is not None:
                    batch = tuple(dp.shard(a) for a in batch)
                losses.append(batch_loss(model, batch, device).item())
            out[name] = float(np.mean(losses)) if dp is None else dp.mean(float(np.mean(losses)))
    model.train()
    return out


def batch_loss(model, batch: tuple, device: str):
    """The model's loss on a batch (x, y), or (x, y, prefix_len) for a prefix LM (train/objectives.py)."""
    x, y, *prefix = batch
    kw = {"prefix_len": prefix[0]} if prefix else {}
    return model(tinyllm.tensor(x, device=device), tinyllm.tensor(y, device=device), **kw)[1]


class _StopOnInterrupt:
    """The first Ctrl-C asks the loop to stop at the next iteration boundary; a second one aborts."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        try:
            previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss (or gradient norm); the last good checkpoint is kept."""


@dataclass
class RunPlan:
    """Everything a run needs, checked before anything is written (see `prepare`)."""

    cfg: TrainConfig
    device: str
    state: dict | None        # the checkpoint to resume from, or None for a fresh run
    tokenizer: object
    splits: dict
    model_config: GPTConfig
    resume: bool
    # finetuning (train/finetune.py) sets these; a pretraining run leaves them None
    sampler: object = None      # (split, B, T, rng) -> (x, y) or (x, y, prefix_len): batches other than windows
    #                             of splits' tokens (also set by prepare for the objectives mlm and prefix_lm)
    build_model: object = None  # (model_config) -> the model to train (e.g. the base weights + LoRA), not GPT(...)
    save_model: object = None   # (model, out_dir) -> writes the model folder, instead of model.save_pretrained
    # data parallel (tinyllm/distributed/): the ranks, and ZeRO stage 0 (none) or 1 (sharded AdamW state)
    group: object = None        # None: this process alone
    zero: int = 0

    def batch(self, split: str, rng) -> tuple:
        """(x, y) int64 (B, T) of `split` (and prefix_len (B,) for a prefix LM): the sampler's, or B random
        windows of splits[split]."""
        B, T = self.cfg.batch_size, self.model_config.context_length
        if self.sampler is not None:
            return self.sampler(split, B, T, rng)
        return get_batch(self.splits[split], B, T, rng)


def prepare(cfg: TrainConfig, model_fields: dict, *, resume: bool = False, progress: bool = False,
            group=None, zero: int = 0) -> RunPlan:
    """Check the data, the tokenizer, both configs and the checkpoint; write nothing.

    group: the ranks of a data-parallel run (tinyllm.distributed), zero: 1 to shard AdamW's state.

    Raises ValueError (DataError, CheckpointError), NotImplementedError or RuntimeError with a
    message for the user; `train` calls it first, so a run that cannot work changes no file.
    """
    out_dir = Path(cfg.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the run folder {out_dir} is a file, not a folder; choose another --out")
    ranks = 1 if group is None else group.size
    if cfg.batch_size % (ranks * cfg.grad_accum):
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {ranks} rank(s) x grad_accum="
                         f"{cfg.grad_accum} = {ranks * cfg.grad_accum} (each gets batch_size / that rows per "
                         f"micro-batch); choose a batch_size that is a multiple of {ranks * cfg.grad_accum}")
    if zero not in (0, 1):
        raise ValueError(f"zero must be 0 (plain data parallel) or 1 (AdamW's state sharded over the ranks), "
                         f"got {zero}")
    device = backend.check_device(cfg.device or backend.get_device())
    if device == "cuda" and not backend.cuda_available():
        raise ValueError("device 'cuda' needs CuPy and an NVIDIA GPU (pip install 'tinyllm[gpu]'); "
                           "use --device cpu")
    state = load_checkpoint(out_dir) if resume else None
    if state is not None:
        try:
            saved = TrainConfig.from_dict(state["train_config"])
            model_config = GPTConfig.from_dict(state["model_config"])
            start = int(state["step"])
            n_values = sum(int(t.data.size) for t in state["model"].values())
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{out_dir / 'ckpt.safetensors'} does not hold a usable run ({e}); "
                                  f"start again without --resume") from None
        # an edited model_config must not allocate far past what the checkpoint holds (e.g. context_length 1e12)
        check_sizes(model_config, n_values, f"the model_config in {out_dir / 'ckpt.safetensors'}", "its weights")
        if saved.data != cfg.data or saved.tokenizer != cfg.tokenizer:
            raise ValueError(f"--resume: the run in {out_dir} trained on data={saved.data!r} with "
                             f"tokenizer={saved.tokenizer!r}; got data={cfg.data!r}, tokenizer={cfg.tokenizer!r}")
        if start > cfg.max_iters:
            raise ValueError(f"--resume: the checkpoint in {out_dir} is at step {start}, past max_iters="
                             f"{cfg.max_iters}; give a larger --max-iters to continue it")
        if saved.objective != cfg.objective:
            raise ValueError(f"--resume: the run in {out_dir} trained with objective={saved.objective!r}; got "
                             f"{cfg.objective!r}")
    model_fields = objective_fields(cfg.objective, model_fields)  # mlm: a bidirectional model
    text = load_text(cfg.data)
    tok = load_tokenizer(out_dir) if state is not None else build_tokenizer(
        cfg.tokenizer, text, progress=progress, special_tokens=objective_tokens(cfg.objective))  # mlm: [MASK]
    tokens = encode_corpus(text, tok)  # 1-D uint16/uint32, ids checked < vocab_size
    if state is None:
        model_config = GPTConfig(vocab_size=tok.vocab_size, **model_fields)
    elif model_config.vocab_size != tok.vocab_size:
        raise CheckpointError(f"{out_dir}: the tokenizer has {tok.vocab_size} ids but the checkpoint's model "
                              f"{model_config.vocab_size}; the folder's files are from different runs")
    train_tokens, val_tokens = split_tokens(tokens, cfg.val_fraction)
    splits = {"train": train_tokens, "val": val_tokens}
    T = model_config.context_length
    for name, part in splits.items():
        if len(part) < T + 1:
            raise ValueError(f"the {name} split has {len(part)} tokens, fewer than context_length + 1 = {T + 1}: "
                             f"use more data, a smaller context_length or another val_fraction")
    check_fits(model_config, cfg.batch_size, device)  # n_layer=10**12 is a message, not days of building
    sampler = None
    if cfg.objective != "clm":  # masked LM and prefix LM batches (train/objectives.py)
        objective = Objective(cfg.objective, tok)

        def sampler(split, B, T, rng):
            batch = objective.make_batch(splits[split], B, T, rng)
            return (batch.idx, batch.targets) if batch.prefix_len is None else \
                (batch.idx, batch.targets, batch.prefix_len)
    return RunPlan(cfg=cfg, device=device, state=state, tokenizer=tok, splits=splits, model_config=model_config,
                   resume=resume, group=group, zero=zero, sampler=sampler)


def _seed_rank(state, group, seed: int, step: int, device: str) -> None:
    """Give rank r > 0 its own model generator (dropout), restored from the checkpoint where it holds one.

    Rank 0 keeps the run's generator (the checkpoint's "tinyllm" state). A checkpoint written by
    the same number of ranks holds each rank's state; one written by another number of ranks
    cannot, so those ranks start new streams from (seed, rank, step).
    """
    if group.rank == 0 or device == "cuda":
        return
    ranks = (state or {}).get("rng", {}).get("ranks")
    if isinstance(ranks, list) and len(ranks) == group.size:
        backend.set_rng_state(ranks[group.rank], device)
    else:
        tinyllm.manual_seed(int(np.random.SeedSequence([seed, group.rank, step]).generate_state(1)[0]))


def _quiet(*args, **kwargs) -> None:
    """The default `log`: library code prints nothing unless its caller passes a logger."""


def _finite(x) -> bool:
    return bool(np.isfinite(float(x)))


def train(cfg: TrainConfig, model_fields: dict, *, resume: bool = False, progress: bool = False,
          on_step=None, log=None, skip_nonfinite: bool = False, plan: RunPlan | None = None) -> TrainResult:
    """Train a GPT as `cfg` says; `model_fields` are GPTConfig fields other than vocab_size.

    on_step(step, record) is called after each logged step with the metrics record; returning
    True stops the run at the next iteration boundary (with a checkpoint), like Ctrl-C.
    Quiet unless asked: `log` (e.g. ``print``) receives the status lines, `progress` shows a bar;
    the CLI turns both on.

    Everything is checked (`prepare`, or the `plan` it returned) before the first file is written.
    A non-finite loss or gradient norm raises NonFiniteLossError at that step without writing a
    checkpoint (the last good one stays); skip_nonfinite=True skips such steps instead.
    """
    log = log or _quiet
    if plan is None:
        plan = prepare(cfg, model_fields, resume=resume, progress=progress)
    cfg, device, state, tok, splits = plan.cfg, plan.device, plan.state, plan.tokenizer, plan.splits
    model_config = plan.model_config
    out_dir = Path(cfg.out_dir)
    T = model_config.context_length
    group = plan.group or SingleProcess()
    writer = group.rank == 0  # only rank 0 writes files and speaks
    if not writer:
        log, progress = _quiet, False

    tinyllm.manual_seed(cfg.seed)
    data_rng = np.random.default_rng(cfg.seed)
    with backend.use_device(device):
        model = GPT(model_config) if plan.build_model is None else plan.build_model(model_config)
    opt, sched = make_optimizer(model, cfg)
    dp = DataParallel(model.parameters(), group) if group.size > 1 else None
    if plan.zero:
        opt = ZeroOptimizer(opt, group)  # the schedule still sets the rates in the same param_groups
    start = 0
    if state is not None:
        start = restore_training_state(state, out_dir, model=model, optimizer=opt, scheduler=sched,
                                       data_rng=data_rng, device=device)
        sched.max_steps = cfg.decay_iters  # a run extended with a larger max_iters decays to its new end
    if dp is not None:
        if state is None:
            dp.broadcast_parameters()  # the same seed gives the same weights; this makes sure of it
        _seed_rank(state, group, cfg.seed, start, device)
    # the first write: everything above may still refuse the run
    if writer:
        out_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            save_tokenizer(tok, out_dir)
            if (out_dir / "metrics.jsonl").exists():
                (out_dir / "metrics.jsonl").unlink()  # a fresh run in an old folder starts a fresh log
        else:
            truncate_metrics(out_dir / "metrics.jsonl", start)

    def checkpoint(step):
        if isinstance(opt, ZeroOptimizer):
            opt.gather_state()  # every rank sends its moments (a collective)
        rank_rngs = (group.allgather_json(backend.get_rng_state(device))
                     if dp is not None and device != "cuda" else None)
        if writer:
            save_checkpoint(out_dir, step=step, model=model, optimizer=opt, scheduler=sched, data_rng=data_rng,
                            train_config=cfg, model_config=model_config, device=device, save_model=plan.save_model,
                            rank_rngs=rank_rngs)

    n_params = model.num_parameters()
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"model: {n_params / 1e6:.2f}M parameters"
        + (f" ({n_trained:,} trainable)" if n_trained < n_params else "")
        + f", {model_config.n_layer} layers, d_model {model_config.d_model}, "
        f"context {T}, vocab {model_config.vocab_size}; data: {len(splits['train']):,} train / "
        f"{len(splits['val']):,} val tokens; device {device}" + (f"; resuming at step {start}" if start else ""))

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_iters, initial=start, disable=not progress, dynamic_ncols=True, unit="it")
    say = bar.write if progress else log  # status lines: above the bar, or to `log` (quiet by default)
    metrics = open(out_dir / "metrics.jsonl", "a") if writer else open(os.devnull, "w")
    t_begin = time.perf_counter()
    t_last, tokens_since = t_begin, 0
    last_eval: dict = {}
    stopped = False
    stopper = _StopOnInterrupt()
    step = start
    with stopper.installed(), metrics, bar:
        while True:
            is_last = step == cfg.max_iters
            if (step % cfg.eval_interval == 0 or is_last) and not (state is not None and step == start):
                last_eval = estimate_loss(model, splits, cfg, T, step, device, sampler=plan.sampler, dp=dp)
                if not (_finite(last_eval["train"]) and _finite(last_eval["val"])):
                    raise NonFiniteLossError(
                        f"the evaluation at step {step} gave a non-finite loss (train {last_eval['train']}, val "
                        f"{last_eval['val']}); no checkpoint written, the last good one in {out_dir} is kept: "
                        f"try a lower learning_rate")
                rec = {"step": step, "train_loss": last_eval["train"], "val_loss": last_eval["val"],
                       "lr": sched.get_last_lr()[0], "elapsed_s": time.perf_counter() - t_begin, "eval": True}
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                say(f"step {step}: train loss {last_eval['train']:.4f}, val loss {last_eval['val']:.4f}")
                checkpoint(step)
            if is_last:
                break
            stop = stopper.requested or stopped
            if dp is not None:  # every rank stops at the same step, or the collectives would wait forever
                stop = dp.mean(float(stop)) > 0
            if stop:
                checkpoint(step)
                stopped = True
                say(f"stopped at step {step}; checkpoint in {out_dir} (continue with --resume)")
                break

            batch = plan.batch("train", data_rng)  # (x, y), or (x, y, prefix_len) for a prefix LM
            if dp is not None:
                batch = tuple(dp.shard(a) for a in batch)
            x = batch[0]
            if cfg.grad_accum == 1:
                loss = batch_loss(model, batch, device)
                loss.backward()
                loss_value = loss.item()
            else:  # K micro-batches of this rank's rows; their gradients add up to the mean over all rows
                loss_value = 0.0
                for micro in zip(*(np.split(a, cfg.grad_accum) for a in batch)):
                    loss = batch_loss(model, micro, device)
                    (loss * (1.0 / cfg.grad_accum)).backward()
                    loss_value += loss.item() / cfg.grad_accum
            if dp is not None:
                dp.reduce_gradients()  # the mean over the ranks: the gradient of the global batch
                loss_value = dp.mean(loss_value)
            # the total gradient norm (clipped only when grad_clip > 0); one host sync checks it and the loss
            norm = clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            lr = sched.get_last_lr()[0]
            if not (_finite(loss_value) and _finite(norm.item())):
                if not skip_nonfinite:
                    raise NonFiniteLossError(
                        f"step {step}: the loss ({loss_value}) or gradient norm ({norm.item()}) is not finite; "
                        f"stopped without writing a checkpoint (the last good one in {out_dir} is kept): "
                        f"try a lower learning_rate, or skip such steps with --skip-nonfinite")
                say(f"step {step}: non-finite loss or gradient norm; step skipped (--skip-nonfinite)")
            else:
                opt.step()
            opt.zero_grad()
            sched.step()
            step += 1
            tokens_since += x.size * group.size
            bar.update(1)

            if step % cfg.log_interval == 0 or step == cfg.max_iters:
                now = time.perf_counter()
                rec = {"step": step - 1, "train_loss": loss_value, "lr": lr,
                       "tokens_per_s": tokens_since / max(now - t_last, 1e-9), "elapsed_s": now - t_begin}
                moe = moe_report(model)  # per MoE layer: tokens per expert, drops, router entropy (§8)
                if moe:  # train_loss is what was minimized, the LM loss + the experts' aux losses
                    rec.update(lm_loss=model.loss_parts["lm"].item(), moe=moe)
                t_last, tokens_since = now, 0
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                bar.set_postfix(loss=f"{rec['train_loss']:.4f}", tok_s=f"{rec['tokens_per_s']:,.0f}")
                if on_step is not None and on_step(step - 1, rec):
                    stopped = True
    return TrainResult(model=model, tokenizer=tok, out_dir=out_dir, step=step,
                       train_loss=last_eval.get("train"), val_loss=last_eval.get("val"), stopped_early=stopped)
