"""Module and Parameter: how a network keeps track of its own weights.

A neural network is a function with learnable numbers inside. ``Module`` is
the bookkeeping that lets the rest of the library find those numbers without
being told where they are: assigning an attribute registers it.

    self.fc = Linear(4, 8)           # a Module   -> a child,     named "fc"
    self.scale = Parameter(ones(8))  # a Parameter -> a parameter, named "scale"
    self.register_buffer("mask", m)  # a Tensor   -> a buffer (saved, not trained)

From that registry come, recursively and in registration order, the dotted
names ``fc.weight``, ``fc.bias``, ``scale``: ``named_parameters()`` for the
optimizer, ``state_dict()`` / ``load_state_dict()`` for checkpoints,
``to(device)`` to move everything, ``train()`` / ``eval()`` to switch dropout.
It follows ``torch.nn.Module`` name for name, so a reader who knows one knows
the other, and a GPT-2 checkpoint loads key for key.

Example:
    >>> class MLP(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = Linear(4, 8)
    ...         self.fc2 = Linear(8, 1)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).relu())
    >>> [name for name, _ in MLP().named_parameters()]
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']

Containers (``ModuleList``, ``Sequential``, ``ModuleDict``) are in container.py;
forward and backward hooks (``register_forward_hook``, ``register_full_backward_hook``,
with PyTorch's signatures) in hooks.py.

Length: ~520 lines, over this project's ~300-line aim on purpose: it is the whole of
torch.nn.Module's surface (registration, walking the tree, modes, devices, checkpoints) as one
class, in short sections; split up, one concept would be spread over several files.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from tinyllm import backend
from tinyllm.autograd import no_grad, zero_grads
from tinyllm.nn import hooks
from tinyllm.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (``requires_grad=True`` by default).

    It shares the array it is given (no copy), like ``torch.nn.Parameter``:

        >>> w = Parameter(tinyllm.zeros(2, 3))
        >>> w.requires_grad, w.is_leaf
        (True, True)
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = backend.xp_for(None).empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)
        if requires_grad and np.dtype(self.data.dtype).kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {self.data.dtype}; "
                "pass requires_grad=False (or register it as a buffer)"
            )

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns: the keys it could not match (torch's _IncompatibleKeys).
class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(s: str, n: int) -> str:
    """Indent every line but the first by n spaces (nested reprs)."""
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


def _dtype_kind(dtype) -> str:
    kind = np.dtype(dtype).kind
    return "i" if kind == "u" else kind  # signed/unsigned ints load into each other


def _parse_to(*args, **kwargs):
    """Module.to(device), .to(dtype), .to(device, dtype), .to(device=..., dtype=...)."""
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, str) and a in backend.DEVICES:
            device = a
        else:
            dtype = a
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(
                f"expected a device {backend.DEVICES} or a floating dtype, got {dtype!r}"
            ) from None
        if dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
    if device is not None and device not in backend.DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {backend.DEVICES}")
    return device, dtype


class Module:
    """Base class of every layer and model: registers parameters, buffers and children.

    A subclass calls ``super().__init__()`` first, assigns its layers and
    Parameters as attributes, and defines ``forward``; calling the module
    calls ``forward``.
    """

    training: bool

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_hooks", None)  # a hooks.Hooks once the first hook is registered

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if not self._hooks:  # the common case: straight to forward
            return self.forward(*args, **kwargs)
        return hooks.call(self, args, kwargs)

    # ------------------------------------------------------------------ hooks (hooks.py: the signatures and how)
    def _hook_registry(self) -> hooks.Hooks:
        if self._hooks is None:
            object.__setattr__(self, "_hooks", hooks.Hooks())
        return self._hooks

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """hook(module, args) -> None | new args, before each forward (with_kwargs: hook(module, args, kwargs))."""
        return self._hook_registry().add("forward_pre", hook, prepend, with_kwargs=with_kwargs)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """hook(module, args, output) -> None | new output, after each forward; a RemovableHandle."""
        return self._hook_registry().add("forward", hook, prepend, with_kwargs=with_kwargs, always_call=always_call)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False):
        """hook(module, grad_output) -> None | new grad_output, when the gradients of the outputs are known."""
        return self._hook_registry().add("backward_pre", hook, prepend)

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """hook(module, grad_input, grad_output) -> None | new grad_input, when the inputs' gradients are known."""
        return self._hook_registry().add("backward", hook, prepend)

    # ------------------------------------------------------------------ registration
    def _check_name(self, name, kind: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f"{kind} name must not contain a dot, got {name!r}")
        if name == "":
            raise KeyError(f"{kind} name must not be empty")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a Parameter (or None: a slot with no parameter, like ``bias=False``)."""
        self._check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(tinyllm.nn.Parameter or None required); wrap it: Parameter(tensor)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not learned (a causal mask, running statistics).

        Buffers move with ``to(device)`` and, when ``persistent``, are saved in
        ``state_dict``; the optimizer never sees them.
        """
        self._check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module (what ``self.name = module`` does)."""
        self._check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    register_module = add_module

    def _forget(self, name: str) -> None:
        for d in (self.__dict__, self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_name(name, "parameter")
            self._forget(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(tinyllm.nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._check_name(name, "module")
            self._forget(name)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ------------------------------------------------------------------ walking the tree
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for self and every descendant, depth first; '' names self."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """(name, module) for each direct child, once each."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        # subtle: a parameter shared by two modules (tied input/output embeddings)
        # is yielded once, under its first name, so an optimizer updates it once.
        seen = set()
        if recurse:
            modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            modules = [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, Parameter) in registration order, shared parameters once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path: ``model.get_submodule("h.0.attn")``."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = child
        return module

    def apply(self, fn) -> Module:
        """Call fn(module) on every child (recursively), then on self; the way to init weights."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for self and every descendant."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout is the identity): ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter, e.g. for finetuning a head only."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of the last backward (they accumulate otherwise).

        ``set_to_none=True`` (the default, as in PyTorch) drops them; False fills them with 0.
        """
        zero_grads(self.parameters(), set_to_none)

    # ------------------------------------------------------------------ devices and dtypes
    def to(self, *args, **kwargs) -> Module:
        """Move every parameter and buffer to a device and/or cast the floating ones to a dtype.

            model.to("strict"); model.to(np.float64); model.to("cpu", dtype="float32")

        In place, as PyTorch: each Parameter keeps its identity (its ``.data``
        and ``.grad`` are replaced), so an optimizer built before the move still
        holds the right objects. Integer buffers are never cast.
        """
        device, dtype = _parse_to(*args, **kwargs)

        def convert(arr):
            if dtype is not None and np.dtype(arr.dtype).kind == "f" and arr.dtype != dtype:
                arr = arr.astype(dtype)
            if device is not None:
                arr = backend.asarray(arr, device=device)
            return arr

        seen = set()
        for module in self.modules():
            for t in [*module._parameters.values(), *module._buffers.values()]:
                if t is None or id(t) in seen:  # a tied tensor is converted once
                    continue
                seen.add(id(t))
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad.data = convert(t.grad.data)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """An ordered dict of dotted name -> Tensor: every parameter and persistent buffer.

        The tensors are detached but share memory with the module (no copy), so
        save them before training further. Unlike ``named_parameters``, a tied
        weight appears under each of its names, as in PyTorch.
        """
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict: Mapping, strict: bool = True):
        """Copy a state dict's values into this module's parameters and buffers, in place.

        Values (Tensors or arrays, from any device) are moved to each
        parameter's device and cast to its dtype (float64 -> float32 is fine;
        an integer array for a float parameter is an error). Shapes must match
        exactly, ``strict`` or not. With ``strict=True`` missing and unexpected
        keys are errors too. Either way the errors are gathered into one
        ``RuntimeError`` and nothing is copied. Returns
        ``(missing_keys, unexpected_keys)``.

            RuntimeError: Error(s) in loading state_dict for Linear:
                Missing key(s) in state_dict: "bias".
                size mismatch for weight: copying a param with shape (3, 4) from checkpoint,
                the shape in current model is (4, 3).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"expected a mapping of name -> tensor, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, copies = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            src = value.data if isinstance(value, Tensor) else value
            src = backend.asarray(src, device=target.device)
            if tuple(src.shape) != tuple(target.shape):
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(src.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(target.shape)}."
                )
            elif _dtype_kind(src.dtype) != _dtype_kind(target.dtype):
                errors.append(
                    f"dtype mismatch for {key}: copying a param of dtype {src.dtype} from checkpoint "
                    f"into one of dtype {target.dtype}; cast it first."
                )
            else:
                copies.append((target, src))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(type(self).__name__, "\n\t".join(errors))
            )
        with no_grad():
            for target, src in copies:
                target.data[...] = src  # in place: casts to the parameter's dtype, keeps its array
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (its settings)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
