"""Where a training step's time and memory go, per size: MFU and the memory split.

Time. A step of B·T tokens costs flops_per_token · B·T FLOPs (family.py); divided by
the step's wall time that is the achieved FLOP/s, and against the machine's measured
matrix-product peak (`matmul_peak`: float32 products of 1024 x 1024 matrices through
NumPy's BLAS) the model FLOP utilization, MFU (Chowdhery et al. 2022).

Memory (`memory_split`, host bytes through tracemalloc, which sees NumPy's buffers):

    parameters     4·P        the weights (float32)
    gradients      4·P        one per weight, after backward
    optimizer      8·P        AdamW's two moments
    activations    what forward keeps for backward: measured as the bytes allocated by
                   forward and still held when it returns
    workspace      the rest of the step's peak: temporaries of backward and the update

Activations are compared with a count of what this GPT's forward saves, per block
(B·T rows; d = d_model, h heads, float32):

    ln_1 in, qkv out (3d), attention weights (h·T) and output (d), c_proj in (d),
    residual, ln_2 in, c_fc out (4d), GELU out (4d), c_proj in               ≈ (16·d + h·T) floats per row

plus the embeddings and the logits (2·V per row: the logits and their softmax).
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np


def matmul_peak(seconds: float = 1.0, n: int = 1024) -> float:
    """FLOP/s of float32 n x n matrix products through NumPy's BLAS, best of repeated runs."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b  # warm the BLAS threads
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def activation_count(config, batch_size: int) -> int:
    """Bytes this GPT's forward keeps for backward, by the count in the module docstring."""
    B, T, d = batch_size, config.context_length, config.d_model
    per_block = 16 * d + config.n_head * T
    return 4 * B * T * (config.n_layer * per_block + 2 * d + 2 * config.vocab_size)


def memory_split(config, batch_size: int, seed: int = 0) -> dict:
    """Bytes of one training step of a fresh GPT of `config` (host arrays), split as the module docstring says."""
    import tinyllm
    from tinyllm.nn.gpt import GPT
    from tinyllm.optim import AdamW

    tinyllm.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, config.vocab_size, (batch_size, config.context_length))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model = GPT(config)
        opt = AdamW(model.parameters(), lr=1e-3)
        params = tracemalloc.get_traced_memory()[0] - base
        for _ in range(2):  # the second step has the moments and the gradients' buffers in place
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            _, loss = model(tinyllm.tensor(x), tinyllm.tensor(x))
            activations = tracemalloc.get_traced_memory()[0] - before
            loss.backward()
            opt.step()
            peak = tracemalloc.get_traced_memory()[1]
            opt.zero_grad()
            del loss
        n = model.num_parameters()
    finally:
        tracemalloc.stop()
    gradients, optimizer = 4 * n, 8 * n
    return dict(parameters=params, gradients=gradients, optimizer=optimizer, activations=activations,
                workspace=max(0, peak - base - params - gradients - optimizer - activations), peak=peak - base,
                activations_counted=activation_count(config, batch_size), n_parameters=n)
