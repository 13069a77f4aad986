"""Products: matmul (with NumPy/PyTorch batch broadcasting), bmm, outer, einsum.

For C = A @ B the chain rule gives the two matrix products

    dL/dA = dL/dC @ Bᵀ        dL/dB = Aᵀ @ dL/dC

(batch dims that were broadcast are summed back by the engine). einsum
generalises it: the gradient of one operand is the einsum of the output's
gradient with the other operand, written to the operand's own subscripts.

    >>> q, k = tinyllm.randn(2, 4, 8), tinyllm.randn(2, 5, 8)
    >>> tinyllm.einsum("bqd,bkd->bqk", q, k).shape     # attention scores, = q @ kᵀ
    (2, 4, 5)
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.ops.common import tensor_arg


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_out):
        # C = A @ B:  dL/dA = dL/dC @ Bᵀ,  dL/dB = Aᵀ @ dL/dC  (batch dims summed by unbroadcast)
        a, b = ctx.saved
        g = grad_out
        a2 = a[None, :] if a.ndim == 1 else a  # (K,) -> (1, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (K,) -> (K, 1)
        if b.ndim == 1:  # subtle: this one first, so that (K,) @ (K,) -> () works: () -> (1,) -> (1, 1)
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        n = ctx.needs_input_grad
        grad_a = grad_b = None
        if n[0]:
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:  # (..., 1, K) -> (K,): the batch copies of a summed (reshape(-1, K) fails for K = 0)
                grad_a = grad_a.sum(axis=tuple(range(grad_a.ndim - 1))).reshape(a.shape)
        if n[1]:
            grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:  # (..., K, 1) -> (K,)
                grad_b = grad_b.sum(axis=tuple(range(grad_b.ndim - 2)) + (grad_b.ndim - 1,)).reshape(b.shape)
        return grad_a, grad_b


def matmul(a, b):
    """Matrix product with NumPy/PyTorch broadcasting of batch dimensions."""
    return MatMul.apply(tensor_arg(a), tensor_arg(b))


def bmm(a, b):
    """Batched matrix product of (B, n, k) and (B, k, m) -> (B, n, m); no broadcasting (torch.bmm)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"bmm expects (B, n, k) and (B, k, m), got {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a, b)


def outer(a, b):
    """a_i b_j for 1-D a (n,) and b (m,) -> (n, m)."""
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"outer expects two 1-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return matmul(a.reshape(-1, 1), b.reshape(1, -1))  # (n, 1) @ (1, m) -> (n, m)


# ----------------------------------------------------------------------------- einsum


def _parse(equation: str, shapes) -> tuple:
    """'bqd,bkd->bqk' -> (['bqd', 'bkd'], 'bqk'); the implicit form ('ij,jk') gets NumPy's output."""
    eq = equation.replace(" ", "")
    if "." in eq:
        raise ValueError(f"einsum: ellipsis ('...') is not supported; name every dimension in {equation!r}")
    lhs, arrow, out = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(shapes) or len(subs) not in (1, 2):
        raise ValueError(f"einsum: {equation!r} needs one or two operands, and one subscript per operand; "
                         f"got {len(subs)} subscripts for {len(shapes)} operands")
    for s, shape in zip(subs, shapes):
        if not s.isalpha() or len(s) != len(shape):
            raise ValueError(f"einsum: subscript {s!r} does not match an operand of shape {tuple(shape)}")
        if len(set(s)) != len(s):
            raise ValueError(f"einsum: repeated index in {s!r} (a diagonal) is not supported")
    letters = "".join(subs)
    if not arrow:  # NumPy's implicit output: the letters that appear once, in alphabetical order
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(out)) != len(out) or any(c not in letters for c in out):
        raise ValueError(f"einsum: output {out!r} must name distinct indices of the inputs")
    return subs, out


def _grad_of(xp, g, out, other, other_sub, sub, shape):
    """dL/d(operand) = einsum of dL/d(out) with the other operand, onto the operand's subscripts.

    An index only this operand has (summed away in the forward) gets the gradient broadcast along it.
    """
    kept = "".join(c for c in sub if c in out or c in other_sub)
    if other is None:
        r = xp.einsum(f"{out}->{kept}", g)
    else:
        r = xp.einsum(f"{out},{other_sub}->{kept}", g, other)
    r = r.reshape([shape[i] if c in kept else 1 for i, c in enumerate(sub)])
    return xp.broadcast_to(r, shape)


class Einsum(Function):
    @staticmethod
    def forward(ctx, *arrays, subs, out):
        ctx.save_for_backward(*arrays)
        ctx.subs, ctx.out = subs, out
        return backend.of(*arrays).einsum(f"{','.join(subs)}->{out}", *arrays)

    @staticmethod
    def backward(ctx, grad_out):
        # y = Σ_(summed indices) a·b, linear in each operand: dL/da = einsum(dL/dy, b -> a's indices),
        # dL/db = einsum(dL/dy, a -> b's indices)
        xp = backend.of(grad_out)
        arrays, subs, out = ctx.saved, ctx.subs, ctx.out
        if len(arrays) == 1:
            return _grad_of(xp, grad_out, out, None, "", subs[0], arrays[0].shape)
        (a, b), (sa, sb) = arrays, subs
        n = ctx.needs_input_grad
        grad_a = _grad_of(xp, grad_out, out, b, sb, sa, a.shape) if n[0] else None
        grad_b = _grad_of(xp, grad_out, out, a, sa, sb, b.shape) if n[1] else None
        return grad_a, grad_b


def einsum(equation: str, *operands):
    """torch.einsum for one or two operands, explicit indices (no '...', no repeated index in one operand).

    einsum("ij,jk->ik", a, b) == a @ b;  einsum("ij->j", a) == a.sum(0);  einsum("i,j->ij", u, v) == outer(u, v)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [tensor_arg(x) for x in operands]
    subs, out = _parse(equation, [x.shape for x in operands])
    for s, x in zip(subs, operands):
        for c, n in zip(s, x.shape):
            for s2, x2 in zip(subs, operands):
                if c in s2 and x2.shape[s2.index(c)] != n:
                    raise ValueError(f"einsum: index {c!r} has size {n} in one operand and "
                                     f"{x2.shape[s2.index(c)]} in another")
    return Einsum.apply(*operands, subs=subs, out=out)
