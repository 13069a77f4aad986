"""The site's pieces fit together: every page in the nav, every glossary link lands, every module documented,
every lab cut into a notebook that loses nothing.

The full check is the strict build in .ci/run (`mkdocs build --strict`: a broken link, a missing page or
figure, or any warning fails it), which also executes every notebook. These tests are the cheap part,
run with the suite: no build, no kernel.
"""

from __future__ import annotations

import ast
import re
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCRIPTS = ROOT / "scripts"


def nav_entries() -> list[str]:
    """The files mkdocs.yml's nav names, in order (docs-relative: "00-autograd.md", "labs/00_autograd.ipynb")."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    return re.findall(r"([\w./-]+\.(?:md|ipynb))\s*$", nav, re.M)


def slug(heading: str) -> str:
    """The anchor of a heading, as MkDocs' toc extension (and GitHub, for plain words) makes it."""
    value = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def test_the_nav_lists_every_page_and_every_lab_once():
    entries = nav_entries()
    assert len(entries) == len(set(entries)), "a page is in the nav twice"
    pages = {p.relative_to(DOCS).as_posix() for p in [*DOCS.glob("*.md"), *DOCS.glob("api/*.md")]}
    missing = sorted(pages - set(entries))
    assert not missing, f"pages not in mkdocs.yml's nav (add them where a reader meets them): {missing}"
    labs = {f"labs/{p.stem}.ipynb" for p in (ROOT / "examples").glob("[0-9][0-9]*.py")}
    assert not sorted(labs - set(entries)), f"labs without a notebook in the nav: {sorted(labs - set(entries))}"
    unknown = [e for e in entries if e not in pages and e not in labs]
    assert not unknown, f"the nav names files that do not exist: {unknown}"


def test_the_chapters_come_in_reading_order():
    chapters = [e for e in nav_entries() if re.fullmatch(r"\d\d-[\w-]+\.md", e)]
    assert chapters == sorted(chapters)
    entries = nav_entries()
    for chapter in chapters:  # each chapter's labs follow it
        n = chapter[:2]
        labs = [e for e in entries if e.startswith(f"labs/{n}")]
        assert labs and all(entries.index(lab) > entries.index(chapter) for lab in labs), chapter


def test_every_link_into_the_glossary_lands_on_a_term():
    terms = {slug(m.group(1)) for m in re.finditer(r"^## (.+)$", (DOCS / "glossary.md").read_text(encoding="utf-8"),
                                                   re.M)}
    assert {"nats", "perplexity", "val-loss", "logits", "blas", "kl-divergence", "entropy", "property-test",
            "lru"} <= terms
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        for m in re.finditer(r"\]\((?:\.\./)*glossary\.md#([\w-]+)\)", page.read_text(encoding="utf-8")):
            if m.group(1) not in terms:
                broken.append(f"{page.relative_to(ROOT)}: #{m.group(1)}")
    assert not broken, f"links to glossary terms that do not exist (the anchors: {sorted(terms)}): {broken}"


def test_the_api_reference_documents_every_public_module():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    modules = set()
    for p in (ROOT / "tinyllm").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):  # _util, __main__: not public
            modules.add(".".join(parts))
    missing, unknown = sorted(modules - documented), sorted(documented - modules)
    assert not missing, f"modules missing from docs/api/ (add a `::: module` line where it belongs): {missing}"
    assert not unknown, f"docs/api/ names modules that do not exist: {unknown}"


@pytest.fixture(scope="module")
def notebooks():
    pytest.importorskip("griffe", reason="the docs extra: pip install -e '.[docs]'")
    sys.path.insert(0, str(SCRIPTS))
    try:
        import notebooks
    finally:
        sys.path.remove(str(SCRIPTS))
    return notebooks


@pytest.mark.parametrize("lab", sorted(p.name for p in (ROOT / "examples").glob("[0-9][0-9]*.py")))
def test_each_lab_becomes_a_notebook_that_loses_nothing(notebooks, lab):
    path = ROOT / "examples" / lab
    cells = notebooks.cells(path)
    assert cells[0][0] == "markdown" and cells[0][1].startswith("# Lab ")
    code = [src for kind, src in cells if kind == "code"]
    for i, src in enumerate(code):
        compile(src, f"{lab} cell {i}", "exec")  # every cell is valid Python on its own
    # every top-level statement of the script but its __main__ guard is in some cell, in the script's order
    source = path.read_text(encoding="utf-8")
    joined = "\n".join(code)
    at = 0
    for node in ast.parse(source).body[1:]:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        text = ast.get_source_segment(source, node)
        found = joined.find(text, at)
        assert found >= 0, f"{lab}: this statement is in no cell, or out of order:\n{text[:200]}"
        at = found + len(text)
    assert code[-2].endswith('report = main(["--quick"])')  # the last cells run the lab and show its figures


def test_a_notebook_is_valid_nbformat(notebooks):
    nbformat = pytest.importorskip("nbformat")
    nb = notebooks.notebook(ROOT / "examples" / "00_autograd.py")
    nbformat.validate(nb)
    assert nb.metadata["tinyllm"]["made_from"] == "examples/00_autograd.py"


def test_docstring_blocks_are_fenced_as_written(notebooks):
    import docstrings

    text = ("Per setting:\n\n    entropy   H, nats\n    NLL       -log p\n\nthen prose.\n\n"
            "1. a list item\n   continued here:\n     x = 1   (an aligned line)\n2. the next item\n\n"
            "Example:\n    >>> 1 + 1\n    2\n")
    md = docstrings.docstring_markdown(text)
    assert "```text\nentropy   H, nats\nNLL       -log p\n```" in md
    assert "```text\nx = 1   (an aligned line)\n```" in md
    assert "```pycon\n>>> 1 + 1\n2\n```" in md
    assert "then prose." in md and "\n\n2. the next item" in md


def test_the_api_reference_converts_module_docstrings_too(notebooks):
    griffe = pytest.importorskip("griffe")
    import docstrings

    mod = griffe.load("tinyllm.nn.moe", extensions=griffe.load_extensions(docstrings.PlainDocstrings()),
                      search_paths=[str(ROOT)])
    assert "```pycon\n>>> moe = MoE(4, 8, n_expert=4)" in mod.docstring.value  # the example fenced, once
    assert mod.docstring.value.count("```pycon") == 1


def test_the_docstring_extension_is_an_option_of_the_python_handler():
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    plugin = next(p["mkdocstrings"] for p in cfg["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    python = plugin["handlers"]["python"]
    assert "extensions" not in python, "mkdocstrings-python reads extensions under options:, not beside paths:"
    assert "scripts/docstrings.py:PlainDocstrings" in python["options"]["extensions"]
