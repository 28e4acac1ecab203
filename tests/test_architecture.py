"""The import contract (docs/architecture.md), checked on the source text with ``ast``.

Every ``import`` counts: module-level, function-local, under ``if TYPE_CHECKING`` and
``importlib.import_module("...")`` with a literal name.  Files map to module names through
pyproject's ``[tool.setuptools.package-dir]`` (``ca/x.py`` -> ``jpki_mock.ca.x``), the same
mapping the installed wheel uses.  Each rule is its own test id, so a failure names the rule
and lists every offending ``importer -> imported`` pair.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = "jpki_mock"

# The one table classifying jpki_mock/*.py.  A new file in jpki_mock/ fails
# test_every_jpki_mock_module_is_classified until it is added here on purpose.
JPKI_MOCK_MODULES: dict[str, str] = {
    "__init__": "kernel",
    "errors": "kernel",
    "clock": "kernel",
    "travel": "kernel",
    "config": "kernel",
    "der": "kernel",
    "vocab": "kernel",
    "db": "kernel",
    "epoch": "kernel",
    "access": "kernel",
    "urls": "kernel",
    "web": "kernel",
    "commands": "kernel",
    "names": "kernel",
    "municipalities": "kernel",
    "private": "kernel",
    "datadir": "kernel",
    "rsgi": "kernel",
    "audit": "kernel",
    "accesslog": "kernel",
    "audit_views": "kernel",
    "runtime": "root",
    "app": "root",
    "apidoc": "root",
    "server": "root",
    "cli": "root",
}
KERNEL = frozenset(PKG if n == "__init__" else f"{PKG}.{n}" for n, k in JPKI_MOCK_MODULES.items() if k == "kernel")
ROOT_MODULES = frozenset(f"{PKG}.{n}" for n, k in JPKI_MOCK_MODULES.items() if k == "root")
PARTS = ("ca", "crl", "ocsp", "public", "console", "kit", "loadtest")
# The narrow interfaces crl and ocsp may use (docs/architecture.md): a read-only status view
# and a signer that never hands out a key.
CA_INTERFACES = frozenset({f"{PKG}.ca.status", f"{PKG}.ca.signer"})

Graph = Mapping[str, Iterable[str]]


def part_of(module: str) -> str | None:
    """The part ("ca", "crl", ...) a module belongs to, or None for kernel/root/outside."""
    for part in PARTS:
        if module == f"{PKG}.{part}" or module.startswith(f"{PKG}.{part}."):
            return part
    return None


def layer(module: str) -> str:
    if module in KERNEL:
        return "kernel"
    if module in ROOT_MODULES:
        return "root"
    return part_of(module) or "unclassified"


# --- building the graph from the source -------------------------------------------------


def package_dirs() -> dict[str, Path]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def module_files() -> dict[str, Path]:
    """Module name -> file for every .py under the mapped folders (subfolders included)."""
    dirs = package_dirs()
    files: dict[str, Path] = {}
    for package, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            name = ".".join((package, *rel))
            # A folder mapped on its own (ca/ for jpki_mock.ca) wins over its parent's walk.
            if name in files and files[name] != path:
                raise AssertionError(f"{name} maps to both {files[name]} and {path}")
            files[name] = path
    return files


def resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        raise AssertionError(f"{module}: relative import beyond the top-level package")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """Every jpki_mock module ``module`` imports, wherever in the file the import sits."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        if name == PKG or name.startswith(PKG + "."):
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (
                resolve_relative(module, is_package, node.level, node.module) if node.level else node.module or ""
            )
            for alias in node.names:
                # `from pkg import sub` imports the submodule; `from pkg import name` the package.
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if (
                fname in {"import_module", "__import__"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                add(node.args[0].value)
    found.discard(module)
    return found


def build_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, files) for name, path in files.items()}


# --- the rules: each returns "importer -> imported" lines, empty when the graph obeys ------


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    check: Callable[[Graph], list[str]]


def edges(graph: Graph) -> Iterable[tuple[str, str]]:
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            yield src, dst


def forbid(applies: Callable[[str], bool], forbidden: Callable[[str, str], bool]) -> Callable[[Graph], list[str]]:
    def check(graph: Graph) -> list[str]:
        return [
            f"{src} ({layer(src)}) -> {dst} ({layer(dst)})"
            for src, dst in edges(graph)
            if applies(src) and forbidden(src, dst)
        ]

    return check


def in_parts(*parts: str) -> Callable[[str], bool]:
    return lambda m: part_of(m) in parts


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle path per strongly connected component (Tarjan), each closed: [a, b, a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {d for targets in graph.values() for d in targets})

    def succ(v: str) -> list[str]:
        return sorted(graph.get(v, ()))

    for start in nodes:
        if start in index:
            continue
        # Iterative Tarjan: the graph is small, but recursion depth should not depend on it.
        work = [(start, iter(succ(start)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ(w))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in graph.get(v, ()):
                    components.append(sorted(comp))

    cycles = []
    for comp in components:
        members = set(comp)
        first = comp[0]
        # Shortest path inside the component from first back to first (BFS).
        prev: dict[str, str] = {}
        frontier = [first]
        seen = set()
        end = None
        while frontier and end is None:
            nxt = []
            for v in frontier:
                for w in succ(v):
                    if w not in members:
                        continue
                    if w == first:
                        end = v
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        path = [first]
        v = end
        while v is not None and v != first:
            path.append(v)
            v = prev.get(v)
        cycles.append([first, *reversed(path[1:]), first])
    return cycles


def no_cycles(graph: Graph) -> list[str]:
    return [" -> ".join(cycle) for cycle in find_cycles(graph)]


RULES = [
    Rule(
        "kernel-imports-no-part-and-no-root",
        "the kernel imports no part (ca, crl, ocsp, kit, loadtest) and no root module",
        forbid(lambda s: s in KERNEL, lambda s, d: part_of(d) is not None or d in ROOT_MODULES),
    ),
    Rule(
        "ca-imports-only-kernel-and-ca",
        "ca imports only the kernel and ca",
        forbid(in_parts("ca"), lambda s, d: d not in KERNEL and part_of(d) != "ca"),
    ),
    Rule(
        "crl-ocsp-public-use-only-ca-status-and-ca-signer",
        "crl, ocsp and public import only the kernel, themselves, jpki_mock.ca.status and jpki_mock.ca.signer "
        "(not the rest of ca, not the root, not kit or loadtest, not each other)",
        forbid(
            in_parts("crl", "ocsp", "public"),
            lambda s, d: d not in KERNEL and d not in CA_INTERFACES and part_of(d) != part_of(s),
        ),
    ),
    Rule(
        "only-root-and-console-import-kit-and-loadtest",
        "only the composition root imports kit or loadtest, and the console kit (each may import itself; "
        "loadtest/bench is loadtest)",
        forbid(
            lambda s: s not in ROOT_MODULES,
            lambda s, d: part_of(d) in ("kit", "loadtest") and part_of(d) != part_of(s)
            and not (part_of(s) == "console" and part_of(d) == "kit"),
        ),
    ),
    Rule(
        "console-is-an-edge",
        "the console (an edge, like the admin API) imports neither the root nor loadtest, and only the root "
        "imports the console",
        forbid(
            lambda s: True,
            lambda s, d: (part_of(s) == "console" and (d in ROOT_MODULES or part_of(d) == "loadtest"))
            or (part_of(d) == "console" and part_of(s) != "console" and s not in ROOT_MODULES),
        ),
    ),
    Rule(
        "kit-imports-no-crl-ocsp-loadtest-root",
        "kit imports neither crl, ocsp, loadtest nor the root",
        forbid(in_parts("kit"), lambda s, d: part_of(d) in ("crl", "ocsp", "loadtest") or d in ROOT_MODULES),
    ),
    Rule("no-import-cycles", "no import cycles at all (TYPE_CHECKING and function-local imports count)", no_cycles),
]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return build_graph()


def test_graph_covers_the_repository(graph: dict[str, set[str]]) -> None:
    # A broken walk (a renamed folder, a changed mapping) must not make every rule pass.
    for name in (f"{PKG}.clock", f"{PKG}.app", f"{PKG}.ca.status", f"{PKG}.crl.writer",
                 f"{PKG}.ocsp.response", f"{PKG}.kit.card", f"{PKG}.loadtest.bench.ocsp"):
        assert name in graph, f"{name} not found; modules seen: {sorted(graph)}"
    assert f"{PKG}.runtime" in graph[f"{PKG}.app"], "the graph lost app's import of runtime"


def test_every_jpki_mock_module_is_classified() -> None:
    unknown = sorted(p.stem for p in (ROOT / PKG).glob("*.py") if p.stem not in JPKI_MOCK_MODULES)
    missing = sorted(n for n in JPKI_MOCK_MODULES if not (ROOT / PKG / f"{n}.py").exists())
    assert not unknown, (
        f"jpki_mock/{{{', '.join(unknown)}}}.py is in neither the kernel nor the root: classify it in "
        "JPKI_MOCK_MODULES (tests/test_architecture.py) and docs/architecture.md"
    )
    assert not missing, f"JPKI_MOCK_MODULES lists modules that no longer exist: {missing}"


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_import_contract(rule: Rule, graph: dict[str, set[str]]) -> None:
    violations = rule.check(graph)
    assert not violations, f"rule: {rule.text}\n{len(violations)} violation(s):\n  " + "\n  ".join(violations)


# --- the checker checks: a synthetic graph with one violation per rule -------------------

SYNTHETIC: dict[str, set[str]] = {
    f"{PKG}.clock": {f"{PKG}.ca.models"},
    f"{PKG}.ca.authority": {f"{PKG}.runtime", f"{PKG}.clock"},
    f"{PKG}.ca.models": set(),
    f"{PKG}.crl.writer": {f"{PKG}.ca.status", f"{PKG}.ca.issuers", f"{PKG}.ocsp.der"},
    f"{PKG}.ocsp.der": {f"{PKG}.ca.signer"},
    f"{PKG}.ocsp.source": {f"{PKG}.kit.card"},
    f"{PKG}.kit.card": {f"{PKG}.crl.http"},
    f"{PKG}.crl.http": {f"{PKG}.ocsp.source"},
    f"{PKG}.runtime": {f"{PKG}.kit.card", f"{PKG}.loadtest.runner"},
    f"{PKG}.loadtest.bench.ocsp": {f"{PKG}.runtime", f"{PKG}.loadtest.runner"},
    f"{PKG}.loadtest.runner": {f"{PKG}.kit.scenarios"},
    f"{PKG}.kit.scenarios": {f"{PKG}.kit.card"},
    f"{PKG}.console.views": {f"{PKG}.kit.card", f"{PKG}.ca.authority", f"{PKG}.loadtest.runner"},
    f"{PKG}.ca.events": {f"{PKG}.console.views"},
}
EXPECTED = {
    "kernel-imports-no-part-and-no-root": ["jpki_mock.clock (kernel) -> jpki_mock.ca.models (ca)"],
    "ca-imports-only-kernel-and-ca": [
        "jpki_mock.ca.authority (ca) -> jpki_mock.runtime (root)",
        "jpki_mock.ca.events (ca) -> jpki_mock.console.views (console)",
    ],
    "crl-ocsp-public-use-only-ca-status-and-ca-signer": [
        "jpki_mock.crl.http (crl) -> jpki_mock.ocsp.source (ocsp)",
        "jpki_mock.crl.writer (crl) -> jpki_mock.ca.issuers (ca)",
        "jpki_mock.crl.writer (crl) -> jpki_mock.ocsp.der (ocsp)",
        "jpki_mock.ocsp.source (ocsp) -> jpki_mock.kit.card (kit)",
    ],
    "only-root-and-console-import-kit-and-loadtest": [
        "jpki_mock.console.views (console) -> jpki_mock.loadtest.runner (loadtest)",
        "jpki_mock.loadtest.runner (loadtest) -> jpki_mock.kit.scenarios (kit)",
        "jpki_mock.ocsp.source (ocsp) -> jpki_mock.kit.card (kit)",
    ],
    "console-is-an-edge": [
        "jpki_mock.ca.events (ca) -> jpki_mock.console.views (console)",
        "jpki_mock.console.views (console) -> jpki_mock.loadtest.runner (loadtest)",
    ],
    "kit-imports-no-crl-ocsp-loadtest-root": ["jpki_mock.kit.card (kit) -> jpki_mock.crl.http (crl)"],
    "no-import-cycles": ["jpki_mock.crl.http -> jpki_mock.ocsp.source -> jpki_mock.kit.card -> jpki_mock.crl.http"],
}


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_checker_reports_synthetic_violations(rule: Rule) -> None:
    assert rule.check(SYNTHETIC) == EXPECTED[rule.id]


def test_cycle_finder_reports_self_loops_and_every_component() -> None:
    cycles = find_cycles({"a": {"a"}, "b": {"c"}, "c": {"d"}, "d": {"b"}, "e": {"b"}})
    assert cycles == [["a", "a"], ["b", "c", "d", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_parser_sees_local_type_checking_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "writer.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "if TYPE_CHECKING:\n"
        "    from jpki_mock.runtime import Runtime\n"
        "def f():\n"
        "    from ..ca import issuers\n"
        "    from . import der\n"
        "    from .models import Crl\n"
        "    import jpki_mock.kit.card as card\n"
        "    return importlib.import_module('jpki_mock.ocsp.source')\n"
    )
    known = {f"{PKG}.ca.issuers", f"{PKG}.crl.der", f"{PKG}.crl.models"}
    assert imports_of(f"{PKG}.crl.writer", src, known) == {
        f"{PKG}.runtime",
        f"{PKG}.ca.issuers",
        f"{PKG}.crl.der",
        f"{PKG}.crl.models",
        f"{PKG}.kit.card",
        f"{PKG}.ocsp.source",
    }
    init = tmp_path / "__init__.py"
    init.write_text("from .status import CertStatus\nfrom . import signer\n")
    assert imports_of(f"{PKG}.ca", init, {f"{PKG}.ca.signer"}) == {f"{PKG}.ca.status", f"{PKG}.ca.signer"}
