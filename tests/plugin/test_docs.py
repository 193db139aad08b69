"""The documentation site: it builds with `mkdocs build --strict` (a broken link or
anchor fails), the configuration reference is generated from the code with every field
described, every message the troubleshooting page quotes is one the code emits, and
the supported-versions table says what pyproject.toml, versions.py and nebari pin."""

from __future__ import annotations

import ast
import enum
import importlib.util
import re
import subprocess
import sys
import typing
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


def build_site(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    """What `make docs` runs: `mkdocs build --strict`, the plugin's sources first."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip


def test_the_site_builds_strictly(tmp_path):
    """What `make docs` runs; mkdocs.yml sets strict and anchor validation."""
    result = build_site(tmp_path / "site")
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


def _choices_of(annotation) -> list | None:
    """The values a Literal or Enum field allows (through Optional and Annotated)."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        if typing.get_origin(arg) is typing.Literal:
            return list(typing.get_args(arg))
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [member.value for member in arg]
    return None


def test_a_field_with_fixed_choices_lists_them():
    """A Literal or Enum field's type is its allowed values, as written in the config
    (e.g. mlflow.azure.account_replication_type: "ZRS", "LRS", ...), not "Literal"."""
    reference = _module("docs_reference", ROOT / "scripts" / "docs_reference.py")
    sections = reference.pydantic_sections(reference.mlflow_model())
    types_by_path = {row[0]: row[1] for _, _, rows in sections for row in rows}
    models = {"mlflow": reference.mlflow_model()}
    checked = []
    while models:
        path, model = models.popitem()
        for name, field in model.model_fields.items():
            sub = reference._model(field.annotation)
            if sub is not None:
                models[f"{path}.{name}"] = sub
            values = _choices_of(field.annotation)
            if values:
                shown = types_by_path[f"{path}.{name}"]
                assert shown == " \\| ".join(f'`"{v}"`' for v in values), (path, name, shown)
                checked.append(f"{path}.{name}")
    assert "mlflow.azure.account_replication_type" in checked
    assert "mlflow.auth.default_permission" in checked  # an Enum
    assert not [t for t in types_by_path.values() if re.search(r"Literal|Annotated|Union", t)]


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


# Quoted answers no code of this project or of MLflow emits: Nebari's Traefik and
# forward-auth give them. Each: (whose, as the page names it right after the quote;
# where it comes from).
THIRD_PARTY = {
    "500 Internal Server Error": (
        "Traefik",
        "traefik/traefik v2 (Nebari 2025.10 runs 2.9.1) pkg/middlewares/auth/forward.go, "
        "forwardAuth.ServeHTTP: when the request to the auth server fails (fa.client.Do, "
        "client timeout 30 s), rw.WriteHeader(http.StatusInternalServerError), no body; the "
        "reason phrase is Go's http.StatusText(500)",
    ),
    "Service unavailable": (
        "traefik-forward-auth",
        "thomseddon/traefik-forward-auth internal/server.go, AuthCallbackHandler: "
        'http.Error(w, "Service unavailable", 503) when p.ExchangeCode (Keycloak) fails; '
        "Nebari runs maxisme/traefik-forward-auth, a fork of it",
    ),
}


def _page() -> str:
    return (DOCS / "troubleshooting.md").read_text()


def quoted_messages() -> list[str]:
    """Lines of every ```text block of the troubleshooting page."""
    blocks = re.findall(r"^```text\n(.*?)^```", _page(), flags=re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_troubleshooting_page_quotes_messages():
    assert len(quoted_messages()) >= 20


def test_quotes_of_other_software_are_quoted_named_and_not_ours():
    """Each third-party quote is on the page, in a block of its own, followed by prose
    naming whose it is; none is a message this project or MLflow emits (those are
    checked against the code instead)."""
    page = _page()
    for quote, (whose, _source) in THIRD_PARTY.items():
        block = f"```text\n{quote}\n```\n"
        assert block in page, quote
        after = page.split(block, 1)[1][:400]
        assert whose in after, (quote, whose)
        assert not Emits(quote).ok(), quote


@pytest.mark.parametrize("message", [m for m in quoted_messages() if m not in THIRD_PARTY])
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


NEBARI_SERVICES = (
    Path(nebari_constants.__file__).parent
    / "stages" / "kubernetes_services" / "template" / "modules" / "kubernetes" / "services"
)  # fmt: skip


def versions_table() -> dict[str, tuple[str, str]]:
    """component -> (version, where it comes from)."""
    page = (DOCS / "reference" / "versions.md").read_text()
    rows = re.findall(r"^\| ([^|]+?) \| `([^|]+)` \| (.+) \|$", page, flags=re.MULTILINE)
    return {name: (value, source) for name, value, source in rows}


def _nebari_chart(module: str, chart: str) -> str:
    """The version of a Helm chart nebari 2025.10's stage 08 installs."""
    text = (NEBARI_SERVICES / module / "main.tf").read_text()
    return re.search(rf'chart\s*=\s*"{chart}"\s*\n\s*version\s*=\s*"([^"]+)"', text)[1]


def _makefile(variable: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    return re.search(rf"^{variable} := (\S+)", makefile, flags=re.MULTILINE)[1]


def _expected_versions() -> dict[str, str]:
    """Each row's version as its source of truth says; a row without an entry fails."""
    from support.crds import PROMETHEUS_CRDS
    from test_chart import K8S_VERSIONS
    from test_notebook_delivery import OLDEST_PYTHON

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (nebari,) = [d for d in project["dependencies"] if d.startswith("nebari")]
    highest = ".".join(nebari_constants.HIGHEST_SUPPORTED_K8S_VERSION)
    assert K8S_VERSIONS[-1] == highest  # the chart is validated up to nebari's highest
    prometheus = _nebari_chart("monitoring", "kube-prometheus-stack")
    # The ServiceMonitor/PrometheusRule tests validate against that release's CRDs.
    assert PROMETHEUS_CRDS.name == f"kube-prometheus-stack-{prometheus}-crds"
    table = versions_table()
    z2jh = _nebari_chart("jupyterhub", "jupyterhub")
    assert f"z2jh {z2jh} " in table["JupyterHub"][1]  # the JupyterHub the auth tests run
    # User pods: the tests' pod environment installs the server's MLflow; the notebook
    # package's modules are parsed as the oldest Python that MLflow 2.x runs on.
    assert "mlflow==$(MLFLOW_VERSION) ipykernel" in (ROOT / "Makefile").read_text()
    assert f"Python {'.'.join(map(str, OLDEST_PYTHON))}+" in table["MLflow in user pods"][1]
    return {
        "Nebari": nebari.removeprefix("nebari"),
        "OpenTofu": nebari_constants.OPENTOFU_VERSION,
        "MLflow image": f"{versions.MLFLOW_IMAGE}:{versions.MLFLOW_IMAGE_TAG}",
        "PostgreSQL": f"{versions.POSTGRES_IMAGE}:{versions.POSTGRES_IMAGE_TAG}",
        "PostgreSQL exporter": (
            f"{versions.POSTGRES_EXPORTER_IMAGE}:{versions.POSTGRES_EXPORTER_IMAGE_TAG}"
        ),
        "Kubernetes": f"{K8S_VERSIONS[0]}` - `{K8S_VERSIONS[-1]}",
        "Python (where `nebari` runs)": project["requires-python"],
        "JupyterHub": _makefile("JUPYTERHUB_VERSION").removesuffix(".*"),
        "kube-prometheus-stack": prometheus,
        "MLflow in user pods": versions.MLFLOW_VERSION,
    }


def test_supported_versions_say_what_the_project_pins():
    """Every row against its source; a row the test does not know fails, as does a
    source whose row is gone."""
    table = {name: value for name, (value, _) in versions_table().items()}
    assert table == _expected_versions()
