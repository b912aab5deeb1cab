"""The codebase's shape, measured from the code: what a newcomer relies on to find their way.

    python scripts/shape.py           # a report; exit 1 if a rule is broken

Rules (docs/architecture.md says why): no module over 600 lines, no function over 80; no import
cycle between the package's modules (imports inside functions counted); `Delivery` composed,
with no base class; the planner imports no storage or network module; `server.py` and the CLI
name no backend class; `HubSpotClient` takes a transport; every file the code and docs cite is
in the repository. `tests/unit/test_shape.py` runs the same checks.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "hubspot_relay"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
NOTES = ("DESIGN", "STYLE")  # the design notes, kept outside the repository
BACKEND_CLASSES = (
    "SQLiteQueue",
    "RedisQueue",
    "IdentityMap",
    "RedisIdentityMap",
    "SharedLimiter",
    "Ownership",
)
# What the planner may not import: stores, the network, the clock's owners.
PLANNER_FORBIDDEN = (
    "hubspot_relay.queue.sqlite",
    "hubspot_relay.queue.redis_streams",
    "hubspot_relay.state",
    "hubspot_relay.hubspot.client",
    "sqlite3",
    "redis",
    "httpx",
    "asyncio",
)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of the package that `name` imports, wherever the import stands."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & known.keys()
            found.update(submodules)  # `from . import x`: x, its package being imported already
            if len(submodules) < len(node.names):
                found.add(target)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append((f"{prefix}{child.name}", length))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def missing_references() -> list[str]:
    """Files the code and docs name that the repository lacks (design notes kept elsewhere, moved
    modules): a markdown link, or a path with a folder the repository has."""
    roots = ("src/", "tests/", "bench/", "docs/", "scripts/", "assets/")
    texts = [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")]
    texts += [p for d in ("src", "tests", "bench", "scripts") for p in (ROOT / d).rglob("*.py")]
    out = []
    link = re.compile(r"\]\(([^)#\s]+)\)")
    path_like = re.compile(r"(?<![\w./-])((?:src|tests|bench|docs|scripts|assets)/[\w./-]+\.\w+)")
    for text_path in texts:
        text = text_path.read_text(errors="replace")
        if any(f"{name}.md" in text for name in NOTES):
            out.append(f"{text_path.relative_to(ROOT)}: cites design notes kept outside the repository")
        links = link.findall(text) if text_path.suffix == ".md" else []
        cited = {m for m in links if "://" not in m and not m.startswith("mailto:")}
        cited |= {m.rstrip(".") for m in path_like.findall(text)}
        for ref in sorted(cited):
            base = text_path.parent if ref in links else ROOT
            if ref.startswith(roots):
                base = ROOT
            if any(ch in ref for ch in "*{}<>"):
                continue
            if not (base / ref).exists() and not (ROOT / ref).exists():
                out.append(f"{text_path.relative_to(ROOT)}: cites {ref}, which is not in the repository")
    return out


def measure() -> Report:
    r = Report()
    known = modules()
    sizes = {name: len(path.read_text().splitlines()) for name, path in known.items()}
    big = {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES}
    for n, s in sorted(big.items(), key=lambda x: -x[1]):
        r.problems.append(f"module {n}: {s} lines (over {MAX_MODULE_LINES})")
    r.facts.append(f"largest module: {max(sizes, key=sizes.__getitem__)} ({max(sizes.values())} lines)")
    longest: list[tuple[str, int]] = []
    for name, path in known.items():
        for fn, length in long_functions(path):
            longest.append((f"{name}.{fn}", length))
    for fn, length in sorted(longest, key=lambda x: -x[1]):
        r.problems.append(f"function {fn}: {length} lines (over {MAX_FUNCTION_LINES})")
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # Importing a package's module imports the package first: a cycle through __init__ counts.
    for cycle in cycles(graph):
        r.problems.append("import cycle: " + " <-> ".join(cycle))
    r.facts.append(f"modules: {len(known)}, import edges: {sum(len(v) for v in graph.values())}")

    loop = known.get(f"{PACKAGE}.delivery.loop")
    if loop is not None:
        tree = ast.parse(loop.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "Delivery" and node.bases:
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                r.problems.append(f"Delivery has base classes: {bases}")
    planner = known.get(f"{PACKAGE}.delivery.planner")
    if planner is not None:
        every: set[str] = set()
        for node in ast.walk(ast.parse(planner.read_text())):
            if isinstance(node, ast.Import):
                every.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                every.add(resolve(f"{PACKAGE}.delivery", node))
        bad = sorted(m for m in every if m.startswith(PLANNER_FORBIDDEN))
        if bad:
            r.problems.append("the planner imports storage or network modules: " + ", ".join(bad))
    edges = [known[f"{PACKAGE}.server"], *[p for n, p in known.items() if n.startswith(f"{PACKAGE}.cli")]]
    for path in edges:
        names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
        names |= {
            a.asname or a.name
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ImportFrom)
            for a in n.names
        }
        named = sorted(names & set(BACKEND_CLASSES))
        if named:
            r.problems.append(f"{path.relative_to(ROOT)} names backend classes: {', '.join(named)}")
    client = known[f"{PACKAGE}.hubspot.client"].read_text()
    init = re.search(r"class HubSpotClient.*?def __init__\((.*?)\)\s*->", client, re.S)
    if not init or "transport" not in init.group(1) or "AsyncClient" in init.group(1):
        r.problems.append("HubSpotClient does not take a transport")
    r.problems.extend(missing_references())
    return r


def resolve(package: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def main() -> int:
    r = measure()
    for fact in r.facts:
        print(fact)
    for problem in r.problems:
        print("BROKEN:", problem)
    print("shape: ok" if not r.problems else f"shape: {len(r.problems)} problems")
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main())
