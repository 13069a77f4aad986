"""Quantization-aware training: finetune a trained model while it sees its weights quantized.

Round-to-nearest leaves each weight wherever rounding puts it; the network had no say. QAT
(Jacob et al. 2018) continues training with every block matrix replaced, in the forward pass,
by its quantized self, so the loss measures the model that will be stored:

    W̃ = fake_quantize(W, s(W), z(W))            the int grid of the format, s and z from W itself
    y = x W̃ᵀ + b                                 the forward pass sees W̃
    ∂L/∂W = ∂L/∂W̃ · 1[inside the grid]          straight-through (tinyllm/functional/fake_quantize.py)

The float weights W keep learning underneath; each step's scales and zero points are recomputed
from them (no gradient), exactly as ``tinyllm.quant.intq`` will compute them when the model is
finally quantized. So after ``convert_qat`` the stored model is the one training saw: its
quantized weights equal the fake-quantized ones bit for bit.

    prepare_qat(model, "int4", group_size=32)     Linears of the blocks -> FakeQuantLinear
    qat_finetune(model, tokens, steps=300)        AdamW on the usual next-token loss
    convert_qat(model)                            back to Linear (the trained float weights)
    quantize_model(model, "int4", group_size=32)  the stored model

Example:
    >>> prepare_qat(model, "int4", group_size=32)
    >>> losses = qat_finetune(model, train_tokens, steps=300, lr=3e-4)
    >>> quantize_model(convert_qat(model), "int4", group_size=32)
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import functional as F
from tinyllm.data import get_batch
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.optim import AdamW
from tinyllm.quant import intq
from tinyllm.quant.linear import block_linears


class FakeQuantLinear(Module):
    """A Linear whose forward uses fake_quantize(weight) in an integer format of tinyllm.quant.intq."""

    def __init__(self, linear: Linear, fmt: str, group_size: int | None = None):
        super().__init__()
        self.group = intq.check_int_format(fmt, linear.weight.shape, group_size)
        self.fmt, self.in_features, self.out_features = fmt, linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # the same Parameters: training moves them

    def grid(self):
        """(scale, zero point, q_min, q_max) of the current weights, shaped (out, groups, 1) to broadcast."""
        iw = intq.quantize_int(self.weight.data, self.fmt, self.group)
        lo, hi = intq.levels(self.fmt)
        zero = 0 if iw.zero is None else iw.zero[..., None].astype(np.float32)
        return iw.scale[..., None], zero, lo, hi

    def forward(self, x):
        out, n_in = self.weight.shape
        s, z, lo, hi = self.grid()
        w = F.fake_quantize(self.weight.reshape(out, n_in // self.group, self.group), s, z, lo, hi)
        return F.linear(x, w.reshape(out, n_in), self.bias)  # (out, groups, g) -> (out, in)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.fmt}, group={self.group}"


def prepare_qat(model, fmt: str = "int4", group_size: int | None = None):
    """Swap every Linear of the blocks for a FakeQuantLinear sharing its parameters, in place -> model."""
    for name, linear in block_linears(model):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, FakeQuantLinear(linear, fmt, group_size))
    return model


def convert_qat(model):
    """Swap every FakeQuantLinear back for a Linear with its trained weights, in place -> model."""
    for name, m in list(model.named_modules()):
        if isinstance(m, FakeQuantLinear):
            lin = Linear(m.in_features, m.out_features, bias=m.bias is not None)
            lin.weight, lin.bias = m.weight, m.bias
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, lin)
    return model


def qat_finetune(model, tokens: np.ndarray, steps: int = 300, lr: float = 3e-4, batch_size: int = 16,
                 seed: int = 0, log=None) -> list[float]:
    """AdamW on next-token loss over random windows of tokens, lr warmed up over 10% then cosine to lr/10
    -> the losses. The model trains whatever its layers are (QAT after prepare_qat)."""
    T = model.config.context_length
    rng = np.random.default_rng(seed)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=lr,
                betas=(0.9, 0.99))
    warm = max(1, steps // 10)
    losses = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (step + 1) / warm if step < warm else \
                lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
        x, y = get_batch(tokens, batch_size, T, rng)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        if log is not None and (step % 50 == 0 or step == steps - 1):
            log(f"  QAT step {step}: loss {losses[-1]:.4f}")
    model.eval()
    return losses
