"""Optimizer: what every optimizer shares — parameter groups, state, zero_grad, checkpoints.

An optimizer is an update rule applied to each parameter p with a gradient g:

    p, state  <-  rule(p, g, state, hyperparameters of p's group)

Everything else is bookkeeping, written once here and used by SGD and AdamW:

  * **Parameter groups.** ``params`` is an iterable of Tensors, or a list of
    dicts ``{"params": [...], "weight_decay": 0.0, ...}``. A group's keys
    override the optimizer's defaults, so biases and norm gains can skip weight
    decay, or an embedding can get its own learning rate. A schedule changes
    ``group["lr"]`` between steps.
  * **State.** ``self.state[p]`` holds the per-parameter buffers (momentum,
    Adam's moments, the step count), created lazily at p's first update.
  * **Checkpoints.** ``state_dict()`` names parameters by their position in the
    groups (0, 1, 2, ...), as torch.optim does, so the dict holds only arrays
    and JSON-able numbers: ``tinyllm.save`` can write it and a fresh optimizer
    over the same model can continue exactly where the old one stopped.

Updates work on the raw arrays (``p.data``) with the array's own module
(``tinyllm.backend.of``), in place, so no graph is recorded and the same code
runs on NumPy, CuPy and the strict test device. Hyperparameters are cast to the
parameter's dtype first (``dtype.type(lr)``): a float32 model stays float32.

Example:
    >>> decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    >>> no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    >>> opt = AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)
    >>> loss.backward(); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import math

from tinyllm import backend
from tinyllm.autograd import enable_grad, zero_grads
from tinyllm.tensor import Tensor


class Optimizer:
    """Base class: holds ``param_groups``, ``state`` and ``defaults``; subclasses write ``_update``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}  # Tensor (hashed by identity) -> dict of buffers and counters
        self.param_groups: list[dict] = []
        if isinstance(params, (Tensor, dict)):
            raise TypeError(
                f"params should be an iterable of Tensors or of dicts, got a single "
                f"{type(params).__name__}; wrap it in a list: [{'p' if isinstance(params, Tensor) else 'group'}]"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list (did the model create its parameters?)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing keys take the defaults)."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
        group = dict(group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry: {'params': [...], ...}")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one made by an op); optimize the leaf it came from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict) -> None:
        """Subclasses raise ValueError on an invalid value (a negative lr, a beta >= 1...)."""

    # ------------------------------------------------------------------ the step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients before the next backward (which would otherwise accumulate).

        ``set_to_none=True`` (the default, as in PyTorch) drops them, saving memory and
        letting ``step`` skip parameters that got no gradient; ``False`` zeroes them in place.
        """
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given.

        ``closure`` re-evaluates the model and returns the loss (it runs with grad enabled).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.shape != p.shape:
                    raise ValueError(f"gradient of shape {grad.shape} for a parameter of shape {p.shape}")
                if grad.dtype != p.dtype:  # subtle: a float64 grad would make float64 temporaries
                    grad = grad.astype(p.dtype)
                self._update(p.data, grad, group, p)
        return loss

    def _update(self, param, grad, group: dict, p: Tensor) -> None:  # pragma: no cover - abstract
        """Update the raw array ``param`` in place from ``grad``; ``self.state[p]`` is p's state."""
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{"state": {index: {name: Tensor | int}}, "param_groups": [{..., "params": [index...]}]}``.

        Parameters are named by their position across the groups, as in torch.optim.
        Like ``model.state_dict()``, the arrays are shared with the optimizer, not
        copied: save them (``tinyllm.save``) before stepping on.
        """
        index: dict = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: Tensor(v) if backend.is_array(v) else v for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore groups' hyperparameters and per-parameter state (copied, on each parameter's device).

        Accepts what ``state_dict()`` returned or what ``tinyllm.load`` read back
        (Tensors or arrays; state keys as ints or strings).
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}; build the optimizer with the same groups as the saved one"
            )
        by_index = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"parameter group {i} has {len(group['params'])} parameters, the saved one "
                    f"{len(saved['params'])}; build the optimizer over the same model"
                )
            for p, j in zip(group["params"], saved["params"]):
                by_index[int(j)] = p

        state = {}
        for key, saved in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {key}, which no group holds")
            state[p] = {name: _to_param(value, p, f"the state {name!r} of parameter {key}")
                        for name, value in saved.items()}

        updates = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            for k, v in saved.items():
                if k == "params":
                    continue
                if isinstance(v, list) and isinstance(self.defaults.get(k), tuple):
                    v = tuple(v)  # JSON has no tuples: betas come back as a list
                if k in group and not _like(v, group[k]):
                    raise ValueError(f"loaded state dict: parameter group {i} has {k}={v!r}, where this optimizer "
                                     f"holds {group[k]!r}; the file is damaged or from another optimizer")
                updates.append((group, k, v))
        for group, k, v in updates:  # nothing changes until everything is checked
            group[k] = v
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _like(value, current) -> bool:
    """Whether a loaded hyperparameter may replace `current`: a finite number for a number, a bool for a
    bool, a tuple of as many numbers for a tuple (anything for other values)."""
    if isinstance(current, bool):
        return isinstance(value, bool)
    if _number(current):
        return _number(value)
    if isinstance(current, tuple):
        return isinstance(value, tuple) and len(value) == len(current) and all(map(_number, value))
    return True


def _to_param(value, p: Tensor, what: str):
    """A saved state value as p's state: an array of p's shape, copied onto p's device in p's dtype
    (Adam's moments, a momentum buffer), or a finite number (a step count); anything else is refused."""
    if isinstance(value, Tensor):
        value = value.data
    if backend.is_array(value):
        if tuple(value.shape) != tuple(p.shape):
            raise ValueError(f"loaded state dict: {what} has shape {tuple(value.shape)}, the parameter "
                             f"{tuple(p.shape)}; the state belongs to another model")
        arr = backend.asarray(value, device=p.device)
        return arr.astype(p.dtype, copy=True)  # a copy: never share buffers with the source
    if not _number(value):
        raise ValueError(f"loaded state dict: {what} is {value!r}, expected an array or a finite number")
    return value
