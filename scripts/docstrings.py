"""tinyllm's docstrings as Markdown, for the site: the API reference and the labs' notebooks.

The docstrings are plain text, written to be read in an editor: prose, numbered lists, and
blocks indented past the text around them that must keep their lines (the math, a worked
example, a small table, the commands that run a lab, a doctest). Markdown folds such a block
into the paragraph above it unless it is a code block, so ``docstring_markdown`` fences every
one of them, as written, and leaves the rest alone. ``PlainDocstrings`` applies it to every
docstring the API reference shows (mkdocs.yml: mkdocstrings' ``extensions``).
"""

from __future__ import annotations

import re

import griffe

_MARKER = re.compile(r"\s*(?:\d+\.|[-*])\s+")  # a list item: "1. ", "- "


def _language(block: list[str]) -> str:
    first = block[0]
    if first.startswith(">>>"):
        return "pycon"
    if first.startswith(("python ", "tinyllm ", "pip ", "$ ")):
        return "bash"
    return "text"


def docstring_markdown(text: str) -> str:
    """Plain-text docstring -> Markdown: the prose and lists as they are, every indented block fenced.

    A block is a run of lines indented at least two columns past the text of the line before it
    (past a list item's marker, for the lines under a list item); blank lines inside it belong to it.
    It is dedented and fenced as ``pycon`` (a doctest), ``bash`` (commands) or ``text``:

        docstring_markdown("Run it:\\n\\n    python examples/00_autograd.py")
        -> "Run it:\\n\\n```bash\\npython examples/00_autograd.py\\n```"
    """
    out, block, base = [], [], 0  # base: the column where the text of the line before starts

    def close():
        if block:
            while not block[-1].strip():
                block.pop()
            indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
            body = [b[indent:] for b in block]
            out.extend(["", f"```{_language(body)}", *body, "```", ""])
            block.clear()

    for line in text.strip("\n").splitlines():
        indent = len(line) - len(line.lstrip())
        if line.strip() and (indent >= base + 2 or (block and indent > base)):
            block.append(line)
            continue
        if block and not line.strip():
            block.append(line)
            continue
        close()
        marker = _MARKER.match(line) if line.strip() else None
        if marker and out and out[-1].strip():
            out.append("")  # a list item after a paragraph: Markdown starts a list only after a blank line
        out.append(line)
        if line.strip():
            base = len(marker.group(0)) if marker else indent
    close()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


class PlainDocstrings(griffe.Extension):
    """A griffe extension: every docstring of the API reference through ``docstring_markdown``."""

    def __init__(self) -> None:
        super().__init__()
        self._done: set[str] = set()  # paths already converted: each docstring once

    def _convert(self, obj) -> None:
        if obj.docstring is not None and obj.path not in self._done:
            self._done.add(obj.path)
            obj.docstring.value = docstring_markdown(obj.docstring.value)

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        self._convert(obj)

    def on_module_members(self, *, mod: griffe.Module, **kwargs) -> None:
        # a module's own docstring is read after the module object is made (on_instance saw none yet)
        self._convert(mod)
