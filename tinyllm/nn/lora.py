"""LoRA: finetune a frozen model through a low-rank update of some of its matrices (Hu et al. 2021).

Finetuning every weight of a model needs, per parameter, its gradient and AdamW's
two moments: three more copies of the model. LoRA's bet is that the change a
finetune makes to a weight matrix has low rank. So each chosen Linear keeps its
weight W (out, in) frozen and learns two thin matrices beside it:

    h = x Wᵀ + b + (α / r) · dropout(x) Aᵀ Bᵀ        A (r, in), B (out, r), r << min(in, out)
    ΔW = (α / r) · B A                              the update, of rank <= r

A starts random (kaiming-uniform, as PEFT) and B at zero, so ΔW = 0 and the
wrapped model computes exactly what the base did before the first step. Only A
and B train: r·(in + out) numbers per matrix instead of in·out. α / r scales the
update so that changing r does not change the learning rate's effect (§4.1).

After training, ``merge_lora`` folds ΔW into W (W <- W + ΔW): the model then costs
no more than the base at inference; ``unmerge_lora`` takes it out again
(W <- W - ΔW, equal to the original W up to float rounding). ``save_adapters``
writes A and B alone (and r, α, the targets): a few kilobytes that turn the base
model into the finetuned one.

Which matrices: ``targets`` are names of Linear modules, matched against the end
of their dotted path. "c_attn" matches every transformer.h.N.attn.c_attn (GPT-2's
fused q, k, v: the default, as PEFT's for GPT-2); "c_proj" matches both the
attention's and the MLP's output projection; "attn.c_proj" only the first.

Example (C = 4, r = 2: c_attn 4 -> 12 trains 2·(4 + 12) = 32 numbers instead of 48 + 12):
    >>> apply_lora(model, r=2, alpha=4, targets=("c_attn",))
    >>> parameter_counts(model)       # (trainable, total)
    >>> merge_lora(model); unmerge_lora(model)
    >>> save_adapters(model, "out/adapters.safetensors"); load_adapters(other_base_model, "out/adapters.safetensors")

A wrapped model generates through its modules: the raw-array Decoder repeats only
plain layers (tinyllm/nn/decoding.py), and a LoRALinear is not one.
"""

from __future__ import annotations

import math
from pathlib import Path

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.autograd import no_grad
from tinyllm.creation import empty
from tinyllm.nn import init
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module, Parameter
from tinyllm.serialization import load, save

ADAPTER_FORMAT = "tinyllm-lora-1"
DEFAULT_TARGETS = ("c_attn",)


class LoRALinear(Module):
    """A Linear with a frozen ``weight`` (and ``bias``) and a trainable low-rank update ``lora_B @ lora_A``.

    The base layer's Parameters are kept under their own names (``weight``, ``bias``), so a
    wrapped model's state dict holds every base key unchanged, plus ``lora_A`` and ``lora_B``.
    """

    def __init__(self, base: Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the same Parameters: the base model's, frozen by apply_lora
        if base.bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = base.bias
        w = base.weight
        self.lora_A = Parameter(empty(r, self.in_features, dtype=w.dtype, device=w.device))   # (r, in)
        self.lora_B = Parameter(empty(self.out_features, r, dtype=w.dtype, device=w.device))  # (out, r)
        init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        init.zeros_(self.lora_B)  # ΔW = 0: the wrapped model starts as the base
        self.lora_dropout = Dropout(dropout)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.merged = False

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)  # (*, in) -> (*, out)
        if self.merged:
            return y  # ΔW is inside weight
        z = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)  # (*, in) -> (*, r) -> (*, out)
        return y + z * self.scaling

    def delta_weight(self):
        """ΔW = (α / r) · B A, a raw (out, in) array."""
        return (self.lora_B.data @ self.lora_A.data) * self.weight.dtype.type(self.scaling)

    def merge(self) -> None:
        if not self.merged:
            with no_grad():
                self.weight.data += self.delta_weight()
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            with no_grad():
                self.weight.data -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"r={self.r}, alpha={self.alpha}, merged={self.merged}")


def _matches(name: str, targets) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def lora_layers(model) -> list[tuple[str, LoRALinear]]:
    """(dotted name, LoRALinear) of every adapted layer, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def _check_settings(r, alpha, dropout, targets) -> tuple:
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"apply_lora: r must be an integer >= 1 (the rank of the update), got {r!r}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"apply_lora: alpha must be a number > 0 (the update is scaled by alpha / r), got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"apply_lora: dropout must be in [0, 1), got {dropout!r}")
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ValueError(f"apply_lora: targets must be names of Linear layers, e.g. ('c_attn',), got {targets!r}")
    return targets


def apply_lora(model, r: int = 8, alpha: float = 16.0, targets=DEFAULT_TARGETS, dropout: float = 0.0):
    """Freeze every parameter of `model` and wrap each Linear named by `targets` in a LoRALinear (in place).

    Returns the model. Refuses a model that already holds adapters, targets that match no
    Linear (the message lists the Linear layers there are), and a Linear whose weight is
    shared with another module (a tied lm_head: merging would change the embeddings too).
    """
    targets = _check_settings(r, alpha, dropout, targets)
    if lora_layers(model):
        raise ValueError("apply_lora: the model already holds LoRA adapters; merge_lora or start from the base model")
    linears = [(name, m) for name, m in model.named_modules() if type(m) is Linear]
    chosen = [(name, m) for name, m in linears if _matches(name, targets)]
    if not chosen:
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in linears})
        raise ValueError(f"apply_lora: targets {list(targets)} match no Linear layer; the model's Linear layers end "
                         f"in {names}")
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name)
    for name, m in chosen:
        shared = owners[id(m.weight)]
        others = [s for s in shared if s != name + ".weight"]
        if others:
            raise ValueError(f"apply_lora: {name}.weight is the same Parameter as {others} (tied); leave "
                             f"{name.rsplit('.', 1)[-1]!r} out of targets")
    model.requires_grad_(False)
    for name, m in chosen:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, LoRALinear(m, r, float(alpha), dropout))
    return model


def merge_lora(model):
    """W <- W + ΔW in every adapted layer: the same outputs (to float rounding), no extra work per token."""
    for _, m in lora_layers(model):
        m.merge()
    return model


def unmerge_lora(model):
    """W <- W - ΔW: undo merge_lora (the adapters train again)."""
    for _, m in lora_layers(model):
        m.unmerge()
    return model


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) numbers of learned values; a tied weight counts once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def merged_state_dict(model) -> dict:
    """The state dict of the plain model the adapters make: W + ΔW under the base names, no lora_* keys.

    The model itself is left as it is (merged or not); a plain GPT loads the result.
    """
    state = dict(model.state_dict())
    for name, m in lora_layers(model):
        del state[f"{name}.lora_A"], state[f"{name}.lora_B"]
        if not m.merged:
            state[f"{name}.weight"] = m.weight.data + m.delta_weight()
    return state


def lora_settings(model) -> dict:
    """{"r", "alpha", "dropout", "targets"} of an adapted model (the layers' names), as save_adapters stores them."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model holds no LoRA adapters; apply_lora(model, ...) first")
    first = layers[0][1]
    return {"r": first.r, "alpha": first.alpha, "dropout": first.lora_dropout.p, "targets": [n for n, _ in layers]}


def save_adapters(model, path) -> Path:
    """Write the adapters alone (A, B of every layer, and r, α, dropout, the layer names) to a safetensors file."""
    path = Path(path)
    adapters = {}
    for name, m in lora_layers(model):
        adapters[f"{name}.lora_A"], adapters[f"{name}.lora_B"] = m.lora_A.detach(), m.lora_B.detach()
    save({"format": ADAPTER_FORMAT, "config": lora_settings(model), "adapters": adapters}, path)
    return path


def load_adapters(model, path, device: str | None = None):
    """Put the adapters of `path` (from save_adapters) into `model`: a base model is wrapped first.

    A model that holds adapters already must hold the same layers with the same r; merged ones are
    refused (unmerge_lora first). Returns the model.
    """
    obj = load(path, device=device or "cpu")
    if not isinstance(obj, dict) or obj.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path} is not a tinyllm LoRA adapter file (format {ADAPTER_FORMAT!r}); write one with "
                         f"save_adapters")
    try:
        cfg, adapters = obj["config"], obj["adapters"]
        r, alpha, dropout, names = int(cfg["r"]), float(cfg["alpha"]), float(cfg["dropout"]), list(cfg["targets"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: the adapter settings are damaged ({e}); write the file again with save_adapters"
                         ) from None
    if not lora_layers(model):
        # subtle: the stored names are full paths, so each matches exactly its own layer
        apply_lora(model, r=r, alpha=alpha, targets=names, dropout=dropout)
    layers = dict(lora_layers(model))
    if sorted(layers) != sorted(names) or any(m.r != r for m in layers.values()):
        raise ValueError(f"{path} holds adapters of rank {r} for {names}; the model has "
                         f"{[(n, m.r) for n, m in layers.items()]}")
    if any(m.merged for m in layers.values()):
        raise ValueError("load_adapters: the model's adapters are merged into its weights; unmerge_lora(model) first")
    with no_grad():
        for name, m in layers.items():
            for part in ("lora_A", "lora_B"):
                value = adapters.get(f"{name}.{part}")
                target = getattr(m, part)
                if value is None or tuple(value.shape) != tuple(target.shape):
                    raise ValueError(f"{path}: {name}.{part} is missing or of shape "
                                     f"{None if value is None else tuple(value.shape)}, expected {tuple(target.shape)}")
                target.data[...] = backend.asarray(value.data, device=target.device)
    return model
