"""Checkpoints: nested dicts of tensors and JSON metadata in one safetensors file, never pickle.

``torch.save`` pickles, and unpickling runs code named in the file: loading a
stranger's checkpoint can run anything. tinyllm keeps data and structure apart.
A safetensors file (the Hugging Face format) is

    8 bytes    N, the header's length (little-endian unsigned 64-bit)
    N bytes    a JSON header: {name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                               ..., "__metadata__": {string: string}}
    the rest   the raw little-endian bytes of every tensor

It holds only a flat name -> array map and string metadata, so the shape of
the saved object goes into the metadata as JSON, with every array replaced by a
reference to its name (the tree's encoding, in full):

    JSON null, bool, number, string    itself (metadata: step counts, a config, a loss)
    [node, ...]                        a list (tuples come back as lists)
    {"tensor": name}                   an array or Tensor, stored under `name`
    {"dict": [[key, node], ...]}       a dict; keys are strings or ints, order kept

Example:
    save({"step": 3, "model": {"wte.weight": w}}, "ckpt.safetensors")
    -> tensors   {"model.wte.weight": w}
       metadata  {"tinyllm.format": "1",
                  "tinyllm.structure": '{"dict": [["step", 3], ["model",
                      {"dict": [["wte.weight", {"tensor": "model.wte.weight"}]]}]]}'}

Names join the keys with "." (a flat state dict keeps its own names, so other
tools read it as usual); when two paths give the same name ({"a.b": x} and
{"a": {"b": y}}) the later gets a suffix "#1": the structure says which is which.
A safetensors file without tinyllm metadata (from any other tool) loads as a
flat dict.

Files are written atomically: to a temporary file in the same directory,
flushed to disk (fsync), then renamed over the target (``os.replace``), so a
crash mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets

import numpy as np
import safetensors.numpy

from tinyllm import backend
from tinyllm.tensor import Tensor

FORMAT_KEY = "tinyllm.format"
STRUCTURE_KEY = "tinyllm.structure"
FORMAT_VERSION = "1"

# what safetensors.numpy can store (it has no bfloat16 in NumPy)
_STORABLE = frozenset(np.dtype(t) for t in (
    np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
    np.uint64, np.uint32, np.uint16, np.uint8, np.bool_, np.complex64,
))


class CheckpointError(ValueError):
    """A file that is not a readable tinyllm checkpoint (truncated, corrupt, not safetensors)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the path given to ``load`` (also a FileNotFoundError)."""


# ----------------------------------------------------------------------------- save


def _where(path: tuple) -> str:
    return "/".join(str(k) for k in path) or "<root>"


def _encode(obj, path: tuple, tensors: dict):
    """The JSON node for `obj`; arrays are moved to the host and put in `tensors`."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if backend.is_array(obj):
        arr = backend.to_numpy(obj)
        if not arr.flags.c_contiguous:  # safetensors reads the raw memory, in C order
            arr = arr.copy(order="C")  # subtle: not np.ascontiguousarray, which makes 0-d arrays 1-d
        if arr.dtype not in _STORABLE:
            raise TypeError(f"cannot save an array of dtype {arr.dtype} at '{_where(path)}': safetensors "
                            f"stores only {sorted(str(d) for d in _STORABLE)}")
        name = ".".join(str(k) for k in path) or "tensor"
        base, n = name, 0
        while name in tensors:
            n += 1
            name = f"{base}#{n}"
        tensors[name] = arr
        return {"tensor": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"cannot save a dict key of type {type(k).__name__} ({k!r}) at "
                                f"'{_where(path)}': keys must be strings or ints")
            items.append([k, _encode(v, path + (k,), tensors)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, path + (i,), tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    hint = " (a NumPy scalar: convert it with float(x) or int(x))" if isinstance(obj, np.generic) else ""
    raise TypeError(
        f"cannot save a value of type {type(obj).__name__} at '{_where(path)}'{hint}: a checkpoint holds "
        "arrays/Tensors and JSON-able metadata (dict, list, str, int, float, bool, None); "
        "tinyllm never pickles"
    )


def write_atomic(path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new one, never half of one.

    Checkpoints, configs, tokenizer files and rewritten logs go through here (metrics.jsonl lines are appended).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {path}: the directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; not on Windows)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save(obj: dict, path) -> None:
    """Write a (nested) dict of Tensors/arrays and JSON-able metadata to one safetensors file.

        save({"model": model.state_dict(), "optim": opt.state_dict(), "step": 1200}, "ckpt.safetensors")
    """
    if not isinstance(obj, dict):
        raise TypeError(f"save expects a dict (a state dict or a nested dict), got {type(obj).__name__}")
    path = os.fspath(path)
    tensors: dict = {}
    structure = _encode(obj, (), tensors)
    metadata = {FORMAT_KEY: FORMAT_VERSION, STRUCTURE_KEY: json.dumps(structure)}
    write_atomic(path, safetensors.numpy.save(tensors, metadata=metadata))


# ----------------------------------------------------------------------------- load


def _header_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a (validated) safetensors file: read the header by hand."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header.get("__metadata__") or {}


def _decode(node, arrays: dict, to_tensor, path: tuple):
    if isinstance(node, list):
        return [_decode(v, arrays, to_tensor, path + (i,)) for i, v in enumerate(node)]
    if isinstance(node, dict):
        if set(node) == {"tensor"}:
            name = node["tensor"]
            if name not in arrays:
                raise KeyError(f"the structure refers to tensor {name!r} at '{_where(path)}', not in the file")
            return to_tensor(arrays[name])
        if set(node) == {"dict"}:
            return {k: _decode(v, arrays, to_tensor, path + (k,)) for k, v in node["dict"]}
        raise ValueError(f"unknown node {sorted(node)} at '{_where(path)}'")
    return node


def load(path, device: str | None = None) -> dict:
    """Read a file written by ``save`` (or any safetensors file, as a flat dict).

    Arrays come back as Tensors on `device` (default: the default device), dtypes
    as saved; metadata as saved (tuples as lists).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"no checkpoint at {path}: the file does not exist") from None

    def corrupt(why):
        return CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: {why})")

    try:
        arrays = safetensors.numpy.load(data)  # checks the header and that the data covers it
        metadata = _header_metadata(data)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise corrupt(e) from e

    def to_tensor(arr):
        if not arr.flags.writeable:  # subtle: a view of the read-only file bytes; copy it
            arr = arr.copy()
        return Tensor(backend.asarray(arr, device=device))

    if STRUCTURE_KEY not in metadata:  # a plain safetensors file
        return {name: to_tensor(arrays[name]) for name in sorted(arrays)}
    if metadata.get(FORMAT_KEY) != FORMAT_VERSION:
        raise CheckpointError(f"{path} has tinyllm format {metadata.get(FORMAT_KEY)!r}; this tinyllm "
                              f"reads format {FORMAT_VERSION!r} (upgrade tinyllm)")
    try:
        return _decode(json.loads(metadata[STRUCTURE_KEY]), arrays, to_tensor, ())
    except (ValueError, KeyError, TypeError) as e:
        raise corrupt(f"bad structure header: {e}") from e
