"""Corpora as documents: read and write them one at a time, so a file larger than memory streams.

Cleaning and deduplication work on documents, not on one long string. Two file
formats hold them:

    jsonl    one JSON object per line; the document is its "text" field (any name: `field`),
             every other field (an id, a URL, a provenance record) is carried through untouched
    text     plain UTF-8 text; documents are separated by one or more blank lines, as in
             tinyllm's built-in "stories" corpus (so a document here holds no blank line:
             use JSONL for documents with paragraphs)

A file's format follows its suffix (``.jsonl`` -> jsonl, anything else -> text)
unless given. Reading is a generator of records (dicts; a text file's records are
``{"text": ...}``), so ``read_documents`` holds one document in memory at a time.

Writing goes through ``DocumentWriter``: records go to a temporary file beside
the target, which is renamed over it only when the writer closes without an
error, so a failed or interrupted run leaves no half-written corpus.

Example::

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "two.txt"
    >>> _ = p.write_text("first doc\\nstill first\\n\\n\\nsecond doc\\n")
    >>> [r["text"] for r in read_documents(p)]
    ['first doc\\nstill first', 'second doc']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tinyllm.data.registry import DataError

FORMATS = ("jsonl", "text")


def document_format(path, fmt: str | None = None) -> str:
    """The format of a corpus file: `fmt` if given, else "jsonl" for *.jsonl, else "text"."""
    if fmt is None:
        return "jsonl" if Path(path).suffix.lower() == ".jsonl" else "text"
    if fmt not in FORMATS:
        raise ValueError(f"unknown document format {fmt!r}; choose one of {FORMATS}")
    return fmt


def _lines(path: Path):
    """(line number, line without its newline) of a UTF-8 file, read lazily; a BOM and CRs are dropped."""
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise DataError(f"no corpus file at {path}; give a .txt or .jsonl file") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; give one .txt or .jsonl file") from None
    with f:
        n = 0
        try:
            for n, line in enumerate(f, 1):
                if n == 1:
                    line = line.removeprefix("\ufeff")
                yield n, line.rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text (line {n + 1}: {e.reason}); convert it to UTF-8 "
                            f"(e.g. iconv -f latin1 -t utf-8)") from None


def read_documents(path, fmt: str | None = None, field: str = "text"):
    """Yield each document of a corpus file as a record (a dict whose `field` holds the text)."""
    path = Path(path)
    if document_format(path, fmt) == "jsonl":
        for n, line in _lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {n}: not JSON ({e.msg} at column {e.colno}); a .jsonl file "
                                f"holds one JSON object per line") from None
            if not isinstance(record, dict) or not isinstance(record.get(field), str):
                raise DataError(f"{path}, line {n}: expected a JSON object with a string field {field!r}; "
                                f"name the text field with --field")
            yield record
        return
    block: list[str] = []
    for _, line in _lines(path):
        if line.strip():
            block.append(line)
        elif block:
            yield {field: "\n".join(block)}
            block = []
    if block:
        yield {field: "\n".join(block)}


def read_texts(path, fmt: str | None = None, field: str = "text"):
    """Yield the text of each document of a corpus file."""
    for record in read_documents(path, fmt, field):
        yield record[field]


class DocumentWriter:
    """Write records to a corpus file, whole or not at all (a temporary file renamed at a clean close).

        with DocumentWriter("out.jsonl") as w:
            w.write({"text": "a document", "id": 7})
    """

    def __init__(self, path, fmt: str | None = None, field: str = "text"):
        self.path = Path(path)
        self.fmt = document_format(self.path, fmt)
        self.field = field
        self.count = 0
        if not self.path.parent.is_dir():
            raise DataError(f"cannot write {self.path}: the folder {self.path.parent} does not exist")
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._f = None

    def __enter__(self) -> "DocumentWriter":
        self._f = open(self._tmp, "w", encoding="utf-8", newline="\n")
        return self

    def write(self, record: dict) -> None:
        text = record[self.field]
        if self.fmt == "jsonl":
            self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            # subtle: a blank line inside a document would split it in two when the file is read back
            lines = [line for line in text.split("\n") if line.strip()]
            if not lines:
                return
            self._f.write(("\n" if self.count else "") + "\n".join(lines) + "\n")
        self.count += 1

    def __exit__(self, kind, value, tb) -> None:
        self._f.close()
        if kind is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
