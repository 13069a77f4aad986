"""The docs point at things that exist: every file path and every dotted ``tinyllm.`` name in code.

A chapter that points at a file or a function that has since moved sends the
reader nowhere. So in README.md and docs/*.md, every piece of code
(inline `...` spans and fenced blocks) is searched for

    repository paths   tinyllm/nn/gpt.py, tinyllm/nn/positional/, examples/05_sampling.py   -> must exist
    dotted names       tinyllm.train.train_or_load, tinyllm.functional.softmax             -> must resolve:
                       import the longest module prefix, then getattr the rest

and every miss is reported at once, as file:line. ``python -m tinyllm train`` names
no module (``tinyllm`` alone is the command), so it is not checked.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE = re.compile(r"`([^`]+)`")  # a span may wrap onto the next line
# a path ends in .py or / (a folder): "ratio tinyllm/torch" in a table of timings is no path
_PATH = re.compile(r"(?<![\w./-])(?:tinyllm|examples|benchmarks|animations|tests)/"
                   r"(?:[\w.-]+/)*(?:[\w.-]+\.py\b|(?=\s|$|[`),;:]))")
_PLACEHOLDER = re.compile(r"(?:^|/)[A-Z][A-Z_]*(?:\.py|/|$)")  # animations/FILE.py: a slot, not a file
_DOTTED = re.compile(r"(?<![\w./-])tinyllm(?:\.[A-Za-z_]\w*)+")


def code_spans(text: str):
    """(offset, code) for each fenced block and each inline span outside them."""
    outside = text
    for m in _FENCE.finditer(text):
        yield m.start(), m.group(0)
        outside = outside[:m.start()] + re.sub(r"[^\n]", " ", m.group(0)) + outside[m.end():]  # same offsets
    for m in _INLINE.finditer(outside):
        if "\n\n" not in m.group(1):  # a paragraph break ends any span: that backtick was a stray one
            yield m.start(1), m.group(1)


def pointers(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, token) for every path and dotted name in the code of a Markdown text, in reading order."""
    found = []
    for offset, code in code_spans(text):
        for kind, pattern in (("path", _PATH), ("name", _DOTTED)):
            found += [(offset + m.start(), kind, m.group(0)) for m in pattern.finditer(code)]
    return [(text.count("\n", 0, at) + 1, kind, token) for at, kind, token in sorted(found)]


def path_problem(token: str) -> str | None:
    path = token
    if _PLACEHOLDER.search(path):
        return None
    target = ROOT / path
    if path.endswith("/"):
        return None if target.is_dir() else "no such folder"
    return None if target.exists() else "no such file"


def resolve(name: str):
    """The object a dotted name stands for: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        module_name = ".".join(parts[:k])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # no such module: try a shorter prefix
            raise
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def name_problem(token: str) -> str | None:
    name = token.rstrip(".")
    if name.split(".")[-1] in ("py", "md", "json", "txt", "html", "png"):  # a file name, not a module
        return None
    if "__main__" in name.split("."):  # importing it would run the command line
        return None
    try:
        resolve(name)
    except (ImportError, AttributeError) as e:
        return f"does not resolve ({type(e).__name__}: {e})"
    return None


def problems(docs=DOCS) -> list[str]:
    found = []
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        shown = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc.name
        for line, kind, token in pointers(text):
            why = path_problem(token) if kind == "path" else name_problem(token)
            if why:
                found.append(f"{shown}:{line}: `{token}`: {why}")
    return found


def test_every_path_and_dotted_name_in_the_docs_exists():
    found = problems()
    assert not found, (f"{len(found)} pointer(s) in the docs lead nowhere; fix the doc (or the name it points "
                       f"at):\n  " + "\n  ".join(found))


def test_the_checker_finds_paths_and_names_and_reports_misses(tmp_path):
    doc = tmp_path / "page.md"
    doc.write_text("Intro `tinyllm/backend.py` and `tinyllm/nn/` and `tinyllm.train.train_or_load`.\n"
                   "A move: `tinyllm/inference/nowhere.py`, `tinyllm.train.no_such_function`, "
                   "`tinyllm.no_such_module.x`.\n"
                   "```bash\npython -m tinyllm train --out out/stories\n"
                   "python -m tinyllm.viz.dashboard.cli --ckpt DIR\n```\n"
                   "```python\nfrom tinyllm.nn import GPT\nx = tinyllm.functional.softmax\n```\n",
                   encoding="utf-8")
    text = doc.read_text(encoding="utf-8")
    tokens = [(line, token) for line, _, token in pointers(text)]
    assert (1, "tinyllm/backend.py") in tokens and (1, "tinyllm/nn/") in tokens
    assert (5, "tinyllm.viz.dashboard.cli") in tokens and (9, "tinyllm.functional.softmax") in tokens
    assert not any(token == "tinyllm" for _, token in tokens)  # `python -m tinyllm train`: a command
    found = problems([doc])
    assert len(found) == 3, found
    assert found[0] == "page.md:2: `tinyllm/inference/nowhere.py`: no such file"
    assert "tinyllm.train.no_such_function" in found[1] and "AttributeError" in found[1]
    assert "tinyllm.no_such_module.x" in found[2]

