"""The labs' trained model: one character model of tinyshakespeare that every lab needing one shares.

A lab that samples from a model (§5) or caches its keys and values (§6) needs
one that has learned something, and training it in every lab would waste
minutes. So the labs share one run, nanoGPT's shakespeare-char CPU recipe,
trained once in SHARED_RUN by whichever lab needs it first and reused after
(``tinyllm.train.train_or_load`` decides: same configs and corpus, finished ->
load it). A lab's flags pick another:

    lab_model(ckpt="out/my-run")                 a run folder, used as it is            (a lab's --ckpt)
    lab_model(quick_dir="out/labs/05-quick")     a tiny model (2 layers, 60 steps) there (a lab's --quick)
    lab_model()                                  the shared run                          (the default)

and the labs that compare models on one budget train each with ``fit_curve``: the same seeded
batches, schedule and evaluation points for every model of a comparison.

This is a tool for the labs in examples/, not part of the library: nothing in
tinyllm imports it.
"""

from __future__ import annotations

import numpy as np

from tinyllm.optim import clip_grad_norm_
from tinyllm.train import TrainConfig, load_run, make_optimizer, preset, train_or_load

SHARED_RUN = "out/labs/shakespeare-char"  # nanoGPT's shakespeare-char CPU recipe, trained once, shared by the labs
QUICK_OVERRIDES = dict(max_iters=60, n_layer=2, d_model=64, eval_iters=2, eval_interval=60)


def lab_model(ckpt=None, quick_dir=None, progress: bool = True):
    """(model in eval mode, tokenizer) for a lab that needs a trained character model of tinyshakespeare.

    ckpt: a run folder to use as it is (a lab's --ckpt). Else, with quick_dir, a tiny model
    (QUICK_OVERRIDES: 2 layers, 60 steps) trained or reused there (a lab's --quick); else
    the shared run SHARED_RUN, trained on first use by whichever lab needs it first.
    """
    if ckpt is not None:
        model, tok = load_run(ckpt)
        return model.eval(), tok
    if quick_dir is not None:
        run = train_or_load(*preset("shakespeare-char-cpu", out_dir=str(quick_dir), sample_tokens=0,
                                    **QUICK_OVERRIDES), progress=False, log=print)
    else:
        run = train_or_load(*preset("shakespeare-char-cpu", out_dir=SHARED_RUN, sample_tokens=0), progress=progress,
                            log=print)
    return run.model, run.tokenizer


def fit_curve(model, next_batch, evaluate, steps: int, lr: float, batch_size: int, eval_every: int, seed: int,
              after_step=None) -> list:
    """`steps` AdamW steps (warmup a tenth, cosine to lr/10, gradients clipped) -> [(step, evaluate(model)), ...].

    next_batch(rng) -> (x, y) draws from rng = default_rng([seed, 9]), so every model trained with the same
    seed sees the same batches; evaluate(model) runs every eval_every steps and after the last;
    after_step(step), when given, runs after each optimizer step (a lab's own logging).
    """
    cfg = TrainConfig(max_iters=steps, learning_rate=lr, min_lr=lr / 10, warmup_iters=steps // 10,
                      batch_size=batch_size)
    opt, sched = make_optimizer(model, cfg)
    rng = np.random.default_rng([seed, 9])
    curve = []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            curve.append((step, evaluate(model)))
        if step == steps:
            return curve
        x, y = next_batch(rng)
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        sched.step()
        if after_step is not None:
            after_step(step)
