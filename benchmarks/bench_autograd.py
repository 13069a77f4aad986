"""Benchmark: forward + backward of one GPT block, tinyllm vs PyTorch eager.

The block (pre-norm, as GPT-2/nanoGPT):

    h   = x + proj(attention(split(qkv(ln1(x)))))      fused QKV, causal softmax attention
    out = h + fc2(gelu(fc1(ln2(h))))                    GELU MLP, d_ff = 4C

Both frameworks get the same float32 weights, the same input and the same
upstream gradient, run with the same number of threads, and are timed in
interleaved rounds (tinyllm, torch, torch, tinyllm, ...), so a machine that
speeds up or slows down affects both alike; before each timed step the process
idles for --settle seconds and runs one untimed step of the same framework, so
neither is timed while the other's thread pool is still spinning. Printed: the
median time of each, and the median (and quartiles) of the per-round ratio
tinyllm / PyTorch; below 1.0 means tinyllm is faster.

    python benchmarks/bench_autograd.py                       # both shapes: (12, 64, 128), nanoGPT's CPU recipe,
                                                              # and (16, 256, 384), the context and width of its
                                                              # shakespeare-char GPU model at batch 16
    python benchmarks/bench_autograd.py --shapes 12,64,128 --repeats 50
    python benchmarks/bench_autograd.py --device cuda         # CuPy vs torch CUDA, on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def make_weights(C: int, seed: int = 0) -> dict:
    """GPT-2-style random float32 weights (host arrays)."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (0.02 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    return {
        "ln1.weight": np.ones(C, np.float32), "ln1.bias": np.zeros(C, np.float32),
        "attn.qkv.weight": w(3 * C, C), "attn.qkv.bias": np.zeros(3 * C, np.float32),
        "attn.proj.weight": w(C, C), "attn.proj.bias": np.zeros(C, np.float32),
        "ln2.weight": np.ones(C, np.float32), "ln2.bias": np.zeros(C, np.float32),
        "mlp.fc1.weight": w(4 * C, C), "mlp.fc1.bias": np.zeros(4 * C, np.float32),
        "mlp.fc2.weight": w(C, 4 * C), "mlp.fc2.bias": np.zeros(C, np.float32),
    }


def block(F, p: dict, x, n_head: int):
    """One GPT block written once for both frameworks (F is tinyllm.functional or torch's)."""
    B, T, C = x.shape
    hs = C // n_head
    a = F.layer_norm(x, (C,), p["ln1.weight"], p["ln1.bias"])
    qkv = F.linear(a, p["attn.qkv.weight"], p["attn.qkv.bias"])  # (B,T,C) -> (B,T,3C)
    q, k, v = qkv.split(C, dim=2)  # 3 x (B,T,C)
    q = q.reshape(B, T, n_head, hs).transpose(1, 2)  # (B,T,C) -> (B,nh,T,hs)
    k = k.reshape(B, T, n_head, hs).transpose(1, 2)
    v = v.reshape(B, T, n_head, hs).transpose(1, 2)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B,nh,T,hs)
    y = y.transpose(1, 2).reshape(B, T, C)  # (B,nh,T,hs) -> (B,T,C)
    h = x + F.linear(y, p["attn.proj.weight"], p["attn.proj.bias"])
    m = F.gelu(F.linear(F.layer_norm(h, (C,), p["ln2.weight"], p["ln2.bias"]), p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
    return h + F.linear(m, p["mlp.fc2.weight"], p["mlp.fc2.bias"])


def setup_tinyllm(weights, x, grad, n_head, device):
    import tinyllm
    import tinyllm.functional as F

    with tinyllm.use_device(device):
        p = {k: tinyllm.tensor(v, requires_grad=True) for k, v in weights.items()}
        xt = tinyllm.tensor(x, requires_grad=True)
        gt = tinyllm.tensor(grad)
    sync = (lambda: __import__("cupy").cuda.Device().synchronize()) if device == "cuda" else (lambda: None)

    def step():
        for t in (*p.values(), xt):
            t.grad = None
        out = block(F, p, xt, n_head)
        out.backward(gt)
        sync()
        return out

    def result():
        out = step()
        return tinyllm.to_numpy(out.data), tinyllm.to_numpy(xt.grad.data)

    return step, result


def setup_torch(weights, x, grad, n_head, device):
    import torch
    import torch.nn.functional as F

    dev = "cuda" if device == "cuda" else "cpu"
    p = {k: torch.tensor(v, device=dev, requires_grad=True) for k, v in weights.items()}
    xt = torch.tensor(x, device=dev, requires_grad=True)
    gt = torch.tensor(grad, device=dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def step():
        for t in (*p.values(), xt):
            t.grad = None
        out = block(F, p, xt, n_head)
        out.backward(gt)
        sync()
        return out

    def result():
        out = step()
        return out.detach().cpu().numpy(), xt.grad.cpu().numpy()

    return step, result


def bench_shape(B, T, C, n_head, repeats, warmup, device, seed=0, settle=0.3) -> dict:
    rng = np.random.default_rng(seed + 1)
    weights = make_weights(C, seed)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    grad = rng.standard_normal((B, T, C)).astype(np.float32)
    tl_step, tl_result = setup_tinyllm(weights, x, grad, n_head, device)
    pt_step, pt_result = setup_torch(weights, x, grad, n_head, device)

    # Same computation? Compare the outputs and the input gradients once.
    (tl_out, tl_gx), (pt_out, pt_gx) = tl_result(), pt_result()
    max_diff = float(max(np.abs(tl_out - pt_out).max(), np.abs(tl_gx - pt_gx).max()))

    for _ in range(warmup):
        tl_step()
        pt_step()
    times = {"tinyllm": [], "torch": []}
    for r in range(repeats):
        order = [("tinyllm", tl_step), ("torch", pt_step)]
        if r % 2:
            order.reverse()
        for name, step in order:
            # subtle: settle, then one untimed step. Both frameworks keep worker threads spinning
            # for a while after their last call (OpenBLAS ~2^28 cycles, OpenMP's block time); in one
            # process those would steal cores from the other framework, a cost that a program
            # using one framework never pays.
            time.sleep(settle)
            step()
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    tl_ms = 1e3 * statistics.median(times["tinyllm"])
    pt_ms = 1e3 * statistics.median(times["torch"])
    # the ratio within each round (both timed seconds apart) is robust to the machine's drift
    paired = sorted(a / b for a, b in zip(times["tinyllm"], times["torch"]))
    q1, q3 = paired[len(paired) // 4], paired[(3 * len(paired)) // 4]
    return {"B": B, "T": T, "C": C, "n_head": n_head, "tinyllm_ms": tl_ms, "torch_ms": pt_ms,
            "ratio": statistics.median(paired), "ratio_q1": q1, "ratio_q3": q3,
            "max_abs_diff": max_diff, "repeats": repeats}


def main(argv=None):
    ap = argparse.ArgumentParser(description="GPT block forward+backward: tinyllm vs PyTorch eager")
    ap.add_argument("--shapes", default="12,64,128;16,256,384", help="B,T,C;B,T,C;...")
    ap.add_argument("--head-size", type=int, default=64, help="n_head = C // head_size (default 64)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: PyTorch's default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of idle before each framework's turn, so the other's worker threads stop spinning")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--no-keep-memory", action="store_true",
                    help="leave glibc's malloc at its defaults (tinyllm's training commands call "
                         "tinyllm.runtime.keep_host_memory(); it applies to both frameworks in this process)")
    args = ap.parse_args(argv)
    if not args.no_keep_memory:
        from tinyllm.runtime import keep_host_memory

        keep_host_memory()

    import torch

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)  # NumPy's BLAS gets the same number of threads
    except ImportError:
        print("(threadpoolctl not installed: NumPy's BLAS uses its default thread count)")

    print(f"GPT block forward+backward, float32, device={args.device}, threads={threads}, "
          f"median of {args.repeats} interleaved runs, keep_host_memory={not args.no_keep_memory}; "
          f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"{'B':>3} {'T':>4} {'C':>4} {'nh':>3} {'tinyllm ms':>11} {'torch ms':>9} {'ratio':>6} "
          f"{'(q1-q3)':>11} {'max|diff|':>10}")
    results = []
    for spec in args.shapes.split(";"):
        B, T, C = (int(v) for v in spec.split(","))
        r = bench_shape(B, T, C, max(1, C // args.head_size), args.repeats, args.warmup, args.device,
                        settle=args.settle)
        results.append(r)
        print(f"{B:>3} {T:>4} {C:>4} {r['n_head']:>3} {r['tinyllm_ms']:>11.2f} {r['torch_ms']:>9.2f} "
              f"{r['ratio']:>5.2f}x {r['ratio_q1']:>5.2f}-{r['ratio_q3']:<5.2f} {r['max_abs_diff']:>10.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": threads, "device": args.device, "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
