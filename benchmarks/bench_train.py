"""Benchmark: nanoGPT's shakespeare-char CPU recipe, trained by tinyllm and by PyTorch side by side.

The recipe (nanoGPT README, "I only have a macbook"; preset ``shakespeare-char-cpu``):
4 layers, 4 heads, d_model 128, context 64, batch 12, 2000 iterations, AdamW
(betas 0.9/0.99, weight decay 0.1 on matrices), lr 1e-3 with 100 warmup steps and
cosine decay to 1e-4, grad clip 1.0, dropout 0, no biases, tinyshakespeare at
character level. nanoGPT's published result for it: val loss 1.88.

Both frameworks start from the same weights (tinyllm's GPT-2 init, copied into the
PyTorch reference model ``tests/torch_gpt.py``), see the same batches in the same
order, use the same learning-rate schedule and the same number of threads. They
train in interleaved chunks of --chunk iterations (tinyllm, torch, torch, tinyllm,
...), so the machine's drift hits both alike; each chunk's per-iteration time is
its median, and the ratio is taken chunk pair by chunk pair. Evaluation (mean loss
over --eval-iters batches of each split, the same batches for both) runs every
--eval-interval iterations and is not timed.

    python benchmarks/bench_train.py                  # the full recipe (about 3 minutes on 2 cores)
    python benchmarks/bench_train.py --quick          # 60 iterations, a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # torch_gpt, the PyTorch reference


def lr_at(step, cfg):
    from tinyllm.optim.schedule import cosine_with_warmup

    return cosine_with_warmup(step, cfg.learning_rate, cfg.warmup_iters, cfg.decay_iters, cfg.min_lr)


class TinyllmRun:
    def __init__(self, model_config, cfg):
        import tinyllm
        from tinyllm.nn.gpt import GPT
        from tinyllm.train import make_optimizer

        tinyllm.manual_seed(cfg.seed)
        self.tinyllm = tinyllm
        self.model = GPT(model_config)
        self.opt, _ = make_optimizer(self.model, cfg)
        self.cfg = cfg

    def state(self):
        return {k: self.tinyllm.to_numpy(v.data).copy() for k, v in self.model.state_dict().items()}

    def step(self, x, y, lr):
        from tinyllm.optim import clip_grad_norm_

        for g in self.opt.param_groups:
            g["lr"] = lr
        _, loss = self.model(self.tinyllm.tensor(x), self.tinyllm.tensor(y))
        loss.backward()
        clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad()
        return loss

    def eval_loss(self, batches):
        self.model.eval()
        with self.tinyllm.no_grad():
            out = float(np.mean([self.model(self.tinyllm.tensor(x), self.tinyllm.tensor(y))[1].item()
                                 for x, y in batches]))
        self.model.train()
        return out


class TorchRun:
    def __init__(self, model_config, cfg, state):
        import torch
        import torch_gpt

        self.torch = torch
        self.model = torch_gpt.GPT.from_arrays(model_config, state)
        self.opt = self.model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
        self.cfg = cfg

    def step(self, x, y, lr):
        torch = self.torch
        for g in self.opt.param_groups:
            g["lr"] = lr
        _, loss = self.model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss

    def eval_loss(self, batches):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            out = float(np.mean([self.model(torch.from_numpy(x), torch.from_numpy(y))[1].item() for x, y in batches]))
        self.model.train()
        return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="nanoGPT's shakespeare-char CPU recipe: tinyllm vs PyTorch")
    ap.add_argument("--max-iters", type=int, default=None, help="(default: the recipe's 2000)")
    ap.add_argument("--quick", action="store_true", help="60 iterations, eval every 30: a smoke test")
    ap.add_argument("--chunk", type=int, default=25, help="iterations per framework turn (default 25)")
    ap.add_argument("--eval-iters", type=int, default=None, help="batches per split per evaluation (default 20)")
    ap.add_argument("--final-eval-iters", type=int, default=200,
                    help="batches for the final val loss, for a steadier figure (default 200)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: PyTorch's default)")
    ap.add_argument("--settle", type=float, default=0.3, help="idle seconds before each turn")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    import tinyllm
    from tinyllm.data import CharTokenizer, encode_corpus, get_batch, load_text, split_tokens
    from tinyllm.nn.config import GPTConfig
    from tinyllm.runtime import keep_host_memory
    from tinyllm.train import preset

    keep_host_memory()  # as `tinyllm train` does: freed memory is reused between steps
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        print("(threadpoolctl not installed: NumPy's BLAS uses its default thread count)")

    overrides = {}
    if args.quick:
        overrides.update(max_iters=60, eval_interval=30, eval_iters=4)
    if args.max_iters:
        overrides["max_iters"] = args.max_iters
    if args.eval_iters:
        overrides["eval_iters"] = args.eval_iters
    cfg, model_fields = preset("shakespeare-char-cpu", **overrides)
    final_eval_iters = 8 if args.quick else args.final_eval_iters

    text = load_text(cfg.data)
    tok = CharTokenizer.from_text(text)
    train_tokens, val_tokens = split_tokens(encode_corpus(text, tok), cfg.val_fraction)
    model_config = GPTConfig(vocab_size=tok.vocab_size, **model_fields)
    T = model_config.context_length

    ours = TinyllmRun(model_config, cfg)
    theirs = TorchRun(model_config, cfg, ours.state())
    runs = {"tinyllm": ours, "torch": theirs}

    def eval_batches(step, n):
        rng = np.random.default_rng([cfg.seed, 1, step])
        return {split: [get_batch(tok_arr, cfg.batch_size, T, rng) for _ in range(n)]
                for split, tok_arr in (("train", train_tokens), ("val", val_tokens))}

    data_rng = np.random.default_rng(cfg.seed)
    print(f"nanoGPT shakespeare-char CPU recipe: {cfg.max_iters} iters, batch {cfg.batch_size}, context {T}, "
          f"{model_config.n_layer} layers, d_model {model_config.d_model}, {ours.model.num_parameters() / 1e6:.2f}M "
          f"params; threads={threads}; torch {torch.__version__}, tinyllm {tinyllm.__version__}")
    print(f"{'step':>5} {'tinyllm train':>14} {'val':>7} {'torch train':>12} {'val':>7}")
    evals, times = [], {"tinyllm": [], "torch": []}
    step = 0
    t_start = time.perf_counter()
    while True:
        if step % cfg.eval_interval == 0 or step == cfg.max_iters:
            batches = eval_batches(step, cfg.eval_iters)
            row = {"step": step}
            for name, run in runs.items():
                row[name] = {split: run.eval_loss(b) for split, b in batches.items()}
            evals.append(row)
            print(f"{step:>5} {row['tinyllm']['train']:>14.4f} {row['tinyllm']['val']:>7.4f} "
                  f"{row['torch']['train']:>12.4f} {row['torch']['val']:>7.4f}", flush=True)
        if step == cfg.max_iters:
            break
        n = min(args.chunk, cfg.max_iters - step)
        chunk = [get_batch(train_tokens, cfg.batch_size, T, data_rng) for _ in range(n)]
        lrs = [lr_at(step + i, cfg) for i in range(n)]
        order = list(runs.items()) if (step // args.chunk) % 2 == 0 else list(runs.items())[::-1]
        for name, run in order:
            time.sleep(args.settle)  # let the other framework's worker threads stop spinning
            per_iter = []
            for (x, y), lr in zip(chunk, lrs):
                t0 = time.perf_counter()
                loss = run.step(x, y, lr)
                loss.item()  # the step is done when its loss is known
                per_iter.append(time.perf_counter() - t0)
            times[name].append(statistics.median(per_iter))
        step += n

    final = eval_batches(10**6, final_eval_iters)["val"]
    final_val = {name: run.eval_loss(final) for name, run in runs.items()}
    paired = sorted(a / b for a, b in zip(times["tinyllm"], times["torch"]))
    ratio = statistics.median(paired)
    q1, q3 = paired[len(paired) // 4], paired[(3 * len(paired)) // 4]
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    print(f"\nval loss at {cfg.max_iters} iters ({cfg.eval_iters} batches): tinyllm {evals[-1]['tinyllm']['val']:.4f}, "
          f"torch {evals[-1]['torch']['val']:.4f}   (nanoGPT's published figure: 1.88)")
    print(f"val loss over {final_eval_iters} batches: tinyllm {final_val['tinyllm']:.4f}, "
          f"torch {final_val['torch']:.4f}")
    print(f"ms per iteration (median): tinyllm {ms['tinyllm']:.2f}, torch {ms['torch']:.2f}; "
          f"ratio tinyllm/torch {ratio:.2f}x (quartiles {q1:.2f}-{q3:.2f}, {len(paired)} chunk pairs)")
    print(f"wall time {time.perf_counter() - t_start:.0f} s")
    result = {"config": cfg.to_dict(), "model": model_config.to_dict(), "threads": threads, "evals": evals,
              "final_val": final_val, "final_eval_iters": final_eval_iters, "ms_per_iter": ms,
              "ratio": ratio, "ratio_q1": q1, "ratio_q3": q3}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if not all(math.isfinite(v) for v in final_val.values()):
        raise SystemExit("a loss is not finite")
    return result


if __name__ == "__main__":
    main()
