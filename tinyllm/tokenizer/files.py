"""Tokenizers in files and run folders: save_tokenizer and load_tokenizer, for every kind.

Every tokenizer file says what it is in JSON: a character tokenizer's file is JSON
itself, a BPE rank file has a JSON sidecar next to it. load_tokenizer reads the
"format" field there and hands the file to the class that wrote it:

    tokenizer.json                                  {"format": "tinyllm.char", ...}  -> CharTokenizer
    tokenizer.tiktoken + tokenizer.tiktoken.json    {"format": "tinyllm-bpe", ...}   -> BPETokenizer

A run folder holds one tokenizer, under its class's ``file_name``. Worked example::

    save_tokenizer(CharTokenizer.from_text("hello"), "out/run")    -> Path("out/run/tokenizer.json")
    load_tokenizer("out/run") == load_tokenizer("out/run/tokenizer.json") == CharTokenizer.from_text("hello")

A ``tokenizer.json`` whose JSON has another format (a Hugging Face tokenizer) is
not ours: load_tokenizer says so rather than guess.

A run folder may come from a stranger: a tokenizer file or sidecar that is a
symbolic link is refused (serialization.read_regular_file), and a BPE file whose
split pattern tinyllm does not know loads only with ``trust_pattern=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tinyllm.serialization import parse_json, read_regular_file

from .base import Tokenizer
from .bpe import BPETokenizer
from .char import CharTokenizer

KINDS: tuple[type[Tokenizer], ...] = (CharTokenizer, BPETokenizer)
FORMATS: dict[str, type[Tokenizer]] = {cls.format: cls for cls in KINDS}


def _kinds_text() -> str:
    return " or ".join(f"{cls.file_name} ({cls.__name__})" for cls in KINDS)


def json_path(file: str | os.PathLike) -> Path:
    """Where a tokenizer file's JSON is: the file itself if it ends in .json, else its sidecar <file>.json.

    json_path("out/tokenizer.json") -> out/tokenizer.json;
    json_path("out/tokenizer.tiktoken") -> out/tokenizer.tiktoken.json
    """
    file = Path(file)
    return file if file.suffix == ".json" else file.with_name(file.name + ".json")


def tokenizer_class(file: str | os.PathLike) -> type[Tokenizer]:
    """The class that reads `file`, from the "format" field of its JSON (json_path)."""
    file = Path(file)
    meta = json_path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer file at {file}")
    if not meta.is_file() and not meta.is_symlink():
        raise FileNotFoundError(f"{file} has no JSON sidecar {meta.name} next to it, so it is not a tokenizer tinyllm "
                                "saved; for a bare tiktoken rank file use "
                                "BPETokenizer.from_tiktoken(path, pattern=...)")
    try:
        d = parse_json(read_regular_file(meta, "tokenizer file").decode("utf-8"), str(meta))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta} is not valid JSON ({e}); a tinyllm tokenizer's JSON names its \"format\"") from None
    fmt = d.get("format") if isinstance(d, dict) else None
    cls = FORMATS.get(fmt) if isinstance(fmt, str) else None
    if cls is None:
        known = ", ".join(f'"{f}" ({c.__name__})' for f, c in FORMATS.items())
        raise ValueError(f"{meta} is not a tinyllm tokenizer: its \"format\" is {fmt!r}, expected one of {known}; "
                         f"save tokenizers with save_tokenizer or Tokenizer.save")
    return cls


def _find_in_folder(folder: Path) -> Path:
    """The one tokenizer file of a run folder (an error if there is none, or two)."""
    present = [folder / name for name in dict.fromkeys(cls.file_name for cls in KINDS) if (folder / name).is_file()]
    if not present:
        raise FileNotFoundError(f"no tokenizer in {folder}: expected {_kinds_text()}")
    ours, first_error = [], None
    for file in present:
        try:
            cls = tokenizer_class(file)
        except (OSError, ValueError) as e:
            first_error = first_error or e
            continue
        if cls.file_name == file.name:
            ours.append(file)
    if len(ours) > 1:
        raise ValueError(f"{folder} holds two tokenizers ({', '.join(f.name for f in ours)}); pass the file you mean "
                         f"to load_tokenizer")
    if not ours:
        raise first_error
    return ours[0]


def load_tokenizer(path: str | os.PathLike, trust_pattern: bool = False) -> Tokenizer:
    """The tokenizer in a run folder, or in a tokenizer file, of any kind (by its JSON's "format").

    trust_pattern=True lets a BPE file hold a split regex tinyllm does not know; it then runs on every
    text you encode, and a hostile one can hang the process: pass it only for files you trust.
    """
    path = Path(path)
    if path.is_dir():
        path = _find_in_folder(path)
    elif not path.exists():
        raise FileNotFoundError(f"no tokenizer file or folder at {path}; expected a file {_kinds_text()}, "
                                f"or a run folder holding one")
    return tokenizer_class(path).load(path, trust_pattern=trust_pattern)


def save_tokenizer(tok: Tokenizer, out_dir: str | os.PathLike) -> Path:
    """Save `tok` in a run folder as out_dir/<tok.file_name>; returns that path.

    A folder already holding a tokenizer of another kind is refused (load_tokenizer could
    not tell which one you mean); the same kind is overwritten.
    """
    if not isinstance(tok, Tokenizer):
        raise TypeError(f"save_tokenizer expects a Tokenizer (CharTokenizer, BPETokenizer), got {type(tok).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for cls in KINDS:
        other = out_dir / cls.file_name
        if cls.file_name != tok.file_name and other.is_file() and _format_or_none(other) == cls.format:
            raise FileExistsError(f"{out_dir} already holds a {cls.__name__} ({cls.file_name}); save the "
                                  f"{type(tok).__name__} in a fresh folder or delete that file first")
    return tok.save(out_dir / tok.file_name)


def _format_or_none(file: Path) -> str | None:
    try:
        return tokenizer_class(file).format
    except (OSError, ValueError):
        return None
