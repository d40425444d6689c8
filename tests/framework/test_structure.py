"""The package's import graph, read from the source with ``ast`` (nothing is imported).

The rules of ARCHITECTURE.md: no import cycle (module-level and function-level imports alike), nothing in the
framework imports the application (``broker_jobs.app``, the ``broker_jobs.actors`` entry, ``broker_jobs.__main__``),
no ``try/except ImportError`` around our own modules, none of our modules loaded by a name string, and every
import inside a function says why it is deferred (``# deferred: <why>`` on the line).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "broker_jobs"
APPLICATION = ("broker_jobs.app", "broker_jobs.actors", "broker_jobs.__main__")

# What is still to mend (issue 14).  Each list must match exactly: a leftover outside it fails, and an entry that no
# longer applies fails too ("remove it"), so the lists only shrink.
OTHERS_CYCLES = [
    ["broker_jobs.broker", "broker_jobs.topology"],  # topology imports broker's QUEUES/connection_url in a function
]
OTHERS_UNMARKED = {
    "broker_jobs.api.app", "broker_jobs.api.collector", "broker_jobs.api.dashboard", "broker_jobs.api.health",
    "broker_jobs.api.routes", "broker_jobs.broker", "broker_jobs.consumer", "broker_jobs.coordination",
    "broker_jobs.dead_letters", "broker_jobs.health", "broker_jobs.job", "broker_jobs.queues", "broker_jobs.repair",
    "broker_jobs.scheduling.control", "broker_jobs.scheduling.lease", "broker_jobs.scheduling.planning",
    "broker_jobs.scheduling.publisher", "broker_jobs.store.db",
    "broker_jobs.store.migrations", "broker_jobs.store.migrations.env", "broker_jobs.topology",
}
OTHERS_IMPORT_ERROR_GUARDS = {"broker_jobs.api.health", "broker_jobs.api.routes"}


@dataclass(frozen=True)
class Import:
    """One import statement of one of our modules, resolved to the modules of ours it loads."""

    module: str
    line: int
    targets: tuple[str, ...]
    in_function: bool
    text: str


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules() -> dict[str, tuple[Path, ast.Module, list[str]]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        modules[module_name(path)] = (path, ast.parse(source, str(path)), source.splitlines())
    return modules


MODULES = read_modules()


def is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def resolve(node: ast.Import | ast.ImportFrom, importer: str) -> tuple[str, ...]:
    """The modules of ours that ``node`` loads (``from pkg import sub`` loads ``pkg.sub`` when it is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    return tuple(sorted({n for n in names if n == "broker_jobs" or n.startswith("broker_jobs.")}))


def under_type_checking(parents: list[ast.AST]) -> bool:
    return any(isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test) for p in parents)


def imports_of(name: str) -> list[Import]:
    _, tree, lines = MODULES[name]
    found: list[Import] = []

    def visit(node: ast.AST, parents: list[ast.AST]) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom) and not under_type_checking(parents):
            in_function = any(isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) for p in parents)
            end = node.end_lineno or node.lineno
            text = "\n".join(lines[node.lineno - 1:end])
            found.append(Import(name, node.lineno, resolve(node, name), in_function, text))
        for child in ast.iter_child_nodes(node):
            visit(child, [*parents, node])

    visit(tree, [])
    return found


IMPORTS = {name: imports_of(name) for name in MODULES}


def is_application(name: str) -> bool:
    return any(name == app or name.startswith(app + ".") for app in APPLICATION)


def cycles() -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), or a module importing itself."""
    graph = {name: sorted({t for i in IMPORTS[name] for t in i.targets if t in MODULES}) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_module_graph_of_the_package_has_no_import_cycle():
    found = [c for c in cycles() if c not in OTHERS_CYCLES]
    stale = [c for c in OTHERS_CYCLES if c not in cycles()]
    assert not stale, f"no longer a cycle, remove from OTHERS_CYCLES: {stale}"
    detail = []
    for component in found:
        members = set(component)
        edges = [f"{i.module}:{i.line} -> {t}" for m in component for i in IMPORTS[m] for t in i.targets
                 if t in members]
        detail.append(" | ".join(edges))
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_no_framework_module_imports_the_application():
    wrong = [f"{i.module}:{i.line} imports {t}" for name in MODULES if not is_application(name)
             for i in IMPORTS[name] for t in i.targets if is_application(t)]
    assert not wrong, "\n".join(wrong)


def test_the_built_in_application_lives_under_app_and_the_framework_does_not_name_it():
    assert "broker_jobs.app.jobs" in MODULES and "broker_jobs.app.tables" in MODULES
    moved = ("broker_jobs.connectors", "broker_jobs.vectors", "broker_jobs.entities", "broker_jobs.store.data_models")
    for old in moved:
        assert old not in MODULES, f"{old} belongs under broker_jobs/app"
    # The entry modules only: the dramatiq/periodiq entry and `python -m broker_jobs`.
    assert [n for n in MODULES if n.startswith("broker_jobs.actors.")] == []


def test_every_import_inside_a_function_says_why_it_is_deferred():
    unmarked = [i for imports in IMPORTS.values() for i in imports if i.in_function and "# deferred:" not in i.text]
    stale = OTHERS_UNMARKED - {i.module for i in unmarked}
    assert not stale, f"every function-level import marked now, remove from OTHERS_UNMARKED: {sorted(stale)}"
    wrong = [f"{i.module}:{i.line}: {i.text.strip().splitlines()[0]}" for i in unmarked
             if i.module not in OTHERS_UNMARKED]
    assert not wrong, "imports inside functions without a '# deferred: <why>' comment:\n" + "\n".join(wrong)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = [ast.unparse(t) for t in (handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type])]
    return any(n.split(".")[-1] in ("ImportError", "ModuleNotFoundError") for n in names)


def test_no_try_except_import_error_around_our_own_modules():
    wrong = []
    for name, (_, tree, _) in MODULES.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try) or not any(_catches_import_error(h) for h in node.handlers):
                continue
            for statement in node.body:
                for inner in ast.walk(statement):
                    if isinstance(inner, ast.Import | ast.ImportFrom) and resolve(inner, name):
                        wrong.append(f"{name}:{inner.lineno}")
    stale = OTHERS_IMPORT_ERROR_GUARDS - {w.split(":")[0] for w in wrong}
    assert not stale, f"guard gone, remove from OTHERS_IMPORT_ERROR_GUARDS: {sorted(stale)}"
    wrong = [w for w in wrong if w.split(":")[0] not in OTHERS_IMPORT_ERROR_GUARDS]
    assert not wrong, "our own modules imported under try/except ImportError: " + ", ".join(wrong)


def _loads_by_name(call: ast.Call) -> bool:
    func = ast.unparse(call.func)
    return func in ("importlib.import_module", "import_module", "__import__")


def _names_our_module(argument: ast.expr) -> bool:
    """A literal (or f-string) naming one of our modules, absolute or relative."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value.startswith(("broker_jobs", "."))
    return isinstance(argument, ast.JoinedStr) and ast.unparse(argument)[2:].startswith("broker_jobs")


def test_no_module_of_ours_is_loaded_by_a_name_string():
    wrong = [f"{name}:{node.lineno}: {ast.unparse(node)}" for name, (_, tree, _) in MODULES.items()
             for node in ast.walk(tree)
             if isinstance(node, ast.Call) and _loads_by_name(node) and node.args and _names_our_module(node.args[0])]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("source, expected", [
    ("import broker_jobs.a\n", ["broker_jobs.a"]),
    ("from . import b\n", ["broker_jobs.b"]),
])
def test_the_reader_resolves_absolute_and_relative_imports(source: str, expected: list[str], monkeypatch):
    # The checks above are only as good as this resolution: a relative import must land on the module it names.
    monkeypatch.setitem(MODULES, "broker_jobs.a", MODULES["broker_jobs"])
    monkeypatch.setitem(MODULES, "broker_jobs.b", MODULES["broker_jobs"])
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.Import | ast.ImportFrom)
    assert list(resolve(node, "broker_jobs.errors")) == expected


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import(monkeypatch):
    # A cycle hidden in a function body (the old broker -> periodiq_compat -> config -> job -> broker) is a cycle.
    fake = {"broker_jobs.x": [Import("broker_jobs.x", 1, ("broker_jobs.y",), False, "")],
            "broker_jobs.y": [Import("broker_jobs.y", 9, ("broker_jobs.x",), True, "")]}
    monkeypatch.setitem(globals(), "IMPORTS", fake)
    monkeypatch.setitem(globals(), "MODULES", dict.fromkeys(fake))
    assert cycles() == [["broker_jobs.x", "broker_jobs.y"]]
