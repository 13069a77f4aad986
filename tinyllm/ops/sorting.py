"""Sorting: sort, argsort, topk. The order is found without a gradient; the values are then a
``gather`` of the input at those indices, so their gradient flows back to where each came from.

    values, indices = x.topk(2)          # the two largest along the last dim
    values == x.gather(-1, indices)      # always; that is how the gradient is defined

MoE routing (top-k experts per token) and top-k / nucleus sampling are written with these.

    >>> x = tinyllm.tensor([[0.1, 0.7, 0.2]], requires_grad=True)
    >>> v, i = x.topk(2); i
    tensor([[1, 2]])
    >>> v.sum().backward(); x.grad                  # 1 where an element was picked
    tensor([[0., 1., 1.]])
"""

from __future__ import annotations

from collections import namedtuple

from tinyllm import backend
from tinyllm.ops.common import axis, raw
from tinyllm.ops.indexing import gather
from tinyllm.tensor import Tensor

SortResult = namedtuple("SortResult", ["values", "indices"])
TopKResult = namedtuple("TopKResult", ["values", "indices"])


def _order(data, dim, descending):
    """Indices that sort `data` along `dim`; always a stable sort, so ties keep their order."""
    key = -data if descending else data  # subtle: not flip(argsort(x)), which would reverse the order of ties
    return backend.of(data).argsort(key, axis=dim, kind="stable")


def argsort(x, dim=-1, descending=False, stable=False):
    """Indices that sort x along `dim` (no gradient). Always stable here (`stable` is accepted for torch's sake)."""
    if x.ndim == 0:
        return Tensor(backend.of(raw(x)).zeros((), dtype="int64"))
    return Tensor(_order(raw(x), axis(dim, x.ndim), descending).astype("int64"))


def sort(x, dim=-1, descending=False, stable=False):
    """(values, indices) of x sorted along `dim`; values carry the gradient (torch.sort)."""
    if x.ndim == 0:
        return SortResult(x, argsort(x))
    indices = argsort(x, dim, descending, stable)
    return SortResult(gather(x, dim, indices), indices)


def topk(x, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's argument name
    """(values, indices) of the k largest (or smallest) elements along `dim`, largest first (torch.topk)."""
    dim = axis(dim, x.ndim)
    n = x.shape[dim] if x.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for a dim of size {n}")
    if x.ndim == 0:
        return TopKResult(x, argsort(x))
    order = _order(raw(x), dim, descending=largest)
    indices = Tensor(order[(slice(None),) * dim + (slice(0, k),)].astype("int64"))
    return TopKResult(gather(x, dim, indices), indices)
