"""Files from elsewhere are untrusted: every loader fails with a clear message, fast, and never hangs.

Each test builds one hostile or broken file in tmp_path and checks the exception's type, that its
message says what was wrong and what to do, and (where hanging is the risk) a time bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy

from tinyllm.serialization import (
    FORMAT_KEY,
    FORMAT_VERSION,
    MAX_NESTING,
    STRUCTURE_KEY,
    CheckpointError,
    UnsafePathError,
    UnsupportedDtypeError,
    load,
    save,
    write_atomic,
)


def _raw_safetensors(header: dict, payload: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + payload


# ----------------------------------------------------------------------------- checkpoints (serialization)


def test_deeply_nested_structure_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_bytes(safetensors.numpy.save({"x": np.zeros(2, np.float32)},
                                            metadata={FORMAT_KEY: FORMAT_VERSION, STRUCTURE_KEY: deep}))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"nests deeper than \d+ levels.*re-create it with tinyllm"):
        load(path)
    assert time.perf_counter() - t0 < 2.0


def test_nesting_python_can_parse_but_tinyllm_never_writes_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    deep = "[" * 400 + "]" * 400  # json.loads manages this; the limit is ours
    path.write_bytes(safetensors.numpy.save({"x": np.zeros(2, np.float32)},
                                            metadata={FORMAT_KEY: FORMAT_VERSION, STRUCTURE_KEY: deep}))
    with pytest.raises(CheckpointError, match="nests deeper than"):
        load(path)


def test_save_refuses_what_load_would_refuse_and_keeps_the_limit(tmp_path):
    ok: dict = {"w": np.ones(2, np.float32)}
    for _ in range(MAX_NESTING - 1):
        ok = {"a": ok}
    save(ok, tmp_path / "ok.safetensors")
    assert load(tmp_path / "ok.safetensors")  # the deepest object save accepts loads back
    too_deep = {"a": ok}
    too_deep = {"b": too_deep}
    with pytest.raises(ValueError, match=f"deeper than {MAX_NESTING} levels"):
        save(too_deep, tmp_path / "deep.safetensors")


def test_header_larger_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="MAX_HEADER_BYTES"):
        load(path)


def test_bfloat16_checkpoint_says_unsupported_dtype_and_how_to_convert(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(_raw_safetensors({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4))
    with pytest.raises(UnsupportedDtypeError, match=r"'w' has dtype BF16.*convert the file to float32") as e:
        load(path)
    assert "truncated" not in str(e.value)
    assert isinstance(e.value, CheckpointError) and isinstance(e.value, ValueError)


def test_checkpoint_that_is_a_symlink_is_refused(tmp_path):
    real = tmp_path / "elsewhere.safetensors"
    save({"w": np.ones(2, np.float32)}, real)
    link = tmp_path / "ckpt.safetensors"
    link.symlink_to(real)
    with pytest.raises(UnsafePathError, match="is a symbolic link.*copy the real file"):
        load(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_checkpoint_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    os.mkfifo(path)
    t0 = time.perf_counter()
    with pytest.raises(UnsafePathError, match="not a regular file"):
        load(path)
    assert time.perf_counter() - t0 < 2.0


# ----------------------------------------------------------------------------- stale temporary files


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_tmp_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    stale = tmp_path / f".ckpt.safetensors.{_dead_pid()}.deadbeef.tmp"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh_other = tmp_path / f".other.bin.{_dead_pid()}.deadbeef.tmp"  # another file's: not ours to touch
    fresh_other.write_bytes(b"x")
    os.utime(fresh_other, (old, old))
    save({"w": np.ones(2, np.float32)}, target)
    assert not stale.exists()
    assert fresh_other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, fresh_other.name])


def test_tmp_of_a_live_writer_is_kept_unless_a_day_old(tmp_path):
    target = tmp_path / "log.txt"
    live = tmp_path / f".log.txt.{os.getppid()}.0123abcd.tmp"  # the parent is running: it may be writing
    live.write_bytes(b"x")
    recent_dead = tmp_path / f".log.txt.{_dead_pid()}.0123abce.tmp"  # seconds old: maybe another machine's
    recent_dead.write_bytes(b"x")
    write_atomic(target, b"1")
    assert live.exists() and recent_dead.exists()
    ancient = time.time() - 2 * 86400
    os.utime(live, (ancient, ancient))
    write_atomic(target, b"2")
    assert not live.exists() and recent_dead.exists()
    assert target.read_bytes() == b"2"


def test_killed_writes_do_not_accumulate(tmp_path):
    target = tmp_path / "ckpt.bin"
    code = ("import os, sys; from tinyllm.serialization import write_atomic\n"
            "os.fsync = lambda fd: os._exit(9)  # killed between writing the temp file and the rename\n"
            f"write_atomic({str(target)!r}, b'x' * 1000)\n")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
        for p in tmp_path.glob(".ckpt.bin.*.tmp"):
            old = time.time() - 3600
            os.utime(p, (old, old))
    assert len(list(tmp_path.glob(".ckpt.bin.*.tmp"))) == 1  # each killed run cleaned up the one before it
    write_atomic(target, b"ok")
    assert list(tmp_path.glob(".ckpt.bin.*.tmp")) == []
    assert target.read_bytes() == b"ok"


# ----------------------------------------------------------------------------- tokenizer files


def _byte_ranks() -> dict[bytes, int]:
    return {bytes([i]): i for i in range(256)}


def _bpe_folder_with_pattern(folder, pattern: str):
    """A run folder whose BPE sidecar says `pattern` (edited in, as a hostile sharer would)."""
    from tinyllm.tokenizer import BPETokenizer, save_tokenizer

    path = save_tokenizer(BPETokenizer(_byte_ranks(), "gpt2"), folder)
    side = path.with_name(path.name + ".json")
    meta = json.loads(side.read_text())
    meta["pattern"], meta["pattern_name"] = pattern, None
    side.write_text(json.dumps(meta))
    return path


def test_catastrophic_pattern_in_a_tokenizer_file_is_refused_quickly(tmp_path):
    from tinyllm.tokenizer import BPETokenizer, load_tokenizer
    from tinyllm.tokenizer.patterns import UntrustedPatternError

    path = _bpe_folder_with_pattern(tmp_path, "(a|aa)+$")
    t0 = time.perf_counter()
    with pytest.raises(UntrustedPatternError, match=r"'\(a\|aa\)\+\$' is not one tinyllm knows.*trust_pattern=True"):
        load_tokenizer(tmp_path)
    with pytest.raises(UntrustedPatternError):
        BPETokenizer.load(path)
    assert time.perf_counter() - t0 < 2.0
    assert isinstance(UntrustedPatternError("x"), ValueError)
    # the explicit opt-in loads it (and would run it: we do not encode here)
    assert load_tokenizer(tmp_path, trust_pattern=True).pattern == "(a|aa)+$"


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "o200k", None, "whole"])
def test_known_patterns_load_without_opt_in(tmp_path, pattern):
    from tinyllm.tokenizer import WHOLE_TEXT_PATTERN, BPETokenizer, load_tokenizer, save_tokenizer

    tok = BPETokenizer(_byte_ranks(), WHOLE_TEXT_PATTERN if pattern == "whole" else pattern)
    save_tokenizer(tok, tmp_path)
    back = load_tokenizer(tmp_path)
    assert back.pattern == tok.pattern
    assert back.encode("aaaa b") == tok.encode("aaaa b")


def test_char_tokenizer_missing_field_names_the_field(tmp_path):
    from tinyllm.tokenizer import load_tokenizer

    (tmp_path / "tokenizer.json").write_text(json.dumps({"format": "tinyllm.char", "version": 1}))
    with pytest.raises(ValueError, match=r'has no "chars" field.*re-save it with CharTokenizer.save'):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"format": "tinyllm.char", "version": 1, "chars": "ab"}))
    with pytest.raises(ValueError, match=r'"chars" of type str'):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"format": "tinyllm.char", "version": 1, "chars": ["b", "a"]}))
    with pytest.raises(ValueError, match=r"tokenizer.json: the characters .* must be unique and sorted"):
        load_tokenizer(tmp_path)


def test_deeply_nested_tokenizer_json_is_refused(tmp_path):
    from tinyllm.tokenizer import load_tokenizer

    (tmp_path / "tokenizer.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nests deeper than"):
        load_tokenizer(tmp_path / "tokenizer.json")


@pytest.mark.parametrize("which", ["char", "bpe rank file", "bpe sidecar"])
def test_tokenizer_files_that_are_symlinks_are_refused(tmp_path, which):
    from tinyllm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer, save_tokenizer

    elsewhere, run = tmp_path / "elsewhere", tmp_path / "run"
    tok = CharTokenizer.from_text("hello") if which == "char" else BPETokenizer(_byte_ranks(), "gpt2")
    real = save_tokenizer(tok, elsewhere)
    run.mkdir()
    names = [real.name] if which == "char" else [real.name, real.name + ".json"]
    for name in names:
        linked = (which == "char" or (which == "bpe rank file") == (name == real.name))
        if linked:
            (run / name).symlink_to(elsewhere / name)
        else:
            (run / name).write_bytes((elsewhere / name).read_bytes())
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        load_tokenizer(run)
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        load_tokenizer(run / real.name)


def test_sidecar_rank_file_name_outside_the_folder_is_refused(tmp_path):
    from tinyllm.tokenizer import load_tokenizer

    path = _bpe_folder_with_pattern(tmp_path, None)
    side = path.with_name(path.name + ".json")
    meta = json.loads(side.read_text())
    meta["rank_file"] = "../../etc/passwd"
    side.write_text(json.dumps(meta))
    with pytest.raises(UnsafePathError, match=r"'\.\./\.\./etc/passwd' is not a plain file name"):
        load_tokenizer(tmp_path)


# ----------------------------------------------------------------------------- model folders (nn/pretrained)


def _model_folder(folder, **overrides):
    from tinyllm.nn.config import GPTConfig
    from tinyllm.nn.gpt import GPT

    cfg = GPTConfig(**{**dict(vocab_size=32, context_length=8, n_layer=1, n_head=2, d_model=8), **overrides})
    GPT(cfg).save_pretrained(folder)
    return folder


def _edit_config(folder, **changes):
    d = json.loads((folder / "config.json").read_text())
    d.update(changes)
    (folder / "config.json").write_text(json.dumps(d))


@pytest.mark.parametrize("pos_encoding", ["learned", "rope", "sinusoidal"])
def test_absurd_context_length_is_refused_naming_the_limit(tmp_path, pos_encoding):
    from tinyllm.nn.gpt import GPT

    folder = _model_folder(tmp_path / "m", pos_encoding=pos_encoding)
    _edit_config(folder, context_length=10**12)
    t0 = time.perf_counter()
    if pos_encoding == "rope":  # context_length builds nothing here: the model loads (and refuses longer inputs)
        assert GPT.from_pretrained(folder).config.context_length == 10**12
    else:
        with pytest.raises(ValueError, match=r"context_length=1000000000000.*(holds only|MAX_DERIVED_VALUES)"):
            GPT.from_pretrained(folder)
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize("field", ["vocab_size", "d_model", "n_layer", "d_ff"])
def test_absurd_sizes_are_refused_before_allocating(tmp_path, field):
    from tinyllm.nn.gpt import GPT

    folder = _model_folder(tmp_path / "m")
    _edit_config(folder, **{field: 2**40 if field != "d_model" else 2**40 * 2})
    with pytest.raises(ValueError, match=r"at least [\d,]+ parameters.*model.safetensors holds only.*fix the config"):
        GPT.from_pretrained(folder)


def test_model_folder_with_symlinked_config_or_weights_is_refused(tmp_path):
    from tinyllm.nn.gpt import GPT

    real = _model_folder(tmp_path / "real")
    for name in ("config.json", "model.safetensors"):
        run = tmp_path / f"run-{name}"
        run.mkdir()
        for other in ("config.json", "model.safetensors"):
            if other == name:
                (run / other).symlink_to(real / other)
            else:
                (run / other).write_bytes((real / other).read_bytes())
        with pytest.raises(UnsafePathError if name == "model.safetensors" else ValueError,
                           match="is a symbolic link"):
            GPT.from_pretrained(run)


def test_model_folder_deep_config_json_is_refused(tmp_path):
    from tinyllm.nn.gpt import GPT

    folder = _model_folder(tmp_path / "m")
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nests deeper than"):
        GPT.from_pretrained(folder)


def test_a_rank_file_the_user_names_may_be_a_link_but_not_a_fifo(tmp_path):
    from tinyllm.tokenizer import BPETokenizer
    from tinyllm.tokenizer.rankfile import format_ranks

    real = tmp_path / "downloads" / "ranks.tiktoken"
    real.parent.mkdir()
    real.write_bytes(format_ranks(_byte_ranks()))
    (tmp_path / "gpt2.tiktoken").symlink_to(real)
    assert BPETokenizer.from_tiktoken(tmp_path / "gpt2.tiktoken", pattern="gpt2").ranks == _byte_ranks()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.tiktoken")
        t0 = time.perf_counter()
        with pytest.raises(UnsafePathError, match="not a regular file"):
            BPETokenizer.from_tiktoken(tmp_path / "fifo.tiktoken", pattern="gpt2")
        assert time.perf_counter() - t0 < 2.0


def test_rank_file_with_a_megabyte_token_is_refused_quickly(tmp_path):
    from tinyllm.tokenizer import BPETokenizer
    from tinyllm.tokenizer.rankfile import RankFileError, format_ranks

    ranks = _byte_ranks()
    ranks[b"ab" * 500_000] = 256  # checking every split point would take minutes
    (tmp_path / "r.tiktoken").write_bytes(format_ranks(ranks))
    t0 = time.perf_counter()
    with pytest.raises(RankFileError, match=r"line 257: token .* \(rank 256\) is not two earlier tokens joined") as e:
        BPETokenizer.from_tiktoken(tmp_path / "r.tiktoken", pattern="gpt2")
    assert time.perf_counter() - t0 < 5.0
    assert len(str(e.value)) < 1000  # the token is not pasted whole into the message


def test_special_token_id_far_past_the_ranks_is_refused(tmp_path):
    from tinyllm.tokenizer import load_tokenizer
    from tinyllm.tokenizer.rankfile import RankFileError

    path = _bpe_folder_with_pattern(tmp_path, None)
    side = path.with_name(path.name + ".json")
    meta = json.loads(side.read_text())
    meta["special_tokens"] = {"<|eot|>": 10**12}  # decoding would build a table of 10**12 entries
    side.write_text(json.dumps(meta))
    with pytest.raises(RankFileError, match=r"'<\|eot\|>' has id 1000000000000.*MAX_SPECIAL_GAP"):
        load_tokenizer(tmp_path)


def test_the_commands_refuse_an_unknown_pattern_in_one_line_and_trust_pattern_runs_it(tmp_path, capsys):
    from tinyllm.cli import main

    run = _model_folder(tmp_path / "run", vocab_size=256)
    _bpe_folder_with_pattern(run, r"\w+|\W")  # unknown but harmless: the opt-in must make it work
    assert main(["sample", "--ckpt", str(run), "--prompt", "ab", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm sample: ") and err.count("\n") == 1 and "--trust-pattern" in err
    assert main(["tokenize", "--vocab", str(run), "--no-color", "ab cd"]) == 2
    assert "--trust-pattern" in capsys.readouterr().err
    assert main(["sample", "--ckpt", str(run), "--prompt", "ab", "--max-new-tokens", "2", "--trust-pattern"]) == 0
    assert main(["tokenize", "--vocab", str(run), "--no-color", "--trust-pattern", "--max-tokens", "1",
                 "--start-token", "1", "ab cd"]) == 0
    out = capsys.readouterr().out
    assert "shown: tokens 1..1 of 5 (4 tokens left out" in out
