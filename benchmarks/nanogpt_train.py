"""nanoGPT's train.py, reduced to its CPU recipe: the PyTorch side of benchmarks/bench_cli_train.py.

What nanoGPT's README runs on a laptop ("I only have a macbook"):

    python data/shakespeare_char/prepare.py
    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 \
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 \
        --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

This file does the same work in one process, the way those two scripts do it: read the text, build
the character vocabulary, encode it to a uint16 array, split 90/10 (prepare.py); then eager PyTorch
at its default thread count, batches drawn with ``torch.randint`` from the token array, AdamW
(betas 0.9/0.99, decay 0.1 on matrices), warmup + cosine lr, grad clip 1.0, ``loss.item()`` each step,
an evaluation every 250 steps over 20 batches per split with a ``torch.save`` checkpoint after it, and
at the end a sample of --sample-tokens characters (what ``tinyllm train`` prints). The model is
``tests/torch_gpt.py``: nanoGPT's model.py with tinyllm's options, here nanoGPT's own settings
(no biases, tied embeddings, learned positions, LayerNorm, GELU).

    python benchmarks/nanogpt_train.py --data $TINYLLM_DATA_DIR/tinyshakespeare.txt --out /tmp/ng
    -> prints "val_loss <x>" and "wall_s <s>" as its last two lines
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # torch_gpt
import torch_gpt  # noqa: E402


def get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # nanoGPT's train.py, verbatim in spirit
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="nanoGPT's shakespeare-char CPU recipe in eager PyTorch")
    ap.add_argument("--data", required=True, help="a text file (tinyshakespeare.txt)")
    ap.add_argument("--out", required=True, help="a folder for ckpt.pt")
    ap.add_argument("--max-iters", type=int, default=2000)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--sample-tokens", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    batch_size, block_size = 12, 64
    learning_rate, min_lr, warmup_iters = 1e-3, 1e-4, 100

    # prepare.py: characters -> ids, 90% train, 10% val
    text = Path(args.data).read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(ids))
    data = {"train": ids[:n], "val": ids[n:]}

    torch.manual_seed(args.seed)

    def get_batch(split):
        d = data[split]
        ix = torch.randint(len(d) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(d[i:i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(d[i + 1:i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    config = dict(vocab_size=len(chars), context_length=block_size, n_layer=4, n_head=4, d_model=128,
                  dropout=0.0, bias=False)
    model = torch_gpt.GPT(config)
    optimizer = model.configure_optimizers(0.1, learning_rate, (0.9, 0.99))

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ("train", "val"):
            losses = torch.zeros(args.eval_iters)
            for k in range(args.eval_iters):
                _, loss = model(*get_batch(split))
                losses[k] = loss.item()
            out[split] = losses.mean().item()
        model.train()
        return out

    os.makedirs(args.out, exist_ok=True)
    val_loss = float("nan")
    for it in range(args.max_iters + 1):
        lr = get_lr(it, learning_rate, min_lr, warmup_iters, args.max_iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if it % args.eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss()
            val_loss = losses["val"]
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": it,
                        "config": config}, os.path.join(args.out, "ckpt.pt"))
        if it == args.max_iters:
            break
        x, y = get_batch("train")
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # nanoGPT logs the loss every step (--log_interval=1): one sync per step

    # sample.py's loop: crop to the context, the last position's logits, sample
    model.eval()
    idx = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        for _ in range(args.sample_tokens):
            logits, _ = model(idx[:, -block_size:])
            probs = torch.softmax(logits[:, -1, :], dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
    print("".join(chars[i] for i in idx[0].tolist()))
    print(f"val_loss {val_loss:.4f}")
    print(f"wall_s {time.perf_counter() - T0:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
