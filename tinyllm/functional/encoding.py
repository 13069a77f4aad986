"""One-hot encoding: a class id as a vector with a single 1.

    one_hot(t, C)[..., c] = 1 if t[...] == c else 0        shape t.shape + (C,), dtype int64

The bridge between class ids and everything that wants a distribution over
classes: a one-hot row is the target distribution cross-entropy compares
against, and one_hot(t, C) @ W is exactly the embedding lookup W[t] (which is
why F.embedding indexes instead: same answer, no (N, C) matrix).

    >>> F.one_hot(tinyllm.tensor([0, 2, 1]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1],
            [0, 1, 0]])
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.functional._util import as_tensor
from tinyllm.tensor import Tensor

__all__ = ["one_hot"]


def one_hot(tensor, num_classes=-1):
    """torch.nn.functional.one_hot: int64 of shape tensor.shape + (num_classes,), 1 at each id, 0 elsewhere.

    num_classes=-1 takes max(tensor) + 1 (on a GPU that reads the maximum back to the host:
    pass num_classes to avoid the sync). The result carries no gradient.

    >>> F.one_hot(tinyllm.tensor([1, 3]), num_classes=4)
    tensor([[0, 1, 0, 0],
            [0, 0, 0, 1]])
    """
    t = as_tensor(tensor, "one_hot: tensor")
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: tensor must hold integer class ids, got dtype {t.dtype}; use tensor.long()")
    ids = t.data
    if num_classes == -1:
        if ids.size == 0:
            raise ValueError("one_hot: can not infer the number of classes from an empty tensor; pass num_classes")
        num_classes = int(backend.to_numpy(ids.max())) + 1  # an explicit read back to the host, as torch's
    if num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be -1 (infer) or >= 0, got {num_classes}")
    # subtle: checked on the host only; on a device the answer would cost a sync (see cross_entropy)
    if backend.device_of(ids) == "cpu" and ids.size:
        if ids.min() < 0:
            raise ValueError(f"one_hot: class values must be non-negative, got {int(ids.min())}")
        if ids.max() >= num_classes:
            raise ValueError(f"one_hot: class values must be smaller than num_classes={num_classes}, "
                             f"got {int(ids.max())}; pass a larger num_classes (or -1 to infer it)")
    xp = backend.of(ids)
    return Tensor((ids[..., None] == xp.arange(num_classes)).astype(xp.int64))  # (..., 1) == (C,) -> (..., C)
