"""The layers of tinyllm, checked: data flows down the stack, imports point down it.

A tensor knows nothing of models; a model knows nothing of the training loop
that feeds it; nothing in the library knows the command line that runs it. So
every module sits in one layer of LAYERS below, and may import only from its
own layer or the layers under it. The generation loop and the KV cache sit
*under* the model (as Hugging Face's generation code sits under its models):
they are written against the model's interface (``next_token_logits``,
``make_cache``), so ``GPT.generate`` can use them without a cycle.

The checker reads every ``tinyllm/**.py`` file with ``ast`` (no import runs),
including imports inside functions and relative imports, and fails on

  * an import from a lower layer to a higher one, or from a module no row places;
  * an import cycle between files; the one exception: ``tinyllm/tensor.py``
    imports the ops at its bottom (Tensor's operators call them) while the ops
    build Tensors, so the edges tensor.py -> ``tinyllm.ops`` are left out of the
    cycle search, and every other cycle is an error;
  * a private name (``_name``, or a ``_module``) imported from another top-level
    part of the package: ``tinyllm.cli`` may not take ``_generator`` from
    ``tinyllm.backend``; ``tinyllm.nn.container`` may take ``_addindent`` from
    ``tinyllm.nn.module``.

What counts as the imported module: ``from tinyllm.functional import kernels``
depends on the file ``tinyllm/functional/kernels.py`` when that submodule
exists, and on the package's ``__init__.py`` otherwise (a name defined there);
``import a.b.c`` depends on ``a.b.c`` only, not on the packages above it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "tinyllm"

# (layer, the modules in it), bottom first. "x.*" is the module or package x and everything under it;
# a plain name is that module alone (the facade "tinyllm" is its __init__.py, not the whole package).
LAYERS = [
    ("backend", ("tinyllm.backend", "tinyllm.strict")),
    ("core", ("tinyllm.tensor", "tinyllm.autograd", "tinyllm.function", "tinyllm.ops.*", "tinyllm.creation",
              "tinyllm.serialization")),
    ("functional", ("tinyllm.functional.*",)),
    ("inference", ("tinyllm.inference.*",)),  # against the model's interface: never imports nn
    ("nn", ("tinyllm.nn.*",)),
    ("optim", ("tinyllm.optim.*", "tinyllm")),  # the facade imports core, functional, nn and optim
    ("distributed", ("tinyllm.distributed.*",)),  # ranks and collectives: arrays and Tensors only
    ("tokenizer", ("tinyllm.tokenizer.*",)),
    ("data", ("tinyllm.data.*",)),
    ("train", ("tinyllm.train.*",)),
    ("scaling", ("tinyllm.scaling.*",)),
    ("quant", ("tinyllm.quant.*",)),
    ("interop", ("tinyllm.interop.*",)),
    ("tools", ("tinyllm.cli", "tinyllm.__main__", "tinyllm.demo", "tinyllm.render", "tinyllm.viz.*",
               "tinyllm.runtime", "tinyllm.labs",
               "tinyllm.posttrain",
               "tinyllm.data_commands",
               "tinyllm.hf_commands", "tinyllm.export")),  # what a person runs; nothing in the library imports them
]

# the one cycle allowed: Tensor's operators call the ops, and the ops build Tensors
ALLOWED_CYCLE_EDGE = ("tinyllm.tensor", "tinyllm.ops.*")


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return module == base or module.startswith(base + ".")
    return module == pattern


def layer_of(module: str, layers=LAYERS) -> tuple[int, str] | None:
    """(index, name) of the layer a module sits in, or None when no row places it."""
    for i, (name, patterns) in enumerate(layers):
        if any(_matches(module, p) for p in patterns):
            return i, name
    return None


def _unit(module: str) -> str:
    """The top-level part of the package a module belongs to: tinyllm.nn.module -> tinyllm.nn."""
    return ".".join(module.split(".")[:2])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# ----------------------------------------------------------------------------- reading the files


@dataclass(frozen=True)
class Source:
    path: str          # as shown in messages: tinyllm/nn/module.py
    text: str
    is_package: bool   # an __init__.py: its relative imports start at itself


@dataclass(frozen=True)
class Import:
    module: str    # the importer
    path: str
    line: int
    target: str    # the module depended on (a file of the package, or a name no file has)
    private: str   # the private name or module imported, or ""


def read_package(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Source]:
    """{module name: Source} for every .py file of the package, and an empty one for a folder without __init__.py
    (Python imports it as a namespace package: ``from tinyllm import ops`` names the folder, not the facade)."""
    sources = {}
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        sources[".".join(parts)] = Source(rel.as_posix(), path.read_text(encoding="utf-8"), is_package)
    for folder in sorted((root / package).rglob("*")):
        name = ".".join(folder.relative_to(root).parts)
        if folder.is_dir() and name not in sources and any(folder.glob("*.py")):
            sources[name] = Source(folder.relative_to(root).as_posix() + "/", "", True)
    return sources


def _resolve_relative(module: str, src: Source, level: int, name: str | None) -> str:
    base = module.split(".")
    if not src.is_package:
        base.pop()  # a module's relative imports start at its package
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports(sources: dict[str, Source], package: str = PACKAGE) -> list[Import]:
    """Every import of a package module by a package module, at any depth of the file."""
    ours = lambda m: m == package or m.startswith(package + ".")  # noqa: E731
    found = []
    for module, src in sources.items():
        for node in ast.walk(ast.parse(src.text, filename=src.path)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if ours(alias.name):
                        hidden = next((p for p in alias.name.split(".")[2:] if _private(p)), "")
                        found.append(Import(module, src.path, node.lineno, alias.name, hidden))
            elif isinstance(node, ast.ImportFrom):
                base = (node.module or "") if node.level == 0 else _resolve_relative(module, src, node.level,
                                                                                      node.module)
                if not ours(base):
                    continue
                hidden_base = next((p for p in base.split(".")[2:] if _private(p)), "")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    # subtle: a submodule is a dependency on its own file, not on the package's __init__.py
                    # (else every package would look cyclic with its __init__); any other name is one on base
                    target = sub if sub in sources else base
                    hidden = hidden_base or (alias.name if _private(alias.name) else "")
                    found.append(Import(module, src.path, node.lineno, target, hidden))
    return found


# ----------------------------------------------------------------------------- the rules


def unplaced(sources, layers=LAYERS) -> list[str]:
    return [f"{src.path}: module {m} is in no layer of LAYERS (tests/test_layers.py); add it to the row of the "
            f"layer it belongs to (what it imports decides the lowest it can go)"
            for m, src in sorted(sources.items()) if layer_of(m, layers) is None]


def upward_imports(found: list[Import], layers=LAYERS) -> list[str]:
    problems = []
    for imp in found:
        here, there = layer_of(imp.module, layers), layer_of(imp.target, layers)
        if here is None:
            continue  # reported by unplaced()
        if there is None:
            problems.append(f"{imp.path}:{imp.line}: imports {imp.target}, which no layer of LAYERS places; "
                            f"add it to tests/test_layers.py's table or import something that exists")
        elif there[0] > here[0]:
            problems.append(
                f"{imp.path}:{imp.line}: imports {imp.target} (layer {there[0]} {there[1]}) from {imp.module} "
                f"(layer {here[0]} {here[1]}): imports must point down. Move the code that needs it up to "
                f"{there[1]} or above (a tool if a person runs it), move what it uses down, or pass it in as an "
                f"argument")
    return problems


def cycles(found: list[Import], modules, allowed=ALLOWED_CYCLE_EDGE) -> list[str]:
    """Import cycles between files (Tarjan's strongly connected components, iterative)."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in found:
        if imp.target not in graph or imp.target == imp.module:
            continue
        if allowed and _matches(imp.module, allowed[0]) and _matches(imp.target, allowed[1]):
            continue
        graph[imp.module].setdefault(imp.target, imp)
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))
    problems = []
    for comp in components:
        loop = _shortest_loop(graph, comp)
        steps = " -> ".join(f"{e.path}:{e.line} imports {e.target}" for e in loop)
        problems.append(f"import cycle between {', '.join(comp)}; the shortest loop: {steps}. Break it by moving "
                        f"what they share into a lower module, or by passing it in as an argument")
    return problems


def _shortest_loop(graph, comp: list[str]) -> list[Import]:
    """The edges of a shortest cycle through comp[0] (breadth-first, inside the component)."""
    inside, start = set(comp), comp[0]
    came_by = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for target, edge in sorted(graph[node].items()):
                if target == start:
                    loop = [edge]
                    while came_by[edge.module] is not None:
                        edge = came_by[edge.module]
                        loop.append(edge)
                    return loop[::-1]
                if target in inside and target not in came_by:
                    came_by[target] = edge
                    nxt.append(target)
        frontier = nxt
    return []  # not reached: comp is strongly connected


def private_imports(found: list[Import]) -> list[str]:
    return [f"{imp.path}:{imp.line}: imports the private {imp.private!r} from {imp.target} into {imp.module}, "
            f"another part of the package; give it a public name in {_unit(imp.target)} (or keep the use inside "
            f"{_unit(imp.target)})"
            for imp in found if imp.private and _unit(imp.module) != _unit(imp.target)]


def check(sources: dict[str, Source], layers=LAYERS, allowed=ALLOWED_CYCLE_EDGE) -> list[str]:
    found = imports(sources)
    return (unplaced(sources, layers) + upward_imports(found, layers) + cycles(found, sources, allowed)
            + private_imports(found))


def _fail_on(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} layering problem(s):\n  " + "\n  ".join(problems)


# ----------------------------------------------------------------------------- the package


def test_every_module_sits_in_a_layer():
    _fail_on(unplaced(read_package()))


def test_imports_point_down():
    _fail_on(upward_imports(imports(read_package())))


def test_no_import_cycles():
    sources = read_package()
    _fail_on(cycles(imports(sources), sources))


def test_no_private_names_across_the_package():
    _fail_on(private_imports(imports(read_package())))


def test_the_table_names_layers_once_and_places_the_facade_alone():
    names = [name for name, _ in LAYERS]
    assert len(names) == len(set(names))
    assert layer_of("tinyllm")[1] == "optim"
    assert layer_of("tinyllm.something_new") is None  # a new file must be placed by hand


# ----------------------------------------------------------------------------- the checker itself


def _fake(**files: str) -> dict[str, Source]:
    """Sources from {module name with '__' for '.': text}; a name ending in '__init' is a package."""
    out = {}
    for key, text in files.items():
        parts = key.split("__")
        is_package = parts[-1] == "init"
        if is_package:
            parts.pop()
        out[".".join(parts)] = Source("/".join(parts) + ("/__init__.py" if is_package else ".py"), text, is_package)
    return out


def test_the_checker_catches_a_bad_graph():
    sources = _fake(
        tinyllm__init="from tinyllm import nn\n",
        tinyllm__backend="def f():\n    from tinyllm.nn.gpt import GPT\n",  # upward, inside a function
        tinyllm__nn__init="from .gpt import GPT\n",                           # relative, fine
        tinyllm__nn__gpt="from tinyllm.nn import block\n",                   # a submodule: no cycle with __init__
        tinyllm__nn__block="from tinyllm.nn import GPT\n",                   # the package: a cycle via __init__
        tinyllm__train__init="",
        tinyllm__train__loop="from ..backend import _secret\nfrom tinyllm.cli import main\n",
        tinyllm__cli="import tinyllm.nn.gpt\n",
        tinyllm__stray="",                                                   # placed by no row
    )
    problems = check(sources)
    text = "\n".join(problems)
    assert "module tinyllm.stray is in no layer" in text
    assert "tinyllm/backend.py:2: imports tinyllm.nn.gpt (layer 4 nn) from tinyllm.backend (layer 0 backend)" in text
    tools, train = layer_of("tinyllm.cli")[0], layer_of("tinyllm.train.loop")[0]
    assert (f"tinyllm/train/loop.py:2: imports tinyllm.cli (layer {tools} tools) from tinyllm.train.loop "
            f"(layer {train} train)" in text)
    assert "private '_secret' from tinyllm.backend into tinyllm.train.loop" in text
    cyc = [p for p in problems if p.startswith("import cycle")]
    assert len(cyc) == 1 and "tinyllm.nn, tinyllm.nn.block, tinyllm.nn.gpt" in cyc[0], cyc
    assert not any("tinyllm/cli.py" in p for p in problems)  # pointing down is fine
    assert len(problems) == 5, problems


def test_the_checker_allows_only_the_tensor_ops_cycle():
    ok = _fake(tinyllm__tensor="x = 1\nfrom tinyllm import ops\n", tinyllm__ops__init="from .shape import reshape\n",
               tinyllm__ops__shape="from tinyllm.tensor import Tensor\n")
    assert check(ok) == []
    bad = _fake(tinyllm__tensor="from tinyllm.function import Function\n",
                tinyllm__function="from tinyllm.tensor import Tensor\n")
    assert len(check(bad)) == 1 and "import cycle between tinyllm.function, tinyllm.tensor" in check(bad)[0]


def test_private_names_inside_one_part_are_fine():
    sources = _fake(tinyllm__nn__init="", tinyllm__nn__module="def _addindent(): pass\n",
                    tinyllm__nn__container="from tinyllm.nn.module import _addindent\n",
                    tinyllm__functional__init="", tinyllm__functional___util="",
                    tinyllm__optim__init="from tinyllm.functional._util import helper\n")
    problems = check(sources)
    assert len(problems) == 1 and "private '_util'" in problems[0], problems
