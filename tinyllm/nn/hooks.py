"""Module hooks: look at (or change) what flows through a module without touching its code (as torch.nn.Module's).

Four kinds, registered on a module, each returning a ``RemovableHandle``:

    register_forward_pre_hook(hook)        hook(module, args) -> None | new args          before forward
    register_forward_hook(hook)            hook(module, args, output) -> None | new output  after forward
    register_full_backward_pre_hook(hook)  hook(module, grad_output) -> None | new grad_output
    register_full_backward_hook(hook)      hook(module, grad_input, grad_output) -> None | new grad_input

``args`` is the tuple of positional arguments (``with_kwargs=True``: the hook also gets, and may
return, the keyword arguments). ``grad_output`` holds dL/d(output), one entry per output tensor;
``grad_input`` dL/d(arg), one entry per positional argument, None where the argument is not a
tensor that requires grad. Gradients are Tensors, as in PyTorch. Hooks run in registration
order (``prepend=True``: first); ``handle.remove()`` (or leaving ``with handle:``) removes one.

How the backward hooks see whole tuples in an engine whose nodes have one output each:
the module's inputs go through one identity node before forward, its outputs through one
after (``_pack``). The engine reaches a node once all of its gradient has arrived
(reverse topological order), so the output node sees every dL/d(output) at once and runs
the pre-hooks; the input node, reached after everything inside the module, sees every
dL/d(arg) and runs the full hooks with both tuples. Several tensors share one node by
being packed into one flat vector (a copy, paid only while a backward hook is registered):

    x1, x2 --Pack--> flat (n1 + n2,) --Unpack--> x1', x2'        the module reads x1', x2'

# subtle: a module whose output does not depend on its inputs never fires its full backward
# hooks when an input requires grad (no gradient reaches the input node); PyTorch calls them
# with grad_input None. If no input requires grad, they fire at the output node, as in PyTorch.

Example (gradient norms per layer, the way chapter 10 collects them):

    >>> norms = {}
    >>> def grad_norm(name):
    ...     return lambda mod, grad_in, grad_out: norms.__setitem__(name, float((grad_out[0] ** 2).sum().item()))
    >>> handles = [b.register_full_backward_hook(grad_norm(f"h.{i}")) for i, b in enumerate(model.transformer.h)]
    >>> model(x, y)[1].backward(); [h.remove() for h in handles]
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import numpy as np

from tinyllm import backend
from tinyllm.autograd import IndexGrad, is_grad_enabled
from tinyllm.function import Function
from tinyllm.tensor import Tensor

_ids = itertools.count()


class RemovableHandle:
    """What a register_*_hook returns: ``remove()`` takes the hook out (twice is harmless); a context manager."""

    def __init__(self, *hooks_dicts):
        self.id = next(_ids)
        self.hooks_dicts = hooks_dicts  # the registry, and the option sets (with_kwargs, always_call) it sits in

    def remove(self) -> None:
        for d in self.hooks_dicts:
            d.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"RemovableHandle(id={self.id})"


class Hooks:
    """A module's hooks: id -> hook in call order, and the ids registered with each option (dicts as sets)."""

    __slots__ = ("forward_pre", "forward", "backward_pre", "backward", "with_kwargs", "always_call")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, OrderedDict())

    def add(self, registry: str, hook, prepend: bool = False, **options) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
        d = getattr(self, registry)
        handle = RemovableHandle(d, self.with_kwargs, self.always_call)
        d[handle.id] = hook
        if prepend:
            d.move_to_end(handle.id, last=False)
        for option, on in options.items():
            if on:
                getattr(self, option)[handle.id] = True
        return handle

    def __bool__(self) -> bool:
        return bool(self.forward_pre or self.forward or self.backward_pre or self.backward)


def has_hooks(module) -> bool:
    """True when a hook is registered on module (the raw-array Decoder then leaves decoding to the modules)."""
    hooks = module.__dict__.get("_hooks")
    return hooks is not None and bool(hooks)


# ----------------------------------------------------------------------------- calling a module with hooks


def call(module, args: tuple, kwargs: dict):
    """module(*args, **kwargs) with its hooks: pre-hooks, backward set-up, forward, forward hooks (PyTorch's order)."""
    hooks = module._hooks
    for hid, hook in list(hooks.forward_pre.items()):
        if hid in hooks.with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                       f"but got {result!r}")
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    record = _BackwardRecord(module, args) if (hooks.backward or hooks.backward_pre) and is_grad_enabled() else None
    if record is not None:
        args = record.wrap_inputs(args)
    called = set()
    try:
        output = module.forward(*args, **kwargs)
        for hid, hook in list(hooks.forward.items()):
            called.add(hid)
            result = hook(module, args, kwargs, output) if hid in hooks.with_kwargs else hook(module, args, output)
            if result is not None:
                output = result
    except Exception:
        for hid, hook in list(hooks.forward.items()):  # always_call hooks run even when forward raised
            if hid in hooks.always_call and hid not in called:
                try:
                    hook(module, args, kwargs, None) if hid in hooks.with_kwargs else hook(module, args, None)
                except Exception:  # noqa: S110 - the original error is the one to see, as in PyTorch
                    pass
        raise
    if record is not None:
        output = record.wrap_outputs(output)
    return output


# ----------------------------------------------------------------------------- the backward side


class _Identity(Function):
    """y = x; backward hands grad_out to ctx.on_grads (which may replace it)."""

    @staticmethod
    def forward(ctx, x, on_grads):
        ctx.on_grads = on_grads
        return x

    @staticmethod
    def backward(ctx, grad_out):
        # dy/dx = I: the gradient passes through, unless a hook replaces it
        return ctx.on_grads((grad_out,))[0]


class _Pack(Function):
    """flat = concat(x1.ravel(), ..., xn.ravel()); backward splits dL/dflat and hands the pieces to on_grads."""

    @staticmethod
    def forward(ctx, *xs, on_grads):
        ctx.on_grads, ctx.shapes = on_grads, [x.shape for x in xs]
        xp = backend.of(xs[0])
        return xp.concatenate([x.reshape(-1) for x in xs])  # (n1 + ... + nk,)

    @staticmethod
    def backward(ctx, grad_out):
        # d flat / d x_i selects x_i's slice: dL/dx_i = grad_out[slice_i].reshape(x_i.shape)
        ends = np.cumsum([int(np.prod(s)) for s in ctx.shapes])
        grads = tuple(grad_out[a:b].reshape(s) for a, b, s in zip([0, *ends[:-1]], ends, ctx.shapes))
        return tuple(ctx.on_grads(grads))


class _Unpack(Function):
    """x_i' = flat[a:b].reshape(shape); backward writes its gradient into that slice of dL/dflat."""

    @staticmethod
    def forward(ctx, flat, a, b, shape):
        ctx.a, ctx.b = a, b
        return flat[a:b].reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        # zero outside the slice: an IndexGrad, summed into one buffer by the engine
        return IndexGrad(slice(ctx.a, ctx.b), grad_out.reshape(-1), advanced=False)


def _pack(tensors: list, on_grads) -> list:
    """The tensors routed through one identity node whose backward calls on_grads(grads) once, with all of them."""
    if len(tensors) == 1:
        return [_Identity.apply(tensors[0], on_grads=on_grads)]
    if len({t.dtype for t in tensors}) > 1 or len({t.device for t in tensors}) > 1:
        raise TypeError("backward hooks: a module's tensor inputs (or outputs) that require grad must share one "
                        f"dtype and device, got {[(str(t.dtype), t.device) for t in tensors]}")
    flat = _Pack.apply(*tensors, on_grads=on_grads)
    ends = np.cumsum([t.numel() for t in tensors])
    return [_Unpack.apply(flat, int(a), int(b), t.shape) for a, b, t in zip([0, *ends[:-1]], ends, tensors)]


def _as_grads(result, like: tuple, what: str) -> tuple:
    """A hook's returned gradients as raw arrays (None kept), checked against the shapes they replace."""
    result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if len(result) != len(like):
        raise RuntimeError(f"a backward hook returned {len(result)} {what} gradients but {len(like)} were expected")
    out = []
    for r, g in zip(result, like):
        r = r.data if isinstance(r, Tensor) else r
        if r is not None and g is not None and tuple(r.shape) != tuple(g.shape):
            raise RuntimeError(f"a backward hook returned a {what} gradient of shape {tuple(r.shape)} for one of "
                               f"shape {tuple(g.shape)}")
        out.append(r)
    return tuple(out)


def _tensors(grads) -> tuple:
    return tuple(None if g is None else Tensor(g) for g in grads)


class _BackwardRecord:
    """One call's backward hooks: the output node records grad_output, the input node calls the full hooks."""

    def __init__(self, module, args: tuple):
        self.module, self.n_args = module, len(args)
        self.grad_output = ()
        self.inputs_in_graph = False

    def wrap_inputs(self, args: tuple) -> tuple:
        slots = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not slots:
            return args
        self.inputs_in_graph = True
        self.slots = slots
        wrapped = _pack([args[i] for i in slots], self._at_inputs)
        args = list(args)
        for i, w in zip(slots, wrapped):
            args[i] = w
        return tuple(args)

    def wrap_outputs(self, output):
        single = isinstance(output, Tensor)
        outs = [output] if single else list(output) if isinstance(output, (tuple, list)) else None
        if outs is None:
            raise TypeError(f"backward hooks need a module that returns a Tensor or a tuple of Tensors, "
                            f"{type(self.module).__name__} returned {type(output).__name__}")
        slots = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not slots:
            return output
        self.out_slots, self.n_out = slots, len(outs)
        wrapped = _pack([outs[i] for i in slots], self._at_outputs)
        for i, w in zip(slots, wrapped):
            outs[i] = w
        return outs[0] if single else type(output)(outs)

    def _at_outputs(self, grads: tuple) -> tuple:
        hooks = self.module._hooks
        full = [None] * self.n_out
        for i, g in zip(self.out_slots, grads):
            full[i] = g
        grad_output = tuple(full)
        for hook in list(hooks.backward_pre.values()):
            result = hook(self.module, _tensors(grad_output))
            if result is not None:
                grad_output = _as_grads(result, grad_output, "output")
        self.grad_output = grad_output
        if not self.inputs_in_graph:  # nothing flows further down: the full hooks fire here, grad_input all None
            self._call_full((None,) * self.n_args)
        return tuple(grad_output[i] for i in self.out_slots)

    def _at_inputs(self, grads: tuple) -> tuple:
        grad_input = [None] * self.n_args
        for i, g in zip(self.slots, grads):
            grad_input[i] = g
        grad_input = self._call_full(tuple(grad_input))
        return tuple(grad_input[i] for i in self.slots)

    def _call_full(self, grad_input: tuple) -> tuple:
        for hook in list(self.module._hooks.backward.values()):
            result = hook(self.module, _tensors(grad_input), _tensors(self.grad_output))
            if result is not None:
                grad_input = _as_grads(result, grad_input, "input")
        return grad_input
