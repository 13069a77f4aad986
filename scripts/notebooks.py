"""Every lab as a Jupyter notebook, made from its script in examples/ (one source, never two copies).

A lab is a script, ``examples/NN_topic.py``: a docstring that says what it measures, imports,
constants, one function per step, and ``main(argv)`` that runs them in order. Its notebook is
cut from that file along the same lines, with no marker in the script:

    the module docstring                     -> a Markdown cell (the lab's title and what it measures)
    the imports                              -> one code cell
    a run of constants                       -> one code cell
    each function or class                   -> its own code cell (with the comments just above it)
    "# ------------ part 1: one query"        -> a Markdown heading, "## Part 1: one query"
    if __name__ == "__main__": main()        -> a cell that runs main(["--quick"]), and one that shows
                                                the figures the run wrote

A first code cell moves to the repository's root, where ``python examples/NN_topic.py`` runs
(the labs read and write paths relative to it). So a reader can open the notebook in Jupyter,
run the cells one by one, call any function on its own, and change ``["--quick"]`` to ``[]``
for the full run. The notebooks are build outputs (``build/labs/``, not committed): edit the
script, never the notebook.

    python scripts/notebooks.py                       # write build/labs/*.ipynb (no outputs)
    python scripts/notebooks.py --execute             # ... and run each in quick mode (what the site shows)
    python scripts/notebooks.py --execute 03_attention   # one lab

Executed notebooks are reused while nothing they depend on changed: each records a digest of
its cells and of every .py file under tinyllm/ and examples/ (``metadata.tinyllm.inputs``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from docstrings import docstring_markdown  # scripts/docstrings.py

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OUT = ROOT / "build" / "labs"
CELL_TIMEOUT = 1800  # seconds for one cell; a quick lab's main takes well under a minute on two cores

# "# ------------------------------------------------ part 1: one query": a section of the lab
_DIVIDER = re.compile(r"^# -{10,}\s*(?P<title>\S.*?)\s*$")


def _nbformat():
    try:
        import nbformat
    except ImportError as e:
        raise SystemExit("scripts/notebooks.py needs the docs extra: pip install -e \".[docs]\"") from e
    return nbformat


def labs() -> list[Path]:
    """The lab scripts, in the curriculum's order (their names sort that way: 00, 01, 01b, 02, ...)."""
    return sorted(EXAMPLES.glob("[0-9][0-9]*.py"))


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__": ...``"""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def _kind(node: ast.stmt) -> str:
    """Which cell a top-level statement goes in: imports together, constants together, each definition alone."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "imports"
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):  # matplotlib.use("Agg") among the imports
        return "imports"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return "constants"
    return "alone"


def _first_line(node: ast.stmt) -> int:
    """1-based line where a statement starts, decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _strip(lines: list[str]) -> str:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines)


def cells(path: Path, argv: tuple[str, ...] = ("--quick",)) -> list[tuple[str, str]]:
    """The notebook of one lab script, as (kind, source) pairs: kind is "markdown" or "code"."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    body = list(tree.body)
    doc = ast.get_docstring(tree, clean=True)
    if doc is None:
        raise ValueError(f"{path}: a lab opens with a docstring that says what it measures; this one has none")
    body = body[1:]  # the docstring, which becomes the first Markdown cell
    guard = [n for n in body if _is_main_guard(n)]
    if len(guard) != 1 or not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in body):
        raise ValueError(f"{path}: a lab defines main(argv) and runs it under if __name__ == '__main__'")
    body = [n for n in body if n is not guard[0]]
    rel = path.relative_to(ROOT).as_posix()

    title, _, rest = doc.partition("\n")
    out = [("markdown", f"# {title.strip()}\n\n{docstring_markdown(rest)}\n\n"
                        f"*This notebook is made from `{rel}` by `scripts/notebooks.py`: "
                        f"change the script, not the notebook.*")]
    setup = [f"# Run from the repository's root, as `python {rel}` does:",
             "# the lab's paths (out/labs/, docs/figures/) start there.",
             "import os",
             "from pathlib import Path",
             "",
             f"while not Path({json.dumps(rel)}).exists() and Path.cwd() != Path.cwd().parent:",
             "    os.chdir(\"..\")"]
    if "__file__" in source:
        setup.append(f"__file__ = {json.dumps(rel)}  # the lab finds files beside its own, as the script does")
    out.append(("code", "\n".join(setup)))

    # Each statement's chunk starts after the previous one ends, so the comments above a definition stay
    # with it; consecutive statements of the kind "imports" or "constants" share a cell.
    group_kind, group = None, []

    def flush():
        nonlocal group, group_kind
        if _strip(group):
            out.append(("code", _strip(group)))
        group, group_kind = [], None

    prev_end = tree.body[0].end_lineno  # the docstring's last line
    for node in body:
        start = _first_line(node)
        head = lines[prev_end:start - 1]  # the comments and blank lines since the previous statement
        divider = next((i for i, line in enumerate(head) if _DIVIDER.match(line)), None)
        while divider is not None:  # a section divider closes the cell before it and becomes a heading
            group += head[:divider]
            flush()
            title = _DIVIDER.match(head[divider]).group("title")
            out.append(("markdown", f"## {title[0].upper()}{title[1:]}"))
            head = head[divider + 1:]
            divider = next((i for i, line in enumerate(head) if _DIVIDER.match(line)), None)
        kind = _kind(node)
        if kind != group_kind or kind == "alone":
            flush()
        group += head + lines[start - 1:node.end_lineno]
        group_kind = kind
        prev_end = node.end_lineno
    flush()

    args = json.dumps(list(argv))
    out.append(("markdown", "## Run the lab\n\n"
                            f"`main({args})` is the run the site shows and CI executes; `main([])` is the full "
                            f"run, as `python {rel}`: it writes the figures in `docs/figures/`."))
    out.append(("code", "import time\n\n"
                        "started = time.time()\n"
                        f"report = main({args})"))
    out.append(("code", "# The figures this run wrote\n"
                        "from IPython.display import Image, Markdown, display\n\n"
                        "pngs = [*Path(\"out\").rglob(\"*.png\"), *Path(\"docs/figures\").glob(\"*.png\")]\n"
                        "written = [p for p in pngs if p.stat().st_mtime >= started]\n"
                        "for png in sorted(written):\n"
                        "    display(Markdown(f\"`{png}`\"), Image(filename=str(png)))"))
    return out


def inputs_digest(cell_list: list[tuple[str, str]]) -> str:
    """What an executed notebook depends on: its cells, the package and the labs (02b runs 02's code)."""
    h = hashlib.sha256()
    for kind, src in cell_list:
        h.update(f"{kind}\0{src}\0".encode())
    for p in sorted([*(ROOT / "tinyllm").rglob("*.py"), *EXAMPLES.glob("*.py")]):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def notebook(path: Path, argv: tuple[str, ...] = ("--quick",)):
    """The lab script at ``path`` as an nbformat notebook (not executed)."""
    nbf = _nbformat()
    cell_list = cells(path, argv)
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "markdown" else nbf.v4.new_code_cell(src)
                for kind, src in cell_list]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["tinyllm"] = {"made_from": path.relative_to(ROOT).as_posix(), "inputs": inputs_digest(cell_list)}
    return nb


def execute(nb, timeout: int = CELL_TIMEOUT):
    """Run every cell in a fresh kernel started in the repository's root; raises on the first failing cell."""
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as sockets:  # the kernel talks over local sockets, not TCP ports
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(ROOT)}}).execute()
        finally:  # a kernel manager handed in is not shut down by the client
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


def build(out: Path = OUT, run: bool = False, names: list[str] | None = None, log=print) -> list[Path]:
    """Write a notebook per lab into ``out`` (executed in quick mode with ``run``); returns their paths.

    An executed notebook already in ``out`` whose inputs are unchanged is kept as it is.
    """
    nbf = _nbformat()
    out.mkdir(parents=True, exist_ok=True)
    scripts = labs()
    if names:
        unknown = sorted(set(names) - {p.stem for p in scripts})
        if unknown:
            raise SystemExit(f"no lab named {', '.join(unknown)} in examples/; the labs: "
                             + ", ".join(p.stem for p in scripts))
        scripts = [p for p in scripts if p.stem in names]
    written = []
    for script in scripts:
        target = out / f"{script.stem}.ipynb"
        nb = notebook(script)
        if target.exists():
            old = nbf.read(target, as_version=4)
            meta = old.metadata.get("tinyllm", {})
            if meta.get("inputs") == nb.metadata["tinyllm"]["inputs"] and (meta.get("executed") or not run):
                written.append(target)
                continue
        if run:
            t0 = time.perf_counter()
            execute(nb)
            nb.metadata["tinyllm"]["executed"] = True
            log(f"{script.relative_to(ROOT)}: executed in {time.perf_counter() - t0:.1f} s")
        nbf.write(nb, target)
        written.append(target)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="labs to make (default: all), by file stem, e.g. 03_attention")
    p.add_argument("--execute", action="store_true", help="run each notebook in quick mode (outputs saved)")
    p.add_argument("--out", type=Path, default=OUT, help="folder for the notebooks (default build/labs)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    paths = build(args.out, run=args.execute, names=args.names)
    print(f"{len(paths)} notebook(s) in {args.out}; {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
