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
crash mid-write leaves the previous checkpoint whole. A temporary file left by a
writer that was killed is removed by the next write of the same file.

A checkpoint may come from a stranger, so reading one is bounded: the file must
be a regular file, not a symbolic link (read_regular_file: a link in a shared
folder can point anywhere on your machine, a FIFO would block forever); the
header at most MAX_HEADER_BYTES, its JSON at most MAX_JSON_DEPTH deep; every
dtype one NumPy can hold (bfloat16 and float8 are refused by name, with the fix).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import time

import numpy as np
import safetensors.numpy

from tinyllm import backend
from tinyllm.tensor import Tensor

FORMAT_KEY = "tinyllm.format"
STRUCTURE_KEY = "tinyllm.structure"
FORMAT_VERSION = "1"

MAX_HEADER_BYTES = 64 * 2**20  # a GPT-2 header is ~20 KB; safetensors itself stops at 100 MB
MAX_NESTING = 64               # levels of dicts/lists in a saved object (save refuses deeper)
MAX_JSON_DEPTH = 3 * MAX_NESTING + 8  # a dict level is 3 JSON levels: {"dict": [[key, node]]}

# safetensors dtype names NumPy can hold, and those it cannot (no bfloat16/float8 in NumPy)
_READABLE_DTYPES = frozenset({"F64", "F32", "F16", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL",
                              "C64"})

# what safetensors.numpy can store (it has no bfloat16 in NumPy)
_STORABLE = frozenset(np.dtype(t) for t in (
    np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
    np.uint64, np.uint32, np.uint16, np.uint8, np.bool_, np.complex64,
))


class CheckpointError(ValueError):
    """A file that is not a readable tinyllm checkpoint (truncated, corrupt, not safetensors)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the path given to ``load`` (also a FileNotFoundError)."""


class UnsupportedDtypeError(CheckpointError):
    """A safetensors file holding a dtype NumPy cannot represent (bfloat16, float8): convert it to float32."""


class UnsafePathError(ValueError):
    """A file tinyllm refuses to read: a symbolic link, not a regular file, or a name leading outside its folder."""


def read_regular_file(path, what: str = "file", follow_symlinks: bool = False) -> bytes:
    """The bytes of `path`, which must be a regular file and not a symbolic link (UnsafePathError otherwise).

    Files in a run folder come from whoever shared it: a link could point at any file on this
    machine, and a FIFO would make the read block forever. O_NOFOLLOW refuses the link at the
    open itself (no gap between a check and the open); O_NONBLOCK keeps a FIFO from blocking
    the open, and fstat then refuses it. A missing file raises FileNotFoundError, as open does.
    follow_symlinks=True is for a file the user named themselves (a downloaded rank file): a link is
    followed, but its target must still be a regular file.
    """
    path = os.fspath(path)
    link = UnsafePathError(f"{path} is a symbolic link; tinyllm does not follow links when it reads a {what} "
                           "(a link in a shared folder can point anywhere on your machine): copy the real file "
                           "in its place")
    if os.path.islink(path) and not follow_symlinks:
        raise link
    nofollow = 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the link appeared after the check
            raise link from None
        raise
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{path} is a folder, not a {what}")
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"{path} is not a regular file (a FIFO, socket or device); a {what} must be "
                                  "a plain file")
        return f.read()


def check_file_name(name, what: str = "file") -> str:
    """A file name read from inside a file (a sidecar's "rank_file"): one plain name in the same folder.

    check_file_name("tokenizer.tiktoken") -> "tokenizer.tiktoken";  check_file_name("../x") -> UnsafePathError
    """
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafePathError(f"the {what} name {name!r} is not a plain file name in the same folder (a name with "
                              "'..' or a path could point outside it); the file was not written by tinyllm or was "
                              "edited: fix the name or re-save the file")
    return name


def json_depth(obj) -> int:
    """How deeply lists/dicts nest in a parsed JSON value, without recursion: json_depth([[1], {}]) -> 2."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (list, dict)):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return depth


def parse_json(text, source: str, max_depth: int = MAX_JSON_DEPTH):
    """json.loads(text), refusing nesting deeper than max_depth with a ValueError that names `source`.

    Python's json parser recurses: a file of 100,000 "[" would end in RecursionError, not a message.
    """
    too_deep = ValueError(f"{source}: its JSON nests deeper than {max_depth} levels; tinyllm never writes such a "
                          "file, so it was made elsewhere or tampered with: re-create it with tinyllm")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise too_deep from None
    if json_depth(obj) > max_depth:
        raise too_deep
    return obj


# ----------------------------------------------------------------------------- save


def _where(path: tuple) -> str:
    return "/".join(str(k) for k in path) or "<root>"


def _encode(obj, path: tuple, tensors: dict):
    """The JSON node for `obj`; arrays are moved to the host and put in `tensors`."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if len(path) > MAX_NESTING:
        raise ValueError(f"cannot save: the object nests deeper than {MAX_NESTING} levels at "
                         f"'{_where(path[:8])}/...'; flatten it (load refuses deeper files)")
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
    _remove_stale_tmp(directory, os.path.basename(path))
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


STALE_TMP_AGE_S = 60.0  # a temporary file this old whose writer is gone is removed


def _remove_stale_tmp(directory: str, base: str) -> None:
    """Delete the temporary files of `base` (.<base>.<pid>.<hex>.tmp) that killed writers left behind.

    A file is stale when its writer's pid is no longer running here and it has not been touched
    for STALE_TMP_AGE_S (the age guards a writer on another machine sharing the folder), or when
    it is a day old whatever its pid says (pids are reused). So killed runs do not pile them up.
    """
    pattern = re.compile(rf"\.{re.escape(base)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            age = now - os.lstat(full).st_mtime
            if age > 86400 or (age > STALE_TMP_AGE_S and not _pid_alive(int(m.group(1)))):
                os.unlink(full)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # subtle: on Windows os.kill(pid, 0) would terminate the process
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError, ValueError):
        return True  # exists (another user's), or we cannot tell: keep the file
    return True


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


def _read_header(data: bytes, path: str) -> dict:
    """The JSON header of safetensors bytes, with its size, depth and dtypes checked first."""
    if len(data) < 8:
        raise CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: "
                              f"{len(data)} bytes, shorter than the 8-byte header length)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} is not a valid tinyllm checkpoint (its header claims {n:,} bytes, over "
                              f"tinyllm's limit of {MAX_HEADER_BYTES:,}, MAX_HEADER_BYTES; a checkpoint's metadata "
                              "is small: the file is corrupt or not a checkpoint)")
    if 8 + n > len(data):
        raise CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: the header claims "
                              f"{n:,} bytes, the file has {len(data) - 8:,} after the length)")
    try:
        header = parse_json(data[8:8 + n], f"{path} (safetensors header)")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: bad header JSON: "
                              f"{e})") from None
    except ValueError as e:  # nested too deep
        raise CheckpointError(str(e)) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: the header is "
                              "not a JSON object)")
    for name, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) and name != "__metadata__" else None
        if isinstance(dtype, str) and dtype not in _READABLE_DTYPES:
            raise UnsupportedDtypeError(
                f"{path}: tensor {name!r} has dtype {dtype}, which NumPy (and so tinyllm) cannot hold; convert "
                "the file to float32 first, e.g. with PyTorch: safetensors.torch.save_file({k: v.float() for k, v "
                "in safetensors.torch.load_file(src).items()}, dst)")
    return header


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
        data = read_regular_file(path, "checkpoint")
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"no checkpoint at {path}: the file does not exist") from None

    def corrupt(why):
        return CheckpointError(f"{path} is not a valid tinyllm checkpoint (truncated or corrupt: {why})")

    header = _read_header(data, path)
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise corrupt("__metadata__ is not a JSON object")
    try:
        arrays = safetensors.numpy.load(data)  # checks the header and that the data covers it
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
    structure = metadata[STRUCTURE_KEY]
    if not isinstance(structure, str):
        raise corrupt("the structure metadata is not a string")
    try:
        structure = parse_json(structure, f"{path} (its {STRUCTURE_KEY} metadata)")
    except json.JSONDecodeError as e:
        raise corrupt(f"bad structure header: {e}") from None
    except ValueError as e:  # nested too deep
        raise CheckpointError(str(e)) from None
    try:
        return _decode(structure, arrays, to_tensor, ())
    except (ValueError, KeyError, TypeError) as e:
        raise corrupt(f"bad structure header: {e}") from e
