"""Embedding: token ids -> vectors, a lookup table that learns.

    y[i] = W[ids[i]]        W of shape (num_embeddings V, embedding_dim C)

It is a matrix product with one-hot rows, onehot(ids) @ W, done as a gather,
so the backward is the transposed product done as a scatter-add:

    grad_W[v] = Σ_{i : ids[i] = v} grad_out[i]

Repeated ids must *accumulate* (``W[ids] += g`` would keep only the last one),
hence ``backend.scatter_add`` (np.add.at / cupyx.scatter_add); on the host in
float32 a Numba loop does the same sum in the same order, 25x faster.
"""

from __future__ import annotations

import numba
import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor, raw
from tinyllm.functional.kernels import FASTMATH, contiguous

# ----------------------------------------------------------------------------- the host kernel of the backward


@numba.njit(fastmath=FASTMATH, cache=True)
def _embedding_backward(ids, g, out):
    # serial on purpose: two rows with the same id add into the same output row
    for i in range(ids.size):
        row = ids[i]
        for j in range(g.shape[1]):
            out[row, j] += g[i, j]


def embedding_backward(ids, g2, num_embeddings):
    """grad_w (V, C) with grad_w[v] = Σ_{i: ids[i] = v} g2[i] (backend.scatter_add, 25x faster)."""
    out = np.zeros((num_embeddings, g2.shape[1]), dtype=g2.dtype)
    _embedding_backward(contiguous(ids), contiguous(g2), out)
    return out


class Embedding(Function):
    """Rows of the weight picked by integer ids.

    Example: W = [[0, 0], [1, 1], [2, 2]], ids = [2, 0, 2] -> [[2, 2], [0, 0], [2, 2]];
    grad_out = ones((3, 2)) -> grad_W = [[1, 1], [0, 0], [2, 2]] (id 2 used twice).
    """

    @staticmethod
    def forward(ctx, ids, weight, padding_idx):
        ctx.save_for_backward(ids)
        ctx.weight_shape, ctx.padding_idx = weight.shape, padding_idx
        return backend.of(weight).take(weight, ids, axis=0)  # (*ids.shape, C)

    @staticmethod
    def backward(ctx, grad_out):
        # y[i] = W[ids[i]]:  ∂y[i]/∂W[v] = 1 if ids[i] == v  ->  grad_W[v] = Σ_{i: ids[i]=v} grad_out[i]
        (ids,) = ctx.saved
        V, C = ctx.weight_shape
        flat_ids = ids.reshape(-1)
        g2 = grad_out.reshape(-1, C)  # (*ids.shape, C) -> (n, C)
        if kernels.usable(g2):
            grad_w = embedding_backward(flat_ids, g2, V)
        else:
            grad_w = backend.of(g2).zeros((V, C), dtype=g2.dtype)
            backend.scatter_add(grad_w, flat_ids, g2)
        if ctx.padding_idx is not None:
            grad_w[ctx.padding_idx] = 0  # the padding row is a constant, as in torch
        return None, grad_w


def _check_ids(ids, V):
    """Every id in [0, V), else a ValueError naming the first bad one and where it sits.

    # subtle: checked on the host only. On a device, reading the answer back would stall
    # every step for a sync (CuPy, like PyTorch on CUDA, checks no index synchronously),
    # so ids are best validated on the host before a batch is moved to the device.
    """
    if backend.device_of(ids) != "cpu":
        return
    bad = (ids < 0) | (ids >= V)
    if bad.any():
        pos = int(bad.reshape(-1).argmax())
        value = int(ids.reshape(-1)[pos])
        where = tuple(int(i) for i in np.unravel_index(pos, ids.shape)) if ids.ndim > 1 else pos
        raise ValueError(f"expected token ids in [0, num_embeddings={V}), got {value} at position {where}")


def embedding(input, weight, padding_idx=None):
    """torch.nn.functional.embedding: weight[input], rows of weight (V, C) picked by integer ids.

    padding_idx: that row gets no gradient (it stays what it was, e.g. zeros).

    >>> W = tinyllm.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    >>> F.embedding(tinyllm.tensor([2, 0]), W)
    tensor([[2., 2.],
            [0., 0.]])
    """
    weight = as_tensor(weight, "embedding: weight")
    if weight.ndim != 2:
        raise ValueError("embedding: weight must be 2-D (num_embeddings, embedding_dim), "
                         f"got shape {tuple(weight.shape)}")
    V = weight.shape[0]
    ids = raw(input)
    if not backend.is_array(ids):
        ids = backend.asarray(ids, device=weight.device)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer token ids, got dtype {ids.dtype}")
    if backend.device_of(ids) != weight.device:
        raise RuntimeError(f"embedding: ids are on {backend.device_of(ids)!r} but weight is on {weight.device!r}; "
                           "move one with .to(device)")
    _check_ids(ids, V)
    if padding_idx is not None:
        if not -V <= padding_idx < V:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings={V}, got {padding_idx}")
        padding_idx %= V
    return Embedding.apply(ids, weight, padding_idx=padding_idx)
