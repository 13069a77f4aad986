"""Activation-aware weight quantization (AWQ, Lin et al. 2023): protect the weights big activations read.

A Linear's output error from quantizing W is Σ_j x_j (W_ij - Q(W)_ij): an error in column j
costs in proportion to how large x_j is. Activations of LLMs have a few input channels far
larger than the rest (outlier channels; Dettmers et al. 2022), so the columns they read matter
most. AWQ scales those columns up before quantizing, so they get more of the grid, and scales the
input down by the same amount, which leaves the float function unchanged:

    y = x Wᵀ = (x / s) (W · s)ᵀ          s > 0 per input channel j (W's column j times s_j)
    y_awq = (x / s) Q(W · s)ᵀ            the relative error of column j shrinks about as 1/s_j

The division by s is folded into whatever made x, so it costs nothing at run time:

    input of        made by                        fold x / s into
    c_attn          norm_1 (LayerNorm / RMSNorm)   its weight (and bias): w / s, b / s
    c_fc, c_gate    norm_2                         the same
    attn.c_proj     softmax(q kᵀ) v: v's rows      c_attn's v rows (and bias) / s   (n_kv_head = n_head only)
    mlp.c_proj      silu(gate) ⊙ up                c_fc's rows / s                  (gated MLPs only)
                    relu(x W_fcᵀ)                  c_fc's rows / s                  (relu(x/s) = relu(x)/s)
                    gelu(...)                      nothing: gelu(x / s) is not gelu(x) / s, left as is

The scales come from a search on calibration activations X (a few thousand tokens of text):

    s = mean|X|^α, normalized so that max(s) · min(s) = 1, for α in 0, 1/n, ..., (n-1)/n
    keep the α with the least ‖X Wᵀ - (X/s) Q(W·s)ᵀ‖²   over the Linears that share X (α = 0: plain RTN)

and then a clipping search per Linear: the range each group of weights is quantized over is
shrunk to r · max|W| for r in 1, 0.95, ... 0.5, and the r with the least output error on X kept
(the outliers of W cost more grid than they are worth). Both follow AutoAWQ's auto_scale and
auto_clip. The result is a float model (scales folded, weights clipped); quantize_model then
rounds it, in int4 groups or ggml blocks alike.

Example:
    >>> calib = tokens[:64 * 32].reshape(64, 32)              # (batch, T) token ids of held-out text
    >>> report = apply_awq(model, calib, "int4", group_size=32)
    >>> quantize_model(model, "int4", group_size=32)          # the AWQ model, 4 bits
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.autograd import no_grad
from tinyllm.nn.linear import Linear
from tinyllm.quant.weight import QuantizedWeight

ALPHAS = 20         # grid points of the scale exponent α
CLIP_RATIOS = 11    # r = 1.0, 0.95, ..., 0.5
MAX_ROWS = 4096     # calibration rows used per search (a sample of them beyond)


def fake_quant(w: np.ndarray, fmt: str, group_size: int | None) -> np.ndarray:
    """W as the format stores it, dequantized: Q(W)."""
    return QuantizedWeight.from_float(np.ascontiguousarray(w, dtype=np.float32), fmt, group_size).dequantize()


def collect_inputs(model, ids, names) -> dict[str, np.ndarray]:
    """{name: the (N, in_features) rows that Linear `name` read} over one forward of ids (B, T), on the host."""
    seen: dict[str, list] = {n: [] for n in names}
    handles = [model.get_submodule(n).register_forward_hook(
        lambda m, args, out, n=n: seen[n].append(backend.to_numpy(args[0].data).reshape(-1, args[0].shape[-1])))
        for n in names]
    try:
        with no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    return {n: np.concatenate(v) for n, v in seen.items()}


def search_scale(x: np.ndarray, weights: list[np.ndarray], fmt: str, group_size: int | None):
    """(s, α, error at α, error at α = 0): the per-input-channel scales for Linears reading x (module docstring)."""
    x_mean = np.abs(x).mean(axis=0) + 1e-8  # (in,) activation size per channel
    target = [x @ w.T for w in weights]
    best = None
    for a in range(ALPHAS):
        alpha = a / ALPHAS
        s = x_mean ** alpha
        s = (s / np.sqrt(s.max() * s.min())).astype(np.float32)
        err = sum(float(((x @ (fake_quant(w * s, fmt, group_size) / s).T - t) ** 2).mean())
                  for w, t in zip(weights, target))
        if a == 0:
            rtn = err
        if best is None or err < best[2]:
            best = (s, alpha, err)
    return (*best, rtn)


def search_clip(x: np.ndarray, w: np.ndarray, fmt: str, group_size: int | None) -> tuple[np.ndarray, float]:
    """(W clipped to the best r · max|W| per row and group, r); the error measured on x Wᵀ."""
    g = w.shape[1] if fmt.startswith("int8") else 32 if fmt.startswith("q") else group_size or 128
    wg = w.reshape(w.shape[0], -1, g)
    amax = np.abs(wg).max(axis=2, keepdims=True)  # (out, groups, 1)
    target = x @ w.T
    best = None
    for i in range(CLIP_RATIOS):
        r = 1.0 - 0.05 * i
        wc = np.clip(wg, -amax * r, amax * r).reshape(w.shape)
        err = float(((x @ fake_quant(wc, fmt, group_size).T - target) ** 2).mean())
        if best is None or err < best[2]:
            best = (wc, r, err)
    return best[0], best[1]


def _scale_groups(model):
    """(prev-op kind, prev-op module(s), [names of the Linears that read its output]) per block (the table above)."""
    c = model.config
    gated = getattr(c, "activation", "") in ("swiglu", "geglu")
    for i, blk in enumerate(model.transformer.h):
        p = f"transformer.h.{i}."
        yield "norm", blk.ln_1, [p + "attn.c_attn"]
        if c.kv_heads == c.n_head:
            yield "v_rows", blk.attn.c_attn, [p + "attn.c_proj"]
        yield "norm", blk.ln_2, [p + "mlp.c_fc"] + ([p + "mlp.c_gate"] if gated else [])
        if gated or c.activation == "relu":
            yield "rows", blk.mlp.c_fc, [p + "mlp.c_proj"]


def _fold(kind: str, prev, s: np.ndarray) -> None:
    """Divide the output of prev by s (the input of the Linears that read it)."""
    s_dev = backend.asarray(s, device=backend.device_of(prev.weight.data))
    if kind == "norm":
        targets, rows = [prev.weight] + ([prev.bias] if getattr(prev, "bias", None) is not None else []), slice(None)
    else:
        n = s.shape[0]
        rows = slice(prev.weight.shape[0] - n, None) if kind == "v_rows" else slice(None)  # v is the last block
        targets = [prev.weight] + ([prev.bias] if prev.bias is not None else [])
    for t in targets:
        data = t.data.copy()
        if t.data.ndim == 2:
            data[rows] = data[rows] / s_dev[:, None]
        else:
            data[rows] = data[rows] / s_dev
        t.data = data.astype(t.data.dtype)


def apply_awq(model, calib_ids, fmt: str = "int4", group_size: int | None = 128, clip: bool = True) -> list[dict]:
    """Search and fold AWQ scales, then clip, for every block of model (in place) -> one dict per scale group.

    calib_ids: (B, T) token ids of calibration text. fmt, group_size: the format the model will be
    quantized to afterwards (quantize_model with the same arguments). Each report row holds the
    Linears, the α chosen, and the calibration output error at α and with plain RTN (α = 0).
    Blocks are searched in order, each on the activations of the model as already scaled.
    """
    if fmt not in ("int4", "int4_sym", "int8", "int8_asym", "q4_0", "q5_0", "q8_0"):
        raise ValueError(f"apply_awq: unknown format {fmt!r}")
    model.eval()
    report = []
    for kind, prev, names in _scale_groups(model):
        x = collect_inputs(model, calib_ids, names[:1])[names[0]]
        if x.shape[0] > MAX_ROWS:
            x = x[np.random.default_rng(0).choice(x.shape[0], MAX_ROWS, replace=False)]
        linears = [model.get_submodule(n) for n in names]
        ws = [backend.to_numpy(m.weight.data).astype(np.float32) for m in linears]
        s, alpha, err, rtn = search_scale(x, ws, fmt, group_size)
        if alpha > 0:
            _fold(kind, prev, s)
            for m, w in zip(linears, ws):
                m.weight.data = backend.asarray(w * s, dtype=m.weight.data.dtype,
                                                device=backend.device_of(m.weight.data))
        report.append(dict(layers=names, alpha=alpha, error=err, error_rtn=rtn))
    if clip:
        names = [n for n, m in model.named_modules() if type(m) is Linear and ".h." in f".{n}"]
        for n in names:
            if n.endswith("attn.c_attn"):  # AutoAWQ leaves q and k unclipped: attention scores are sensitive
                continue
            m = model.get_submodule(n)
            x = collect_inputs(model, calib_ids, [n])[n]
            if x.shape[0] > MAX_ROWS:
                x = x[np.random.default_rng(0).choice(x.shape[0], MAX_ROWS, replace=False)]
            wc, r = search_clip(x, backend.to_numpy(m.weight.data).astype(np.float32), fmt, group_size)
            m.weight.data = backend.asarray(wc, dtype=m.weight.data.dtype, device=backend.device_of(m.weight.data))
            report.append(dict(layers=[n], clip=r))
    return report
