"""A family of GPTs of growing size, made by one rule, and the compute each costs per token.

Kaplan et al. (2020) found that loss depends on the non-embedding parameter count N
far more than on the shape, as long as depth and width grow together. So the sizes
here keep the aspect ratio d_model / n_layer between 48 and 64 (head size 32,
d_ff = 4·d_model, no biases), from 0.05M to 19M non-embedding parameters:

    name    n_layer  d_model      N = 12·L·d²       (per layer: attention 4d², MLP 8d²)
    xs         1        64          49,152
    s          2        96         221,184
    m          3       160         921,600
    l          4       192       1,769,472
    xl         5       256       3,932,160
    xxl        6       320       7,372,800
    xxxl       8       448      19,267,584

One token through the model costs, forward and backward (Kaplan et al. 2020, table 1):

    FLOPs per token = 6·N + 6·L·T·d        2N multiply-adds per weight forward, twice that backward;
                                           attention's scores and weighted sum over T positions

Example:
    >>> non_embedding_params(4, 192)
    1769472
    >>> flops_per_token(4, 192, 128)       # 6 · 1,769,472 + 6 · 4 · 128 · 192
    11206656
"""

from __future__ import annotations

SIZES = {
    "xs": (1, 64),
    "s": (2, 96),
    "m": (3, 160),
    "l": (4, 192),
    "xl": (5, 256),
    "xxl": (6, 320),
    "xxxl": (8, 448),
}
HEAD_SIZE = 32


def non_embedding_params(n_layer: int, d_model: int) -> int:
    """12·L·d²: the weight matrices of the blocks (norm gains left out, as in Kaplan et al.)."""
    return 12 * n_layer * d_model * d_model


def flops_per_token(n_layer: int, d_model: int, context_length: int) -> int:
    """Training FLOPs per token, forward + backward: 6N + 6·L·T·d."""
    return 6 * non_embedding_params(n_layer, d_model) + 6 * n_layer * context_length * d_model


def size_fields(name: str, context_length: int) -> dict:
    """The GPTConfig fields (all but vocab_size) of the family member `name`."""
    if name not in SIZES:
        raise ValueError(f"unknown size {name!r}; choose from {', '.join(SIZES)} (tinyllm/scaling/family.py)")
    n_layer, d_model = SIZES[name]
    return dict(n_layer=n_layer, d_model=d_model, n_head=d_model // HEAD_SIZE, context_length=context_length,
                d_ff=4 * d_model, dropout=0.0, bias=False)


def learning_rate(n: int) -> float:
    """Kaplan et al. (2020, eq. D.1): the learning rate that worked at N non-embedding parameters.

    lr(N) ≈ 0.003239 - 0.0001395 · ln N: 1.7e-3 at 0.05M, 8.9e-4 at 19M.
    """
    import math

    return 0.003239 - 0.0001395 * math.log(n)
