"""Fitting scaling laws: loss against size, with uncertainty, and the compute-optimal size.

Kaplan et al. (2020) and Hoffmann et al. (2022) write the loss of a model of N parameters
trained on D tokens as

    L(N)    = E + A / N^α                         (data not the limit)
    L(N, D) = E + A / N^α + B / D^β               (Chinchilla's form)

E is the loss no model reaches (the text's own entropy, for this tokenizer).

fit_power_law: for a fixed E the first form is a straight line in log space,
log(L - E) = log A - α log N, solved by least squares; E is the value on a fine grid
below the smallest loss whose line fits best. A bootstrap (resampling the sizes with
replacement) gives the spread of α, A and E: a 95% interval from its 2.5 and 97.5
percentiles.

fit_chinchilla: for fixed α and β the second form is linear in (E, A, B), so a 0.01
grid over α and β with a least-squares solve at each point finds the best fit of the
relative residuals (L_fit - L) / L (the log-space residuals, to first order).

isoflop: at a fixed compute C = 6·N·D, loss against log N is a valley; a parabola in
log N through each budget's runs puts N_opt(C) at its bottom, and a line through
log N_opt against log C gives the exponent a of N_opt ∝ C^a (Hoffmann et al.: ~0.5;
Kaplan et al.: 0.73).

Example:
    >>> n = np.array([1e5, 1e6, 1e7, 1e8])
    >>> round(fit_power_law(n, 2.0 + 30 * n ** -0.3, bootstrap=0, grid=2001)["alpha"], 2)
    0.3
"""

from __future__ import annotations

import numpy as np


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y = b + m·x -> (b, m, sum of squared residuals)."""
    A = np.stack([np.ones_like(x), x], axis=1)
    (b, m), *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - (b + m * x)
    return float(b), float(m), float(r @ r)


def _fit_once(n: np.ndarray, loss: np.ndarray, grid: int) -> tuple[float, float, float]:
    best = None
    for e in np.linspace(0.0, loss.min() * (1 - 1e-6), grid):
        b, m, sse = _line(np.log(n), np.log(loss - e))
        if best is None or sse < best[0]:
            best = (sse, float(e), float(np.exp(b)), float(-m))
    _, e, a, alpha = best
    return e, a, alpha


def fit_power_law(n, loss, *, bootstrap: int = 1000, seed: int = 0, grid: int = 400) -> dict:
    """E, A, alpha of L = E + A / N^alpha (see the module docstring), with bootstrap 95% intervals."""
    n, loss = np.asarray(n, np.float64), np.asarray(loss, np.float64)
    if len(n) < 3:
        raise ValueError(f"fitting E, A and alpha needs at least 3 sizes, got {len(n)}")
    e, a, alpha = _fit_once(n, loss, grid)
    out = dict(E=e, A=a, alpha=alpha, residuals=(loss - (e + a * n ** -alpha)).tolist())
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            i = rng.integers(0, len(n), len(n))
            if len(np.unique(n[i])) < 3:
                continue  # a resample with fewer than three distinct sizes cannot pin three numbers
            draws.append(_fit_once(n[i], loss[i], grid // 4))
        draws = np.array(draws)
        for k, name in enumerate(("E", "A", "alpha")):
            out[f"{name}_ci"] = [float(np.percentile(draws[:, k], 2.5)), float(np.percentile(draws[:, k], 97.5))]
        out["bootstrap_draws"] = len(draws)
    return out


def fit_chinchilla(n, d, loss, *, step: float = 0.01) -> dict:
    """E, A, B, alpha, beta of L = E + A/N^alpha + B/D^beta: linear in (E, A, B) on an (alpha, beta) grid."""
    n, d, loss = (np.asarray(v, np.float64) for v in (n, d, loss))
    if len(n) < 5:
        raise ValueError(f"fitting five numbers needs at least 5 runs, got {len(n)}")
    best = None
    for alpha in np.arange(step, 1.0 + step / 2, step):
        for beta in np.arange(step, 1.0 + step / 2, step):
            X = np.stack([np.ones_like(n), n ** -alpha, d ** -beta], axis=1) / loss[:, None]
            coef, *_ = np.linalg.lstsq(X, np.ones_like(loss), rcond=None)
            if (coef < 0).any():
                continue  # E, A and B are losses and scales: none is negative
            r = X @ coef - 1.0
            sse = float(r @ r)
            if best is None or sse < best[0]:
                best = (sse, coef, alpha, beta)
    if best is None:
        raise ValueError("no (alpha, beta) on the grid gives non-negative E, A, B: the runs do not follow the form")
    _, (e, a, b), alpha, beta = best
    return dict(E=float(e), A=float(a), B=float(b), alpha=float(alpha), beta=float(beta))


def isoflop(runs: list[dict]) -> dict:
    """N_opt per compute budget, from runs [{"flops": C, "params": N, "loss": L}, ...], and N_opt ∝ C^a."""
    budgets = sorted({r["flops"] for r in runs})
    optima = []
    for c in budgets:
        at = [r for r in runs if r["flops"] == c]
        if len(at) < 3:
            raise ValueError(f"budget {c:.3g} has {len(at)} runs; a parabola needs at least 3")
        x = np.log([r["params"] for r in at])
        y = np.array([r["loss"] for r in at])
        p2, p1, p0 = np.polyfit(x, y, 2)
        if p2 <= 0:
            raise ValueError(f"budget {c:.3g}: the losses do not form a valley over log N (no minimum inside)")
        x_opt = -p1 / (2 * p2)
        optima.append(dict(flops=c, n_opt=float(np.exp(x_opt)), loss_opt=float(np.polyval([p2, p1, p0], x_opt)),
                           parabola=[float(p2), float(p1), float(p0)]))
    out = dict(optima=optima)
    if len(optima) >= 2:
        b, a, _ = _line(np.log([o["flops"] for o in optima]), np.log([o["n_opt"] for o in optima]))
        out.update(exponent=a, intercept=b)
    return out
