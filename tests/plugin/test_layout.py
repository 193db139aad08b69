"""The package's layout is a contract: which code runs where, and what may import what.

Read from the source with the stdlib's `ast` (every import, including those inside
functions and under TYPE_CHECKING: a lazy import is still a dependency), so a new
module that imports upward or closes a cycle fails here, not in a reviewer's head.
The groups and their order are also what docs/architecture.md shows; the last test
keeps the two the same.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "src" / "nebari_mlflow_plugin"
PACKAGE = "nebari_mlflow_plugin"

# The nebari process, top to bottom: a group may import its own modules and those of the
# groups below it, never above.
NEBARI_LAYERS = ["cli", "stages", "lifecycle", "render", "providers", "config"]
# Modules at the package root that every group may import: they import nothing of it.
ROOT_LEAVES = {"__about__", "versions", "assets"}
# Code delivered to pods as files; it runs with MLflow alone and imports nothing else of
# the package. The nebari side may import the notebook package's constants.
POD_PACKAGES = {"notebook", "server"}
# Never imported by anything in the package: nebari's entry point.
ENTRY_POINT = "plugin"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path) -> set[str]:
    """Modules of the package that `name` imports (a `from x import y` counts y when
    y is a module, else x)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def group(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def test_every_module_belongs_to_a_known_group():
    known = set(NEBARI_LAYERS) | ROOT_LEAVES | POD_PACKAGES | {ENTRY_POINT, "(package)"}
    strays = sorted(name for name in MODULES if group(name) not in known)
    assert not strays, f"modules outside the layout's groups: {strays}"


def test_nebari_side_imports_point_down():
    upward = []
    for name, targets in GRAPH.items():
        source = group(name)
        if source not in NEBARI_LAYERS:
            continue
        allowed = set(NEBARI_LAYERS[NEBARI_LAYERS.index(source) :]) | ROOT_LEAVES | {"notebook"}
        upward += [f"{name} -> {t}" for t in sorted(targets) if group(t) not in allowed]
    assert not upward, "imports that point up (or into server/):\n" + "\n".join(upward)


@pytest.mark.parametrize("package", sorted(POD_PACKAGES))
def test_pod_packages_import_nothing_of_the_nebari_side(package):
    outside = [
        f"{name} -> {t}"
        for name, targets in GRAPH.items()
        if group(name) == package
        for t in sorted(targets)
        if group(t) != package
    ]
    assert not outside, f"{package}/ runs with MLflow alone:\n" + "\n".join(outside)


def absolute_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("package", sorted(POD_PACKAGES))
def test_pod_packages_never_import_nebari(package):
    """nebari is not installed in the MLflow image nor in users' environments."""
    found = [
        f"{path.name}: {name}"
        for path in (PACKAGE_DIR / package).rglob("*.py")
        for name in absolute_imports(path)
        if name.split(".")[0] in {"nebari", "_nebari"}
    ]
    assert not found


def test_the_server_package_imports_itself_relatively():
    """It is delivered as the top-level package `nebari_mlflow_server`: an absolute
    `nebari_mlflow_plugin...` import would not resolve in the pod."""
    found = [
        f"{path.name}: {name}"
        for path in (PACKAGE_DIR / "server").rglob("*.py")
        for name in absolute_imports(path)
        if name.split(".")[0] == PACKAGE
    ]
    assert not found


def test_nothing_imports_the_entry_point():
    assert not [n for n, targets in GRAPH.items() if f"{PACKAGE}.{ENTRY_POINT}" in targets]


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_graph_sees_imports_inside_functions():
    """The parser is what the other tests stand on: a lazy import inside a function
    (the plugin's hooks) must be an edge."""
    assert f"{PACKAGE}.stages.mlflow_stage" in GRAPH[f"{PACKAGE}.plugin"]
    assert f"{PACKAGE}.cli.app" in GRAPH[f"{PACKAGE}.plugin"]


def test_architecture_page_shows_the_layers_in_order():
    page = (REPO / "docs" / "architecture.md").read_text()
    line = re.search(r"^Layers, top to bottom: (.+)$", page, re.M)
    assert line, "docs/architecture.md must state the layers ('Layers, top to bottom: ...')"
    shown = [part.strip(" `/") for part in line.group(1).split("→")]
    assert shown == NEBARI_LAYERS
    for package in POD_PACKAGES:
        assert f"{package}/" in page


def test_group_docstrings_name_their_imports():
    """Each group's __init__ says what it holds; a missing one means a group nobody
    described."""
    missing = [g for g in NEBARI_LAYERS if not ast.get_docstring(
        ast.parse((PACKAGE_DIR / g / "__init__.py").read_text()))]  # fmt: skip
    assert not missing


def _reverse_graph() -> dict[str, set[str]]:
    reverse: dict[str, set[str]] = defaultdict(set)
    for name, targets in GRAPH.items():
        for target in targets:
            reverse[target].add(name)
    return reverse


def test_root_leaves_import_nothing_of_the_package():
    leaves = {f"{PACKAGE}.{leaf}" for leaf in ROOT_LEAVES}
    assert not [f"{leaf} -> {GRAPH[leaf]}" for leaf in leaves if GRAPH[leaf]]
    # and they are used, or they would not be leaves but dead code
    reverse = _reverse_graph()
    assert all(reverse[leaf] for leaf in leaves)


def test_a_nebari_command_that_reads_no_config_loads_only_the_hooks_and_the_cli():
    """nebari imports the plugin on every command; only the commands that read
    nebari-config.yaml call `nebari_stage` and need the schema, the stages and the
    providers. Anything more on `nebari --help` is paid by every command."""
    import subprocess
    import sys

    nebari = Path(sys.executable).with_name("nebari")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(nebari), "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert " mlflow " in result.stdout  # the plugin was loaded at all
    # -X importtime: "import time: self | cumulative | <indent>module", one line a module.
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    loaded = {name for name in imported if name.split(".")[0] == PACKAGE}
    light = {
        f"{PACKAGE}{m}" for m in ("", ".__about__", ".plugin", ".cli", ".cli.app", ".cli.common")
    }
    assert f"{PACKAGE}.cli.app" in loaded
    assert loaded <= light, sorted(loaded - light)
