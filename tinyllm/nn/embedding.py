"""Embedding: a lookup table from token ids to vectors.

Row i of the weight (num_embeddings, embedding_dim) is the vector of token i;
the forward pass is indexing, weight[ids], and the backward pass adds each
position's gradient into the row it read (a scatter-add: a token that appears
twice gets both gradients). It is the same as multiplying a one-hot matrix by
the weight, without building the one-hot matrix.

Initialization (PyTorch's default): every entry ~ N(0, 1).

Example:
    >>> wte = Embedding(10, 3)
    >>> wte(tinyllm.tensor([[1, 2, 1]])).shape   # (B, T) ids -> (B, T, C)
    (1, 3, 3)
    >>> wte
    Embedding(10, 3)
"""

from __future__ import annotations

from tinyllm import functional as F
from tinyllm.creation import empty
from tinyllm.nn import init
from tinyllm.nn.module import Module, Parameter
from tinyllm.tensor import no_grad


class Embedding(Module):
    """ids (*) of int64 -> vectors (*, embedding_dim); ``weight`` (num_embeddings, embedding_dim) ~ N(0, 1).

    ``padding_idx`` (optional, as torch): that row starts at zero and gets no gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx must be within num_embeddings={num_embeddings}, got {padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
