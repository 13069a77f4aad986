"""The strict test device: NumPy arrays that refuse to be converted to NumPy implicitly.

A CuPy array raises when code hands it to NumPy (``np.asarray(x)``,
``np.exp(x)``, ``x + host_array``): the place where a library written for the
CPU breaks on a GPU. ``StrictArray`` behaves the same on a machine without a
GPU, so the whole test suite can prove that no op takes a silent trip to the
host. Explicit transfers (``tinyllm.to_numpy``, ``.get()``) are allowed and
counted, and so are scalar syncs (``float(x)``, ``x.item()``), which CuPy allows.

    >>> x = StrictArray(np.ones(3))
    >>> strict.exp(x)            # the strict module: NumPy's namespace, wrapped
    StrictArray(array([2.71828183, 2.71828183, 2.71828183]))
    >>> np.exp(x)                # raises StrictTransferError

Length: ~350 lines, most of them StrictArray's operator table (a pair of lines per
special method): a list to look things up in, not logic to hold in one's head.
"""

from __future__ import annotations

import functools
import types

import numpy as np


class StrictTransferError(TypeError):
    """Raised when a strict-device array is silently converted to NumPy."""


def _refuse(what: str):
    raise StrictTransferError(
        f"implicit transfer of a 'strict' device array to NumPy ({what}); a CuPy array "
        "would refuse this too. Keep the computation on the array's own module "
        "(xp = tinyllm.backend.of(x)) or call tinyllm.to_numpy(x) explicitly."
    )


def _unwrap(v, allow_host: bool):
    """StrictArray -> ndarray; refuse host ndarrays where CuPy would."""
    if type(v) is StrictArray:
        return v._a
    if isinstance(v, np.ndarray) and not allow_host and v.ndim > 0:
        raise StrictTransferError(
            "mixing a host NumPy array with a 'strict' device array; move it first "
            "with tinyllm.backend.asarray(x, device=...) (CuPy refuses this too)"
        )
    if isinstance(v, (tuple, list)):
        return type(v)(_unwrap(u, allow_host) for u in v)
    if isinstance(v, dict):  # keyword arguments, e.g. out=
        return {k: _unwrap(u, allow_host) for k, u in v.items()}
    return v


def _wrap(v):
    """ndarray (or NumPy scalar) -> StrictArray; CuPy returns 0-d arrays, not scalars."""
    if isinstance(v, np.ndarray):
        return StrictArray(v)
    if isinstance(v, np.generic):
        return StrictArray(np.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(u) for u in v)
    if isinstance(v, list):
        return [_wrap(u) for u in v]
    return v


class StrictArray:
    """A NumPy array in a box that refuses to be opened implicitly (like a CuPy array)."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a: np.ndarray):
        self._a = a

    # --- what NumPy would use to convert us: refuse all of it
    def __array__(self, dtype=None, copy=None):
        _refuse("__array__, e.g. np.asarray(x)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # `np.float32(2) * x` lands here; CuPy accepts NumPy *scalars*, so do we.
        # Any NumPy function applied to a device array (np.exp(x)) is refused.
        if method == "__call__" and not kwargs and any(isinstance(v, np.generic) for v in inputs):
            if all(isinstance(v, (StrictArray, np.generic, int, float, bool)) for v in inputs):
                return _wrap(ufunc(*_unwrap(inputs, False)))
        _refuse(f"NumPy ufunc np.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        _refuse(f"NumPy function np.{func.__name__}")

    def __iter__(self):
        _refuse("iteration over a device array; use tinyllm.to_numpy(x) first")

    # --- scalar conversions synchronize with the device; CuPy allows them, we count them
    def _scalar(self, kind):
        _STATS["scalar"] += 1
        return kind(self._a)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        return self._scalar(int)

    def item(self):
        _STATS["scalar"] += 1
        return self._a.item()

    def get(self):  # CuPy's explicit copy to host (tinyllm.to_numpy does the same)
        _STATS["explicit"] += 1
        return self._a

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: StrictArray(self._a.T))
    flags = property(lambda self: self._a.flags)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    # --- operators, written out: the same operator on the NumPy array inside, the other
    # operand unwrapped (a host NumPy array is refused, as CuPy refuses it)

    def __add__(self, other):
        return _wrap(self._a + _unwrap(other, False))

    def __radd__(self, other):
        return _wrap(_unwrap(other, False) + self._a)

    def __iadd__(self, other):
        self._a += _unwrap(other, False)
        return self

    def __sub__(self, other):
        return _wrap(self._a - _unwrap(other, False))

    def __rsub__(self, other):
        return _wrap(_unwrap(other, False) - self._a)

    def __isub__(self, other):
        self._a -= _unwrap(other, False)
        return self

    def __mul__(self, other):
        return _wrap(self._a * _unwrap(other, False))

    def __rmul__(self, other):
        return _wrap(_unwrap(other, False) * self._a)

    def __imul__(self, other):
        self._a *= _unwrap(other, False)
        return self

    def __truediv__(self, other):
        return _wrap(self._a / _unwrap(other, False))

    def __rtruediv__(self, other):
        return _wrap(_unwrap(other, False) / self._a)

    def __itruediv__(self, other):
        self._a /= _unwrap(other, False)
        return self

    def __floordiv__(self, other):
        return _wrap(self._a // _unwrap(other, False))

    def __rfloordiv__(self, other):
        return _wrap(_unwrap(other, False) // self._a)

    def __ifloordiv__(self, other):
        self._a //= _unwrap(other, False)
        return self

    def __mod__(self, other):
        return _wrap(self._a % _unwrap(other, False))

    def __rmod__(self, other):
        return _wrap(_unwrap(other, False) % self._a)

    def __imod__(self, other):
        self._a %= _unwrap(other, False)
        return self

    def __pow__(self, other):
        return _wrap(self._a ** _unwrap(other, False))

    def __rpow__(self, other):
        return _wrap(_unwrap(other, False) ** self._a)

    def __ipow__(self, other):
        self._a **= _unwrap(other, False)
        return self

    def __matmul__(self, other):
        return _wrap(self._a @ _unwrap(other, False))

    def __rmatmul__(self, other):
        return _wrap(_unwrap(other, False) @ self._a)

    def __imatmul__(self, other):
        self._a @= _unwrap(other, False)
        return self

    def __and__(self, other):
        return _wrap(self._a & _unwrap(other, False))

    def __rand__(self, other):
        return _wrap(_unwrap(other, False) & self._a)

    def __iand__(self, other):
        self._a &= _unwrap(other, False)
        return self

    def __or__(self, other):
        return _wrap(self._a | _unwrap(other, False))

    def __ror__(self, other):
        return _wrap(_unwrap(other, False) | self._a)

    def __ior__(self, other):
        self._a |= _unwrap(other, False)
        return self

    def __xor__(self, other):
        return _wrap(self._a ^ _unwrap(other, False))

    def __rxor__(self, other):
        return _wrap(_unwrap(other, False) ^ self._a)

    def __ixor__(self, other):
        self._a ^= _unwrap(other, False)
        return self

    def __lt__(self, other):
        return _wrap(self._a < _unwrap(other, False))

    def __le__(self, other):
        return _wrap(self._a <= _unwrap(other, False))

    def __gt__(self, other):
        return _wrap(self._a > _unwrap(other, False))

    def __ge__(self, other):
        return _wrap(self._a >= _unwrap(other, False))

    def __eq__(self, other):
        return _wrap(self._a == _unwrap(other, False))

    def __ne__(self, other):
        return _wrap(self._a != _unwrap(other, False))

    def __neg__(self):
        return StrictArray(-self._a)

    def __pos__(self):
        return StrictArray(+self._a)

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    __hash__ = None  # mutable, like ndarray

    # --- methods: forward to NumPy, unwrap arguments, wrap results
    def __getattr__(self, name):
        if name in ("__array_interface__", "__array_struct__", "__dlpack__", "__cuda_array_interface__"):
            _refuse(name)
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, False), **_unwrap(kwargs, False)))

        return method

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, False)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, False)] = _unwrap(value, False)


class _StrictModule(types.ModuleType):
    """The array module of the strict device: NumPy's namespace, wrapped.

    Functions unwrap StrictArray arguments, refuse host arrays (except in the
    explicit host->device constructors ``asarray``/``array``), and wrap results.
    Types (``float32``...) and constants pass through unchanged.
    """

    _HOST_OK = frozenset({"asarray", "array", "ascontiguousarray", "frombuffer"})

    def __init__(self, np_module, name="tinyllm.strict"):
        super().__init__(name)
        self._np = np_module

    def __getattr__(self, name):
        attr = getattr(self._np, name)
        if isinstance(attr, types.ModuleType):  # np.linalg, np.random...
            sub = _StrictModule(attr, f"{self.__name__}.{name}")
            setattr(self, name, sub)
            return sub
        if isinstance(attr, type) or not callable(attr):
            return attr
        allow_host = name in self._HOST_OK

        @functools.wraps(attr)
        def fn(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, allow_host), **_unwrap(kwargs, allow_host)))

        fn.at = getattr(attr, "at", None)  # ufunc.at is reached through scatter_add below
        setattr(self, name, fn)
        return fn


strict = _StrictModule(np)


def scatter_add(target: StrictArray, index, values) -> None:
    """In place: target[index] += values on the strict device, repeated indices accumulating (np.add.at)."""
    np.add.at(target._a, _unwrap(index, False), _unwrap(values, False))

# Transfers off the strict device: explicit ones (to_numpy) and scalar syncs (float(x), x.item()).
_STATS = {"explicit": 0, "scalar": 0}


def transfer_stats() -> dict:
    """Counts of strict-device transfers to the host since the last reset."""
    return dict(_STATS)


def reset_transfer_stats() -> None:
    _STATS["explicit"] = 0
    _STATS["scalar"] = 0
