"""The site's build hooks (mkdocs.yml, ``hooks:``): the labs as notebooks, a page per source file, links into them.

The chapters are plain Markdown that reads the same on GitHub and on the site. They point at the
code in two ways: a link to the file in the repository, ``[rope.py](../tinyllm/nn/positional/rope.py)``,
and the path in a code span, ``tinyllm/function.py``. The site has no repository beside it, so
at build time:

* every Python file of the package (and each other .py file a page names: a benchmark, a test,
  an animation) gets a page of its own, ``source/<path>.md``: its code with line numbers, and a
  link to its API reference;
* each lab, ``examples/NN_topic.py``, becomes a notebook (scripts/notebooks.py), executed in quick
  mode and shown with its outputs as ``labs/NN_topic.ipynb`` (rendered by mkdocs-jupyter);
* a link to a repository file is pointed at its page (a link to ``x.py#L12`` lands on line 12),
  a link to a lab at its notebook, a link to a folder at its ``__init__.py``;
* a code span that is exactly the path of such a file (or of a page, ``docs/performance.md``)
  becomes a link to it, so every "read the code in this order" table links into the source.

A link into the repository that has no page on the site is left as it is: the strict build then
reports it, as it reports any broken link. ``TINYLLM_DOCS_EXECUTE=0 mkdocs serve`` shows the
notebooks without running them (no outputs), for a quick look at a change to the text.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

import notebooks  # scripts/notebooks.py: mkdocs puts a hook's folder on sys.path while loading it
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("tinyllm",)  # every .py file under these gets a page
NAMED_DIRS = ("tinyllm", "examples", "benchmarks", "animations", "tests", "scripts")  # ... and those a page names

# a repository path in a code span: tinyllm/nn/gpt.py, tinyllm/nn/positional/, benchmarks/bench_train.py
_PATH = re.compile(r"(?:%s)/(?:[\w.-]+/)*(?:[\w.-]+\.py|)" % "|".join(NAMED_DIRS))
_DOC_PATH = re.compile(r"docs/[\w.-]+\.md")
# a fenced block (``` or ~~~, possibly indented) is left alone
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[^\n]*\n.*?^(?P=indent)(?P=fence)[ \t]*$", re.M | re.S)
# a link or image [text](target "title"), or a code span
_LINK_OR_CODE = re.compile(
    r"(?P<link>(?P<bang>!?)\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\((?P<target>[^()\s]+)(?P<title>\s+\"[^\"]*\")?\))"
    r"|(?P<code>(?<!`)`(?P<span>[^`\n]+)`(?!`))")
_LINE_ANCHOR = re.compile(r"#L(\d+)(?:-L?\d+)?$")


def _sources_named(docs_dir: Path) -> set[str]:
    """Repository .py files the pages name (in code spans or links), beyond the package's own."""
    named = set()
    for page in docs_dir.rglob("*.md"):
        for m in re.finditer(r"(?<![\w/.-])(?:\.\./)*((?:%s)/(?:[\w.-]+/)*[\w.-]+\.py)\b" % "|".join(NAMED_DIRS),
                             page.read_text(encoding="utf-8")):
            named.add(m.group(1))
    return named


def source_files(docs_dir: Path) -> list[str]:
    """Repository paths (posix, from the root) of the .py files that get a page under source/."""
    found = {p.relative_to(ROOT).as_posix() for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.py")}
    found |= {p for p in _sources_named(docs_dir) if (ROOT / p).is_file() and not p.startswith("examples/")}
    return sorted(p for p in found if "__pycache__" not in p)


def api_pages(docs_dir: Path) -> dict[str, str]:
    """module -> the API page (src_uri) that documents it with a ``::: module`` line."""
    where = {}
    for page in sorted((docs_dir / "api").glob("*.md")):
        for m in re.finditer(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M):
            where[m.group(1)] = page.relative_to(docs_dir).as_posix()
    return where


def source_page(path: str, api: dict[str, str]) -> str:
    """The Markdown of the page that shows one source file."""
    code = (ROOT / path).read_text(encoding="utf-8")
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", code)), default=0))
    here = posixpath.dirname(f"source/{path}")
    module = path[:-3].replace("/", ".").removesuffix(".__init__")
    facts = [f"{code.count(chr(10))} lines"]
    if module in api:
        facts.append(f"[API reference]({posixpath.relpath(api[module], here)}#{module})")
    facts.append(f"[How to read tinyllm]({posixpath.relpath('reading-path.md', here)})")
    return (f"# `{path}`\n\n{' · '.join(facts)}\n\n"
            f"{fence}python linenums=\"1\"\n{code.rstrip()}\n{fence}\n")


class _Site:
    """What the link rewriting needs to know: which repository paths have a page, and where."""

    def __init__(self):
        self.targets: dict[str, str] = {}  # repository path -> src_uri of its page on the site

    def target(self, repo_path: str) -> str | None:
        repo_path = repo_path.rstrip("/")
        if repo_path in self.targets:
            return self.targets[repo_path]
        return self.targets.get(f"{repo_path}/__init__.py")  # a folder: its package's __init__


SITE = _Site()
log = logging.getLogger("mkdocs.hooks.site_hooks")


@event_priority(50)  # before mkdocs-jupyter's on_files, which claims the .ipynb files it finds
def on_files(files: Files, config) -> Files:
    docs_dir = Path(config.docs_dir)
    api = api_pages(docs_dir)
    SITE.targets = {f"docs/{f.src_uri}": f.src_uri for f in files.documentation_pages()}
    for path in source_files(docs_dir):
        uri = f"source/{path}.md"
        files.append(File.generated(config, uri, content=source_page(path, api), inclusion=InclusionLevel.NOT_IN_NAV))
        SITE.targets[path] = uri
    run = os.environ.get("TINYLLM_DOCS_EXECUTE", "1") != "0"
    for nb in notebooks.build(run=run, log=log.info):  # build/labs/NN_topic.ipynb
        uri = f"labs/{nb.name}"
        # a File read from build/ (not File.generated: mkdocs-jupyter reads the notebook from its src_dir)
        files.append(File(uri, src_dir=str(nb.parent.parent), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
        SITE.targets[f"examples/{nb.stem}.py"] = uri
    return files


def _relative(uri: str, page_uri: str) -> str:
    return posixpath.relpath(uri, posixpath.dirname(page_uri) or ".")


def _rewrite_link(m: re.Match, page_uri: str) -> str:
    if m.group("link") is None:  # a code span: a link only if it is exactly a path with a page
        span = m.group("span").strip()
        if _PATH.fullmatch(span) or _DOC_PATH.fullmatch(span):
            uri = SITE.target(span)
            if uri is not None and uri != page_uri:
                return f"[{m.group('code')}]({_relative(uri, page_uri)})"
        return m.group(0)
    target = m.group("target")
    if m.group("bang") or re.match(r"^[a-z][a-z0-9+.-]*:|^[#/]", target):  # images, URLs, anchors, absolute
        return m.group(0)
    path, _, anchor = target.partition("#")
    repo_path = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), path))
    if repo_path.startswith("docs/") or repo_path.startswith("../"):
        return m.group(0)  # a page of the site (mkdocs resolves and checks it), or outside the repository
    uri = SITE.target(repo_path)
    if uri is None:
        return m.group(0)  # no page for it: the strict build reports the link
    line = _LINE_ANCHOR.match(f"#{anchor}") if anchor else None
    if line and uri.startswith("source/"):
        anchor = f"__codelineno-0-{line.group(1)}"
    new = _relative(uri, page_uri) + (f"#{anchor}" if anchor else "")
    return f"[{m.group('text')}]({new}{m.group('title') or ''})"


def on_page_markdown(markdown: str, page, config, files) -> str:
    page_uri = page.file.src_uri
    if page_uri.startswith("source/"):
        return markdown
    out, at = [], 0
    for fence in _FENCE.finditer(markdown):
        out.append(_LINK_OR_CODE.sub(lambda m: _rewrite_link(m, page_uri), markdown[at:fence.start()]))
        out.append(fence.group(0))
        at = fence.end()
    out.append(_LINK_OR_CODE.sub(lambda m: _rewrite_link(m, page_uri), markdown[at:]))
    return "".join(out)
