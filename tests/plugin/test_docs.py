"""The documentation site: it builds with `mkdocs build --strict` (a broken link or
anchor fails), the configuration reference is generated from the code with every field
described, every message the troubleshooting page quotes is one the code emits, and
the supported-versions table says what pyproject.toml, versions.py and nebari pin."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib
from _nebari import constants as nebari_constants

from nebari_mlflow_plugin import versions

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FIELD = None  # an interpolation in a source string
SLOT = "\x00"  # a <placeholder> in a quoted message


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly(tmp_path):
    """What `make docs` runs; mkdocs.yml sets strict and anchor validation."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "allowed_hosts_extra" in page and "podNetworkHosts" in page


def test_every_field_and_chart_value_has_a_description():
    reference = _module("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert reference.missing() == []
    text = reference.markdown()
    from nebari_mlflow_plugin.config.schema import MLflow

    top = text.split("### `mlflow`", 1)[1].split("###", 1)[0]
    for name in MLflow.model_fields:  # every top-level field has its row
        assert f"| `{name}` |" in top, name


# ---------------------------------------------------------------- quoted messages


def _parts_of_python(node: ast.AST) -> list | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts: list = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            else:
                parts.append(FIELD)
        return parts
    return None


QUOTED = re.compile(r"""(f?)("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
# Interpolations outside Python: bash ${x} / $x / $(...), Helm's printf verbs.
SHELL_OR_PRINTF = re.compile(r"\$\{[^}]*\}|\$\([^)]*\)|\$\w+|\$[*@#?]|%[sdqv]")


def _parts_of_text(literal: str, is_f: bool) -> list:
    body = literal[1:-1].replace("\\n", " ").replace('\\"', '"').replace("\\'", "'")
    pattern = SHELL_OR_PRINTF.pattern + (r"|\{[^{}]*\}" if is_f else "")
    pieces = re.split(f"(?:{pattern})", body)
    parts: list = []
    for i, piece in enumerate(pieces):
        if i:
            parts.append(FIELD)
        parts.append(piece)
    return parts


def _normal(parts: list) -> list:
    out = []
    for part in parts:
        if part is FIELD:
            out.append(FIELD)
        elif part:
            out.append(re.sub(r"\s+", " ", part))
    return out


@cache
def emitted_strings() -> tuple[tuple, ...]:
    """Every string the code can print: Python literals and f-strings of the plugin,
    quoted strings of the chart's templates, scripts and Terraform, and MLflow's server
    modules (for MLflow's own refusals)."""
    found: list[list] = []
    mlflow_server = sorted((ROOT / ".venv-mlflow").glob("lib/python*/site-packages/mlflow/server"))
    py_files = [*(ROOT / "src").rglob("*.py"), *(p for d in mlflow_server for p in d.glob("*.py"))]
    for path in py_files:
        for node in ast.walk(ast.parse(path.read_text())):
            parts = _parts_of_python(node)
            if parts is not None:
                found.append(_normal(parts))
    for base in (ROOT / "helm" / "mlflow", ROOT / "terraform"):
        for path in base.rglob("*"):
            if path.is_file() and path.suffix in {".tpl", ".yaml", ".sh", ".py", ".tf"}:
                for match in QUOTED.finditer(path.read_text()):
                    found.append(_normal(_parts_of_text(match.group(2), bool(match.group(1)))))
    # At least a few characters of fixed text: a bare "{x}" or "." glues anything.
    kept = {tuple(p) for p in found if sum(len(s) for s in p if s is not FIELD) >= 3}
    return tuple(sorted(kept, key=lambda p: [s or "" for s in p]))


class Emits:
    """Whether the code can produce a quoted line: the line is a sequence of source
    strings, each interpolation filled by a <placeholder> (quoted, for a `!r`) or,
    nested (depth 2), by another source string. A line may stop where the message goes
    on (its first line); a trailing `…` says so explicitly."""

    def __init__(self, text: str) -> None:
        self.prefix = True
        text = text.removesuffix("…").rstrip()
        text = re.sub(r"""(['"]?)<[^<>]+>\1""", SLOT, text)
        self.text = re.sub(r"\s+", " ", text).strip()
        self.memo: dict = {}

    def ok(self) -> bool:
        return len(self.text) in self.sequence(0, 2)

    def sequence(self, i: int, depth: int) -> set[int]:
        key = (i, depth)
        if key not in self.memo:
            self.memo[key] = set()
            reached, frontier = set(), {i}
            while frontier:
                step = set()
                for p in frontier:
                    step |= {j for j in self.piece(p, depth) if j > p} - reached
                reached |= step
                frontier = step
            self.memo[key] = reached
        return self.memo[key]

    def piece(self, i: int, depth: int) -> set[int]:
        ends: set[int] = {i + 1} if self.text[i : i + 1] == SLOT else set()
        for literal in emitted_strings():
            first = literal[0]
            if first is not FIELD and not self.text.startswith(first[:1], i):
                continue
            ends |= self.literal(i, literal, 0, depth)
        return ends

    def literal(self, i: int, parts: tuple, k: int, depth: int) -> set[int]:
        if k == len(parts):
            return {i}
        if self.prefix and i == len(self.text):
            return {i}
        part = parts[k]
        if part is not FIELD:
            if self.text.startswith(part, i):
                return self.literal(i + len(part), parts, k + 1, depth)
            if self.prefix and part.startswith(self.text[i:]):
                return {len(self.text)}
            return set()
        fills = {i + 1} if self.text[i : i + 1] == SLOT else set()
        if depth > 0:
            fills |= self.sequence(i, depth - 1)
        ends: set[int] = set()
        for j in fills:
            ends |= self.literal(j, parts, k + 1, depth)
        return ends


def quoted_messages() -> list[str]:
    """Lines of every ```text block of the troubleshooting page."""
    page = (DOCS / "troubleshooting.md").read_text()
    blocks = re.findall(r"^```text\n(.*?)^```", page, flags=re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_troubleshooting_page_quotes_messages():
    assert len(quoted_messages()) >= 20


@pytest.mark.parametrize("message", quoted_messages())
def test_every_quoted_message_is_one_the_code_emits(message):
    if not sorted((ROOT / ".venv-mlflow").glob("lib/python*/site-packages/mlflow")):
        pytest.skip(".venv-mlflow (MLflow's own messages) is not installed")
    assert Emits(message).ok(), f"no code emits: {message}"


def test_a_message_the_code_does_not_emit_is_caught():
    """The check can fail: a reworded message, an invented one, text in a slot."""
    assert Emits("takeover failed: waited <seconds> s for <what>").ok()
    assert not Emits("takeover failed: waited too long for <what>").ok()
    assert not Emits("MLflow is on fire").ok()
    assert not Emits("MLflow cannot verify who you are right now; try again shortly.").ok()


# ---------------------------------------------------------------- supported versions


def versions_table() -> dict[str, str]:
    page = (DOCS / "reference" / "versions.md").read_text()
    rows = re.findall(r"^\| ([^|]+?) \| `([^|]+)` \|", page, flags=re.MULTILINE)
    return {name: value for name, value in rows}


def test_supported_versions_say_what_the_project_pins():
    table = versions_table()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (nebari,) = [d for d in project["dependencies"] if d.startswith("nebari")]
    assert table["Nebari"] == nebari.removeprefix("nebari")
    assert table["Python (where `nebari` runs)"] == project["requires-python"]
    assert table["OpenTofu"] == nebari_constants.OPENTOFU_VERSION
    assert table["MLflow image"] == f"{versions.MLFLOW_IMAGE}:{versions.MLFLOW_IMAGE_TAG}"
    assert table["PostgreSQL"] == f"{versions.POSTGRES_IMAGE}:{versions.POSTGRES_IMAGE_TAG}"
    exporter = f"{versions.POSTGRES_EXPORTER_IMAGE}:{versions.POSTGRES_EXPORTER_IMAGE_TAG}"
    assert table["PostgreSQL exporter"] == exporter
    from test_chart import K8S_VERSIONS

    highest = ".".join(nebari_constants.HIGHEST_SUPPORTED_K8S_VERSION)
    assert table["Kubernetes"] == f"{K8S_VERSIONS[0]}` - `{K8S_VERSIONS[-1]}"
    assert K8S_VERSIONS[-1] == highest
    makefile = (ROOT / "Makefile").read_text()
    hub = re.search(r"^JUPYTERHUB_VERSION := (\S+)", makefile, flags=re.MULTILINE).group(1)
    assert table["JupyterHub"] == hub.removesuffix(".*")
