"""mlflow.route_path must share no request path with any of Nebari's Traefik routes.

The rules are read from nebari's installed templates here (not from the plugin),
and Traefik's semantics are restated as a brute-force oracle: `Path` is string
equality, `PathPrefix` a string prefix, ours is `Path(p) || PathPrefix(p/)`."""

from __future__ import annotations

import re
from pathlib import Path

import _nebari
import pydantic
import pytest
from support import nebari as nb

from nebari_mlflow_plugin.config.schema import ROUTE_PATH_PATTERN

STAGES = Path(_nebari.__file__).parent / "stages"
MATCH = re.compile(r'match\s*=\s*"([^"]*)"')
MATCHER = re.compile(r"\b(Path|PathPrefix)\(`([^`]*)`\)")
REFERENCE = re.compile(r"\$\{(local|var)\.([\w-]+)\}")
PER_CONFIG = "urlslug"  # tf_extensions: one route per configured extension


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def _resolve(name: str, scope: str, module: Path) -> str | None:
    """A local's value or a variable's default, from the module's .tf files."""
    text = "\n".join(p.read_text() for p in module.glob("*.tf"))
    if scope == "local":
        found = re.search(rf'^\s*{re.escape(name)}\s*=\s*"([^"]*)"', text, re.M)
    else:
        found = re.search(rf'variable\s+"{re.escape(name)}"\s*\{{[^}}]*?default\s*=\s*"([^"]*)"',
                          text, re.S)  # fmt: skip
    return found[1] if found else None


def nebari_rules() -> tuple[list[tuple[str, str]], list[str]]:
    """(kind, path) of every fixed matcher in nebari's templates, and the per-config
    path templates (tf_extensions) with `{urlslug}` left in."""
    fixed, per_config = [], []
    for tf in STAGES.rglob("*.tf"):
        for rule in MATCH.findall(tf.read_text()):
            for kind, path in MATCHER.findall(rule):
                if f"var.{PER_CONFIG}" in path:
                    per_config.append(path.replace(f"${{var.{PER_CONFIG}}}", "{urlslug}"))
                    continue
                path = REFERENCE.sub(lambda m, d=tf.parent: _resolve(m[2], m[1], d), path)
                fixed.append((kind, path))
    return sorted(set(fixed)), sorted(set(per_config))


FIXED, PER_CONFIG_TEMPLATES = nebari_rules()


def traefik_overlap(route: str, kind: str, path: str) -> bool:
    def ours(request: str) -> bool:
        return request == route or request.startswith(route + "/")

    def theirs(request: str) -> bool:
        return request == path if kind == "Path" else request.startswith(path)

    witnesses = {route, route + "/", route + "/x", path, path + "x", path + "/x"}
    return any(ours(w) and theirs(w) for w in witnesses)


def _candidates() -> list[str]:
    """Route paths around every Nebari path: equal, cut short, longer strings, below, above."""
    found = {"/mlflow", "/tracking", "/ml/flow", "/users", "/hubble", "/authors"}
    for _, path in FIXED:
        base = path.rstrip("/")
        if base:
            found |= {base, base[:-1], base + "ble", base + "-x", base + "/mlflow"}
            found |= {"/".join(base.split("/")[:n]) for n in range(2, base.count("/") + 1)}
    return sorted(p for p in found if re.fullmatch(ROUTE_PATH_PATTERN, p))


def _validate(route: str, **extra):
    return nb.validate(nb.config_dict("local", {"route_path": route}, **extra))


def test_templates_were_read():
    kinds_paths = set(FIXED)
    # What the brief names must be among what the templates say (parsing works).
    for expected in ("/hub", "/user", "/home", "/token", "/admin", "/auth", "/_oauth",
                     "/conda-store", "/gateway/", "/argo", "/monitoring", "/services"):  # fmt: skip
        assert ("PathPrefix", expected) in kinds_paths, expected
    assert PER_CONFIG_TEMPLATES == ["/{urlslug}/"]


@pytest.mark.parametrize("route", _candidates())
def test_route_refused_exactly_when_traefik_would_mix_requests(route):
    taken = [rule for rule in FIXED if traefik_overlap(route, *rule)]
    if not taken:
        assert _validate(route).mlflow.route_path == route
        return
    with pytest.raises(pydantic.ValidationError) as info:
        _validate(route)
    (error,) = info.value.errors()
    assert error["loc"][-2:] == ("mlflow", "route_path") or error["loc"][-1] == "route_path"
    assert "mlflow.route_path" in error["msg"] and route in error["msg"]
    assert any(path in error["msg"] for _, path in taken)


@pytest.mark.parametrize("route", ["/home", "/admin", "/token", "/_oauth", "/hubble", "/users",
                                   "/gateway", "/authors", "/argo/ui", "/hub/mlflow"])  # fmt: skip
def test_named_collisions_are_refused(route):
    with pytest.raises(pydantic.ValidationError, match=r"mlflow\.route_path"):
        _validate(route)


@pytest.mark.parametrize("route", ["/mlflow", "/tracking", "/ml/flow", "/conda", "/gatewayx"])
def test_good_paths_are_accepted(route):
    assert _validate(route).mlflow.route_path == route


@pytest.mark.parametrize(("slug", "route", "refused"), [
    ("mlflow", "/mlflow", True), ("ml", "/ml/flow", True), ("mlflow", "/mlflow/x", True),
    ("ml", "/mlflow", False), ("mlflow-ui", "/mlflow", False),
])  # fmt: skip
def test_tf_extension_routes_are_taken(slug, route, refused):
    (template,) = PER_CONFIG_TEMPLATES
    assert traefik_overlap(route, "PathPrefix", template.format(urlslug=slug)) is refused
    extension = {"name": "my-extension", "image": "nginx:1.27", "urlslug": slug}
    if not refused:
        assert _validate(route, tf_extensions=[extension]).mlflow.route_path == route
        return
    with pytest.raises(pydantic.ValidationError, match=r"mlflow\.route_path .*my-extension"):
        _validate(route, tf_extensions=[extension])
