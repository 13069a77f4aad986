"""Fuzzing every file and flag a user can hand tinyllm: the command works, or it says why in one line.

For random truncations, bit flips, wrong types and absurd sizes of each input (a checkpoint, a model folder,
config.json, the char and BPE tokenizer files, a bare rank file, metrics.jsonl, data files and folders,
dashboard request bodies) and random flag values, each example checks the promises of tinyllm/cli.py:

    exit status 0, or 2 with exactly one line `tinyllm CMD: ...` on stderr (a traceback is a bug)
    nothing written outside the command's output (the whole work folder is compared before and after)
    a refusal changes nothing; an existing run changes only when asked (--resume)
    no example runs past a time bound (file_mutations.TIME_BOUND_S)

Each example copies a tiny trained run (built once per module) into a folder of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import safetensors.numpy
from file_mutations import (
    assert_contract,
    changed,
    dumps,
    json_mutations,
    mutations,
    run_cli,
    snapshot,
    time_bound,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.serialization import CheckpointError, UnsafePathError

TEXT = "the quick brown fox jumps over the lazy dog. a cat sat on the mat!\n" * 30
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "8", "--context-length", "8", "--batch-size", "2",
        "--max-iters", "2", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "0", "--no-progress"]
# 25 examples per test (HYPOTHESIS_MAX_EXAMPLES=500 for a longer hunt, as tests/conftest.py reads it)
fuzz = settings(max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The folder every example works in: the pristine runs and the corpus, then one folder per example."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def runs(work):
    """Two finished 2-step runs of a tiny model: a character tokenizer's and a BPE tokenizer's."""
    from tinyllm.cli import main

    corpus = work / "corpus.txt"
    corpus.write_text(TEXT)
    for name, tok in (("char", "char"), ("bpe", "bpe:270")):
        assert main(["train", "--out", str(work / name), "--data", str(corpus), "--tokenizer", tok, *TINY]) == 0
    return SimpleNamespace(corpus=corpus, char=work / "char", bpe=work / "bpe")


@contextlib.contextmanager
def example(work):
    folder = Path(tempfile.mkdtemp(dir=work, prefix="example-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def check(capsys, work, argv, command, may_change=()):
    """Run the command; check the contract, and that only `may_change` (folders) changed, and only on success
    (or when a run trained and stopped at a NaN: its log grew, its checkpoint and weights stayed)."""
    before = snapshot(work)
    rc, err = run_cli(capsys, argv)
    assert_contract(rc, err, command)
    stopped_at_nan = rc == 2 and ("not finite" in err or "non-finite" in err)
    allowed = [os.path.relpath(p, work) for p in may_change] if rc == 0 or stopped_at_nan else []
    diff = changed(before, snapshot(work))
    outside = {p for p in diff if not any(p == a or p.startswith(a + os.sep) for a in allowed)}
    assert not outside, f"tinyllm {command} (exit {rc}) changed {sorted(outside)}:\n{err}"
    if stopped_at_nan:
        assert not {p for p in diff if p.endswith(".safetensors")}, f"a NaN run wrote {sorted(diff)}"
    return rc


def _replace_tensor(raw: bytes, draw) -> bytes:
    """The safetensors bytes with one tensor of another shape or dtype (the rest and the metadata kept)."""
    n = int.from_bytes(raw[:8], "little")
    metadata = json.loads(raw[8:8 + n]).get("__metadata__")
    arrays = dict(safetensors.numpy.load(raw))
    name = draw(st.sampled_from(sorted(arrays)))
    shape = draw(st.lists(st.integers(0, 9), max_size=3).map(tuple))
    dtype = draw(st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.uint8, np.bool_]))
    arrays[name] = np.ones(shape, dtype)
    if draw(st.booleans()):
        del arrays[name]
        assume(arrays)
    return safetensors.numpy.save(arrays, metadata=metadata)


def _broken_bytes(path: Path, draw, hot: int = 256) -> None:
    path.write_bytes(draw(mutations(path.read_bytes(), hot)))


def _broken_json(path: Path, draw) -> None:
    path.write_bytes(dumps(draw(json_mutations(json.loads(path.read_text())))))


# ----------------------------------------------------------------------------- checkpoints


@fuzz
@given(data=st.data())
def test_a_broken_checkpoint_is_refused_or_resumed(runs, work, capsys, data):
    with example(work) as ex:
        run = Path(shutil.copytree(runs.char, ex / "run"))
        ckpt = run / "ckpt.safetensors"
        raw = ckpt.read_bytes()
        how = data.draw(st.sampled_from(["bytes", "tensor", "metadata"]))
        if how == "bytes":
            ckpt.write_bytes(data.draw(mutations(raw, hot=8 + int.from_bytes(raw[:8], "little"))))
        elif how == "tensor":
            ckpt.write_bytes(_replace_tensor(raw, data.draw))
        else:  # a value of the saved state (configs, step, schedule, random state) of another type or size
            state = tinyllm.load(ckpt, device="cpu")
            meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
            meta = data.draw(json_mutations(meta))
            assume(isinstance(meta, dict))
            try:
                tinyllm.save({**meta, "model": state["model"], "optimizer": state["optimizer"]}, ckpt)
            except ValueError:  # nested past what save writes: load's refusal of that is tested elsewhere
                assume(False)
        try:
            with time_bound():
                tinyllm.load(ckpt)
        except (CheckpointError, UnsafePathError):
            pass
        check(capsys, work, ["train", "--out", run, "--resume", "--max-iters", "3", "--no-progress"], "train",
              may_change=[run])


# ----------------------------------------------------------------------------- model folders


@fuzz
@given(data=st.data())
def test_a_broken_model_folder_is_refused_or_used(runs, work, capsys, data):
    with example(work) as ex:
        run = Path(shutil.copytree(runs.char, ex / "run"))
        which = data.draw(st.sampled_from(["config.json", "config.json bytes", "model.safetensors",
                                           "model.safetensors tensor"]))
        if which == "config.json":
            _broken_json(run / "config.json", data.draw)
        elif which == "config.json bytes":
            _broken_bytes(run / "config.json", data.draw)
        elif which == "model.safetensors":
            raw = (run / "model.safetensors").read_bytes()
            _broken_bytes(run / "model.safetensors", data.draw, hot=8 + int.from_bytes(raw[:8], "little"))
        else:
            (run / "model.safetensors").write_bytes(_replace_tensor((run / "model.safetensors").read_bytes(),
                                                                    data.draw))
        (ex / "prompts.txt").write_text("the cat\nthe cat sat\n")
        out = ex / "out"
        command = data.draw(st.sampled_from(["sample", "attention", "kv-viz"]))
        argv = {"sample": ["sample", "--ckpt", run, "--prompt", "the", "--max-new-tokens", "3", "--seed", "0"],
                "attention": ["attention", "--ckpt", run, "--prompt", "the cat", "--out", out / "heads.png"],
                "kv-viz": ["kv-viz", "--ckpt", run, "--prompts", ex / "prompts.txt", "--out", out / "kv.html",
                           "--block-size", "2"]}[command]
        check(capsys, work, argv, command, may_change=[out])


# ----------------------------------------------------------------------------- tokenizer files


@fuzz
@given(data=st.data())
def test_a_broken_tokenizer_file_is_refused_or_used(runs, work, capsys, data):
    with example(work) as ex:
        which = data.draw(st.sampled_from(["char json", "char bytes", "bpe sidecar json", "bpe sidecar bytes",
                                           "bpe ranks", "bpe ranks, sidecar updated"]))
        run = Path(shutil.copytree(runs.char if which.startswith("char") else runs.bpe, ex / "run"))
        if which.startswith("char"):
            path = run / "tokenizer.json"
            (_broken_json if which == "char json" else _broken_bytes)(path, data.draw)
        elif which.startswith("bpe sidecar"):
            path = run / "tokenizer.tiktoken.json"
            (_broken_json if which == "bpe sidecar json" else _broken_bytes)(path, data.draw)
        else:  # with the sidecar's checksum updated, the rank file's own checks are what refuses it
            path = run / "tokenizer.tiktoken"
            _broken_bytes(path, data.draw)
            if which.endswith("updated"):
                side = json.loads((run / "tokenizer.tiktoken.json").read_text())
                side["rank_file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                (run / "tokenizer.tiktoken.json").write_text(json.dumps(side))
        command = data.draw(st.sampled_from(["tokenize", "sample"]))
        if command == "tokenize":
            where = data.draw(st.sampled_from([run, run / ("tokenizer.json" if which.startswith("char")
                                                           else "tokenizer.tiktoken")]))
            argv = ["tokenize", "--vocab", where, "--no-color", "the cat sat"]
        else:
            argv = ["sample", "--ckpt", run, "--prompt", "the", "--max-new-tokens", "3", "--seed", "0"]
        check(capsys, work, argv, command)


@fuzz
@given(data=st.data())
def test_a_broken_bare_rank_file_is_refused_or_used(runs, work, capsys, data):
    with example(work) as ex:
        ranks = ex / "ranks.tiktoken"
        ranks.write_bytes(data.draw(mutations((runs.bpe / "tokenizer.tiktoken").read_bytes(), hot=4000)))
        check(capsys, work, ["tokenize", "--gpt2-ranks", ranks, "--no-color", "the cat sat"], "tokenize")


# ----------------------------------------------------------------------------- metrics.jsonl


@fuzz
@given(data=st.data())
def test_a_broken_metrics_log_is_refused_or_resumed(runs, work, capsys, data):
    with example(work) as ex:
        run = Path(shutil.copytree(runs.char, ex / "run"))
        metrics = run / "metrics.jsonl"
        lines = metrics.read_text().splitlines()
        how = data.draw(st.sampled_from(["bytes", "record", "torn"]))
        if how == "bytes":
            _broken_bytes(metrics, data.draw, hot=10_000)
        elif how == "record":
            i = data.draw(st.integers(0, len(lines) - 1))
            lines[i] = json.dumps(data.draw(json_mutations(json.loads(lines[i]))))
            metrics.write_text("\n".join(lines) + "\n")
        else:  # the process died mid-write
            metrics.write_text(metrics.read_text() + data.draw(st.sampled_from(['{"step": 9, "tra', "{", "\xff"])))
        check(capsys, work, ["train", "--out", run, "--resume", "--max-iters", "3", "--no-progress"], "train",
              may_change=[run])


# ----------------------------------------------------------------------------- data files and folders


def _data_bytes():
    return st.one_of(st.binary(max_size=2000), st.text(max_size=400).map(lambda t: t.encode("utf-8", "replace")),
                     st.just(TEXT.encode("latin-1")), st.just(("é" + TEXT).encode("latin-1")),
                     st.just(("\ufeff" + TEXT.replace("\n", "\r\n")).encode()), st.just(TEXT[:20].encode()))


@fuzz
@given(data=st.data())
def test_a_strange_data_file_or_folder_trains_or_is_refused(runs, work, capsys, data):
    with example(work) as ex:
        if data.draw(st.booleans()):
            where = ex / "data.txt"
            where.write_bytes(data.draw(st.one_of(_data_bytes(), mutations(TEXT.encode(), hot=2000))))
        else:
            where = ex / "corpus"
            where.mkdir()
            names = data.draw(st.lists(st.sampled_from(["a.txt", "b.TXT", "sub/c.txt", ".hidden.txt", "notes.md",
                                                        "sub/deeper/d.txt", "link.txt", "loop.txt", "fifo.txt"]),
                                       max_size=4, unique=True))
            for name in names:
                path = where / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if name == "link.txt":
                    path.symlink_to(runs.corpus)
                elif name == "loop.txt":
                    path.symlink_to(path)
                elif name == "fifo.txt" and hasattr(os, "mkfifo"):
                    os.mkfifo(path)
                else:
                    path.write_bytes(data.draw(_data_bytes()))
        new = ex / "new"
        rc = check(capsys, work, ["train", "--out", new, "--data", where, *TINY], "train", may_change=[new])
        assert rc == 0 or not new.exists()


# ----------------------------------------------------------------------------- flags


def _train_flags():
    from tinyllm.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return sorted(o for a in train._actions for o in a.option_strings
                  if o.startswith("--") and a.nargs != 0 and o not in ("--out", "--data", "--help"))


# values that run quickly whatever flag they land on; sizes may be absurd (they must be refused, not tried)
_COUNT_FLAGS = ("--max-iters", "--eval-iters", "--eval-interval", "--log-interval", "--sample-tokens",
                "--warmup-iters", "--lr-decay-iters")
_VALUES = st.one_of(st.integers(-2, 4).map(str),
                    st.sampled_from(["0.5", "1e-9", "-0.0", "nan", "inf", "-inf", "1e400", "none", "true", "false",
                                     "", " ", "char", "bpe:256", "bpe:100", "bpe:x", "rope", "alibi", "sinusoidal",
                                     "rmsnorm", "silu", "flash", "cuda", "strict", "cpu", "0x10", "1_0", "٣"]),
                    st.text(max_size=6))
_HUGE = st.sampled_from(["100000", "1000000000000", str(2**63), "1" + "0" * 40])


@fuzz
@given(data=st.data())
def test_random_train_flags_train_or_are_refused(runs, work, capsys, data):
    flags = _train_flags()
    with example(work) as ex:
        argv = ["train", "--data", runs.corpus, *TINY]
        for flag in data.draw(st.lists(st.sampled_from(flags), min_size=1, max_size=3, unique=True)):
            huge = flag not in _COUNT_FLAGS and data.draw(st.integers(0, 4)) == 0
            argv += [flag, data.draw(_HUGE if huge else _VALUES)]
        existing = data.draw(st.booleans())  # into an existing run without --resume/--force: never changed
        out = Path(shutil.copytree(runs.char, ex / "run")) if existing else ex / "new"
        argv += ["--out", out]
        rc = check(capsys, work, argv, "train", may_change=[] if existing else [out])
        assert not existing or rc == 2
        assert existing or rc == 0 or not out.exists()


@fuzz
@given(data=st.data())
def test_random_flags_of_the_other_commands_work_or_are_refused(runs, work, capsys, data):
    with example(work) as ex:
        (ex / "prompts.txt").write_bytes(data.draw(st.one_of(st.just(b"the cat\nthe cat sat\n"), _data_bytes())))
        command = data.draw(st.sampled_from(["sample", "tokenize", "kv-viz", "attention"]))
        value = _VALUES if command != "sample" else st.one_of(_VALUES, st.floats().map(repr))
        flags = {"sample": ["--temperature", "--top-k", "--top-p", "--min-p", "--repetition-penalty",
                            "--presence-penalty", "--frequency-penalty", "--seed", "--num-samples",
                            "--max-new-tokens", "--prompt"],
                 "tokenize": ["--max-tokens", "--start-token", "--html"],
                 "kv-viz": ["--block-size", "--max-bytes", "--prompts"],
                 "attention": ["--prompt", "--out"]}[command]
        argv = {"sample": ["sample", "--ckpt", runs.char, "--max-new-tokens", "2"],
                "tokenize": ["tokenize", "--vocab", runs.char, "--no-color", "the cat"],
                "kv-viz": ["kv-viz", "--ckpt", runs.char, "--prompts", ex / "prompts.txt", "--out", ex / "kv.html"],
                "attention": ["attention", "--ckpt", runs.char, "--prompt", "the cat", "--out", ex / "a.png"]}[command]
        for flag in data.draw(st.lists(st.sampled_from(flags), min_size=1, max_size=3, unique=True)):
            v = data.draw(value)
            # a file flag's value is a path inside ex, whatever the text ("", " ", "/", ".."): nothing lands elsewhere
            inside = ex / "o" / v.lstrip("/").replace("..", "__")
            argv += [flag, inside if flag in ("--html", "--out", "--prompts") else v]
        check(capsys, work, argv, command, may_change=[ex])


# ----------------------------------------------------------------------------- dashboard request bodies


@fuzz
@given(data=st.data())
def test_a_broken_dashboard_body_is_answered_200_or_400(runs, data):
    from tinyllm.train import load_run
    from tinyllm.viz.dashboard.server import answer, parse_body

    model, tok = load_run(runs.char)
    body = dumps(dict(prompt="the cat", temperature=0.8, top_k=5, top_p=0.9, n_samples=1, max_new_tokens=3))
    raw = data.draw(st.one_of(mutations(body, hot=len(body)), json_mutations(json.loads(body)).map(dumps)))
    with time_bound():
        status, out = answer(model, tok, lambda: parse_body(raw))
    assert status in (200, 400), out
