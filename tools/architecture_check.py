"""The architecture check: plugins import only Lily's public API, and the host keeps its layers.

Run ``python tools/architecture_check.py`` (``nox -s lint`` does). It reads imports as the Python
AST has them: module-level, function-level and ``if TYPE_CHECKING:`` imports all count, because a
lazy import is still a dependency. Exit status 1 and one line per violation when a rule is broken.

Rules:
1. A plugin (any package outside ``lily_host``: ``plugins/*``, and the template ``lily plugin new``
   renders, ``lily_host/scaffold/template``, whose ``*.py.tmpl`` files are read as Python) imports
   from ``lily_host`` only the public modules: ``lily_host``, ``lily_host.testing``, ``lily_host.fakes``.
2. No import cycle between the modules of ``lily_host``.
3. The host's wings form layers; a module may import its own wing and any lower one, never a
   higher one. Nothing inside ``lily_host`` imports the ``lily_host`` facade (``__init__``).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PUBLIC_MODULES = frozenset({"lily_host", "lily_host.testing", "lily_host.fakes"})

#: The wings of ``lily_host``, highest first. A wing may import only wings at or below its rank.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "testing"),
    ("dev",),
    ("scaffold",),
    ("web",),
    ("builtins",),
    ("runtime",),
    ("sms",),
    ("records",),
    ("queue", "tenants"),
    ("config",),
    ("observability",),
    ("fakes",),
    ("plugin_api",),
)

RANK = {wing: len(LAYERS) - index for index, wings in enumerate(LAYERS) for wing in wings}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (or module.attribute for ``from x import y``)
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1].endswith(".py"):  # a template's ``name.py.tmpl``
        parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}" if base else alias.name, path, node.lineno)


def resolve(target: str, modules: set[str]) -> str | None:
    """The longest known ``lily_host`` module that ``target`` names (``from a.b import c`` → a.b.c or a.b)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def wing_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lily_host" else None


#: The plugin template inside the host's package: a plugin, not host code.
TEMPLATE = Path("lily_host") / "scaffold" / "template"


def python_files(root: Path, *, suffixes: tuple[str, ...] = ("*.py",)) -> Iterable[Path]:
    return (
        p for suffix in suffixes for p in root.rglob(suffix) if ".nox" not in p.parts and "__pycache__" not in p.parts
    )


def host_violations(host_root: Path) -> tuple[list[str], dict[str, set[str]]]:
    """Layer and facade violations inside ``lily_host``, and its import graph."""
    root = host_root.parent
    files = {module_name(p, root): p for p in python_files(host_root)}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    problems: list[str] = []
    for module, path in sorted(files.items()):
        for imp in imports_of(path, module):
            if not imp.target.startswith("lily_host"):
                continue
            target = resolve(imp.target, modules)
            if target is None or target == module:
                continue
            graph[module].add(target)
            where = f"{path}:{imp.line}"
            if module == "lily_host":
                continue  # the facade re-exports from every wing
            if target == "lily_host":
                problems.append(
                    f"{where}: {module} imports the lily_host facade; import from the wing that owns the name"
                )
                continue
            source_wing, target_wing = wing_of(module), wing_of(target)
            if source_wing is None or target_wing is None or source_wing == target_wing:
                continue
            if source_wing not in RANK or target_wing not in RANK:
                problems.append(f"{where}: {module} or {target} is in no layer of tools/architecture_check.py")
            elif RANK[target_wing] > RANK[source_wing]:
                problems.append(
                    f"{where}: {module} ({source_wing}) imports {target} from a higher layer ({target_wing})"
                )
    return problems, graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def plugin_violations(plugin_roots: Iterable[Path]) -> list[str]:
    problems: list[str] = []
    for plugin_root in plugin_roots:
        for path in python_files(plugin_root, suffixes=("*.py", "*.py.tmpl")):
            for imp in imports_of(path, module_name(path, plugin_root)):
                if not imp.target.startswith("lily_host"):
                    continue
                allowed = imp.target in PUBLIC_MODULES or imp.target.rpartition(".")[0] in PUBLIC_MODULES
                if not allowed:
                    problems.append(
                        f"{path}:{imp.line}: imports {imp.target}; plugins may import only "
                        "lily_host, lily_host.testing and lily_host.fakes (see docs/api.md)"
                    )
    return problems


def check(repo: Path) -> list[str]:
    problems, graph = host_violations(repo / "lily_host")
    for component in cycles(graph):
        problems.append("import cycle in lily_host: " + " -> ".join(component))
    problems += plugin_violations(plugin_roots(repo))
    return problems


def plugin_roots(repo: Path) -> list[Path]:
    """Every plugin the check reads: ``plugins/*`` and the scaffold's template."""
    roots = [p for p in sorted((repo / "plugins").glob("*")) if p.is_dir()]
    if (repo / TEMPLATE).is_dir():
        roots.append(repo / TEMPLATE)
    return roots


def main(argv: list[str]) -> int:
    repo = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = check(repo)
    for problem in problems:
        print(problem)
    if problems:
        print(f"architecture check: {len(problems)} violation(s)")
        return 1
    print("architecture check: plugins use the public API only; lily_host has no cycle and keeps its layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
