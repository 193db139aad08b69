"""Nebari's own Traefik routes on the domain, and whether ours would collide.

Our IngressRoute matches `Path(<p>) || PathPrefix(<p>/)`. Traefik's `Path` is
string equality and `PathPrefix` a *string* prefix (not a segment prefix), and
when several rules match a request the longest rule string wins (default
priority). So any request path both rules match goes to whichever rule happens
to be longer: the route must share no request path with a Nebari rule at all.

Both directions happen. Nebari's `PathPrefix(/hub)` swallows `/hubble` (and
`/hub/mlflow`); our `PathPrefix(/a/)` would take Nebari's `Path(/a/b)` or
`PathPrefix(/a/b)`. `collides()` decides by set overlap, see its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """One matcher of a Nebari IngressRoute: `Path` (exact) or `PathPrefix` (string prefix)."""

    kind: str  # "Path" | "PathPrefix"
    path: str
    owner: str

    def __str__(self) -> str:
        return f"{self.kind}(`{self.path}`) of {self.owner}"


def _prefixes(owner: str, *paths: str) -> tuple[Rule, ...]:
    return tuple(Rule("PathPrefix", path, owner) for path in paths)


# As in nebari 2025.10's templates (stages 05 and 07); tests read those templates.
NEBARI_RULES: tuple[Rule, ...] = (
    Rule("Path", "/", "JupyterHub"),
    *_prefixes("JupyterHub", "/hub", "/user", "/services", "/home", "/token", "/admin"),
    *_prefixes("conda-store", "/conda-store"),
    *_prefixes("Grafana (monitoring)", "/monitoring"),
    *_prefixes("Dask Gateway", "/gateway/"),
    Rule("Path", "/argo/validate", "Argo Workflows"),
    Rule("Path", "/argo/mutate", "Argo Workflows"),
    *_prefixes("Argo Workflows", "/argo"),
    *_prefixes("Keycloak", "/auth"),
    # traefik-forward-auth's callback (the module's `callback-url-path` default).
    *_prefixes("forward-auth callback", "/_oauth"),
)


def extension_rules(config: Any) -> tuple[Rule, ...]:
    """`tf_extensions` entries route `PathPrefix(/<urlslug>/)` (stage 08)."""
    extensions = getattr(config, "tf_extensions", None) or []
    return tuple(
        Rule("PathPrefix", f"/{ext.urlslug.strip('/')}/", f"tf_extensions {ext.name!r}")
        for ext in extensions
    )


def collides(route_path: str, rule: Rule) -> bool:
    """Do `Path(p) || PathPrefix(p/)` and `rule` match a common request path?

    Ours matches p and every s starting with p/. A `PathPrefix(q)` shares a path
    with it iff p/ starts with q (then p or p/x is under q: q swallows us,
    `/hubble` under `/hub`, `/gateway` under `/gateway/`) or q starts with p/
    (then q is ours: we take theirs). Two prefixes are compatible only when one
    extends the other, so there is no third case. A `Path(q)` shares q iff q == p
    or q starts with p/."""
    ours = route_path + "/"
    if rule.kind == "Path":
        return rule.path == route_path or rule.path.startswith(ours)
    return ours.startswith(rule.path) or rule.path.startswith(ours)


def collisions(route_path: str, rules: tuple[Rule, ...]) -> list[Rule]:
    return [rule for rule in rules if collides(route_path, rule)]


def route_error(route_path: str, taken: list[Rule]) -> str:
    return (
        f"mlflow.route_path {route_path!r} overlaps Nebari's "
        f"{', '.join(str(rule) for rule in taken)} (Traefik matches path prefixes as "
        "strings, so one route would take the other's requests); choose a path no "
        "Nebari route starts with and that starts none of theirs, e.g. '/mlflow'"
    )
