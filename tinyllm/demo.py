"""The autograd demo behind `tinyllm demo`: a small MLP learns to separate three spirals.

It exercises the whole foundation in one screen: tensors on a device, nn modules,
a fused cross-entropy, backward, AdamW with a warmup + cosine schedule, gradient
clipping, and a finite-difference check of one gradient.

    points (N, 2) -> Linear(2, 64) -> GELU -> Linear(64, 64) -> GELU -> Linear(64, 3) -> logits
    loss = cross_entropy(logits, labels)
"""

from __future__ import annotations

import math

import numpy as np

import tinyllm
import tinyllm.functional as F
from tinyllm import backend, nn, optim


def spirals(n_per_class: int = 100, n_classes: int = 3, seed: int = 0):
    """Three interleaved spirals in the plane (host NumPy arrays): x (N, 2) float32, y (N,) int64."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = c * 2 * math.pi / n_classes + 3.0 * r + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


class MLP(nn.Module):
    def __init__(self, d_in: int = 2, d_hidden: int = 64, d_out: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.head = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        x = F.gelu(self.fc1(x))  # (N, 2) -> (N, H)
        x = F.gelu(self.fc2(x))  # (N, H) -> (N, H)
        return self.head(x)  # (N, H) -> (N, 3)


def run_demo(steps: int = 300, device: str | None = None, seed: int = 0, log=print) -> dict:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = device or backend.get_device()
    tinyllm.manual_seed(seed)
    with tinyllm.use_device(device):
        x_host, y_host = spirals(seed=seed)
        x, y = tinyllm.tensor(x_host), tinyllm.tensor(y_host)
        model = MLP()
        opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
        sched = optim.WarmupCosine(opt, warmup_steps=steps // 10, max_steps=steps, min_lr_ratio=0.1)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"tinyllm demo: {n_params} parameters, {len(y_host)} points, device={device!r}")
        first = None
        for step in range(1, steps + 1):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            first = loss.item() if first is None else first
            if step == 1 or step % max(1, steps // 6) == 0 or step == steps:
                log(f"  step {step:4d}  loss {loss.item():.4f}  lr {opt.param_groups[0]['lr']:.5f}")
        with tinyllm.no_grad():
            pred = tinyllm.to_numpy(model(x).data).argmax(axis=1)
        acc = float((pred == y_host).mean())
        log(f"accuracy on the spirals: {acc:.1%} (loss {first:.3f} -> {loss.item():.3f})")

        # Check one gradient against central differences in float64.
        model.double()
        xd = x.double()
        w = model.fc1.weight
        model.zero_grad()
        F.cross_entropy(model(xd), y).backward()
        analytic = tinyllm.to_numpy(w.grad.data)[0, 0]
        eps = 1e-6
        with tinyllm.no_grad():
            w.data[0, 0] += eps
            up = F.cross_entropy(model(xd), y).item()
            w.data[0, 0] -= 2 * eps
            down = F.cross_entropy(model(xd), y).item()
            w.data[0, 0] += eps
        numeric = (up - down) / (2 * eps)
        log(f"gradient check dL/dW[0,0]: backward {analytic:+.8f}, finite difference {numeric:+.8f}")
    return {"first_loss": first, "final_loss": loss.item(), "accuracy": acc,
            "grad_analytic": float(analytic), "grad_numeric": float(numeric)}
