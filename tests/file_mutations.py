"""Broken files and the promises a command keeps about them: the tools of tests/test_fuzz_inputs.py.

    mutations(data, hot=n)   Hypothesis strategy: `data` truncated, bits flipped, a span replaced, bytes inserted,
                             emptied, or random bytes; flips and cuts land in the first `hot` bytes half the time
                             (a safetensors header, the top of a JSON file), where they break the most
    json_mutations(obj)      Hypothesis strategy: `obj` with one value swapped for another type or an absurd size
                             (None, a string, 10**30, -1, NaN, Infinity, a list 300 deep), a key dropped, or added
    snapshot(root)           every file and folder under root: {relative path: (bytes, mtime_ns)}, links not followed
    run_cli(capsys, argv)    tinyllm.cli.main(argv) in this process, under a time bound -> (exit status, stderr)
    assert_contract(...)     exit 0, or exit 2 with exactly one line `tinyllm CMD: ...` on stderr

Examples:
    mutations(b"abcdef")  draws e.g. b"abc", b"abcdgf", b"ab\\x00\\xffef", b""
    json_mutations({"n_layer": 1, "d": [1, 2]})  draws e.g. {"n_layer": None, "d": [1, 2]}, {"d": [1, 2]}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import stat

from hypothesis import strategies as st

TIME_BOUND_S = 30.0  # one command on a tiny model takes well under a second; a hang would take forever


class Hang(BaseException):
    """A command ran past its time bound (a BaseException, so no `except Exception` in tinyllm swallows it)."""


@contextlib.contextmanager
def time_bound(seconds: float = TIME_BOUND_S):
    """Raise Hang in this (the main) thread if the block runs longer than `seconds`."""
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------- bytes


@st.composite
def mutations(draw, data: bytes, hot: int = 256):
    n = len(data)
    kind = draw(st.sampled_from(["truncate", "flip", "flip", "replace", "insert", "empty", "random"]))
    if kind == "empty" or n == 0:
        return b""
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    where = st.one_of(st.integers(0, min(n, hot) - 1), st.integers(0, n - 1))
    if kind == "truncate":
        return data[:draw(where)]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            out[draw(where)] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    i = draw(where)
    junk = draw(st.one_of(st.binary(min_size=1, max_size=16),
                          st.sampled_from([b"\x00", b"\xff\xfe", b"\n", b'"', b"{", b"]", b"\\u0000", b"9" * 40])))
    if kind == "insert":
        return data[:i] + junk + data[i:]
    return data[:i] + junk + data[i + len(junk):]


# ----------------------------------------------------------------------------- JSON values


def _paths(obj, prefix=()):
    """Every path to a value inside a parsed JSON value (the root too): [(), ("a",), ("a", 0), ...]."""
    out, stack = [], [(obj, prefix)]
    while stack:
        node, path = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend((v, path + (k,)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(node))
    return sorted(out, key=lambda p: tuple(map(str, p)))


def _set(obj, path, value):
    if not path:
        return value
    node = obj
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return obj


def _deep(n: int):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


STRANGE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 10**12, 2**63, 10**30, 1.5, -0.0, 1e308, math.nan, math.inf, -math.inf, "", "none",
                     "(a|aa)+$", "../../etc/passwd", "\x00", "é" * 3]),
    st.text(max_size=8), st.lists(st.integers(-2, 300), max_size=4), st.just({}), st.just(_deep(300)),
)


@st.composite
def json_mutations(draw, obj):
    """A deep copy of `obj` with one change: a value replaced, a key dropped, or an unknown key added."""
    obj = json.loads(json.dumps(obj))
    path = draw(st.sampled_from(_paths(obj)))
    kind = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if kind == "drop" and path and isinstance(parent, dict):
        del parent[path[-1]]
        return obj
    if kind == "add":
        target = parent[path[-1]] if path else obj
        if isinstance(target, dict):
            target[draw(st.sampled_from(["bogus", "", "__proto__"]))] = draw(STRANGE_VALUES)
            return obj
    return _set(obj, path, draw(STRANGE_VALUES))


def dumps(obj) -> bytes:
    """JSON bytes as Python writes them (NaN and Infinity included: tinyllm must read such files too)."""
    return json.dumps(obj).encode()


# ----------------------------------------------------------------------------- the promises


def snapshot(root) -> dict:
    """{path relative to root: (bytes, mtime_ns)} for files, (None, None) for folders and other entries."""
    out = {}
    root = os.fspath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            st_ = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISREG(st_.st_mode):
                with open(full, "rb") as f:
                    out[rel] = (f.read(), st_.st_mtime_ns)
            else:
                out[rel] = (None, None)
    return out


def changed(before: dict, after: dict) -> set:
    """The paths added, removed or changed between two snapshots."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def run_cli(capsys, argv) -> tuple[int, str]:
    """(exit status, stderr) of `tinyllm ARGV` run in this process; argparse's exit is a status too."""
    from tinyllm.cli import main

    capsys.readouterr()
    try:
        with time_bound():
            rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def assert_contract(rc, err: str, command: str) -> None:
    """0, or 2 and one line `tinyllm COMMAND: ...` (argparse's refusal: its usage, then that one line)."""
    if rc == 0:
        return
    lines = err.strip("\n").splitlines()
    assert rc == 2, f"exit status {rc}:\n{err}"
    if lines and lines[-1].startswith(f"tinyllm {command}: error: ") and lines[0].startswith("usage: "):
        return  # a flag argparse refused: usage first, the reason on the last line
    assert len(lines) == 1 and lines[0].startswith(f"tinyllm {command}: "), err
