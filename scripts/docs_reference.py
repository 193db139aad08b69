"""The configuration reference, generated from the code so it cannot drift: every field
of the `mlflow:` block (the pydantic models in config/schema.py) and every value of the
chart (helm/mlflow/values.schema.json, defaults from values.yaml), with its type,
default and description.

A field's description is its pydantic `description`, else the comment block right above
it in the class (the project documents fields that way), else, for a field holding a
model, that model's docstring. `missing()` lists what has none; a test fails on it.

Used by the MkDocs hook (scripts/docs_hooks.py) at build time and by the tests.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "mlflow"


# ---------------------------------------------------------------- the mlflow: block


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment lines right above its declaration, for the model and
    its bases (a subclass's own comment wins)."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        block: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                block.append(stripped.lstrip("#").strip())
                continue
            match = re.match(r"^    (\w+)\s*:", line)
            if match and block:
                found[match.group(1)] = " ".join(block)
            block = []
    return found


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return functools.reduce(operator.or_, rest), True
    return annotation, False


def _model(annotation: Any) -> type[BaseModel] | None:
    inner, _ = _unwrap(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for attr, word in (("ge", ">="), ("le", "<="), ("gt", ">"), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                out.append(f"{word} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            out.append("pattern")
    return out


def choices(values: Any) -> str:
    """The allowed values of a Literal, an Enum or a JSON schema enum, as written in YAML."""
    return " \\| ".join(f"`{json.dumps(value)}`" for value in values)


def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    inner, optional = _unwrap(annotation)
    extra = _constraints(list(metadata or []))
    if typing.get_origin(inner) is typing.Annotated:
        base, *meta = typing.get_args(inner)
        # A Field(...) inside Annotated (e.g. under `| None`) keeps its bounds in .metadata.
        meta = [m for item in meta for m in (getattr(item, "metadata", None) or [item])]
        return type_name(base | None if optional else base, [*(metadata or []), *meta])
    origin = typing.get_origin(inner)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        name = choices(m.value for m in inner)
    elif origin is typing.Literal:
        name = choices(typing.get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, BaseModel):
        name = "object"
    elif origin is list:
        (item,) = typing.get_args(inner) or (Any,)
        name = f"list of {type_name(item)}"
    elif origin is dict:
        name = "map"
    elif inner in (str, int, float, bool):
        name = {str: "string", int: "integer", float: "number", bool: "boolean"}[inner]
    elif origin in (typing.Union, types.UnionType):
        name = " or ".join(type_name(a) for a in typing.get_args(inner))
    else:
        name = getattr(inner, "__name__", str(inner))
    if extra:
        name += f" ({', '.join(extra)})"
    return name + (" or null" if optional else "")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{json.dumps(value)}`"


def pydantic_sections(model: type[BaseModel], path: str = "mlflow") -> list[tuple[str, str, list]]:
    """(path, the model's docstring, rows of (field, type, default, description)) for the
    model and, depth first, every model it holds."""
    comments = _comments(model)
    rows, nested = [], []
    for name, field in model.model_fields.items():
        sub = _model(field.annotation)
        doc = field.description or comments.get(name)
        if not doc and sub is not None and sub.__doc__ and sub.__doc__ is not BaseModel.__doc__:
            doc = " ".join(inspect.cleandoc(sub.__doc__).split())
        rows.append((f"{path}.{name}", type_name(field.annotation, field.metadata),
                     _default(field), doc or ""))  # fmt: skip
        if sub is not None:
            nested.append((sub, f"{path}.{name}"))
    own = inspect.cleandoc(model.__doc__) if model.__doc__ else ""
    sections = [(path, " ".join(own.split()), rows)]
    for sub, sub_path in nested:
        sections += pydantic_sections(sub, sub_path)
    return sections


def mlflow_model() -> type[BaseModel]:
    from nebari_mlflow_plugin.config.schema import MLflow

    return MLflow


# ---------------------------------------------------------------- the chart's values


def _json_type(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if "enum" in node:
        return choices(node["enum"])
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {_json_type(node['items'])}"
    return kind or "any"


def chart_rows(
    schema: dict | None = None, values: dict | None = None, prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    """(value path, type, default, description) of every value the schema describes;
    objects with properties recurse, free-form maps are leaves."""
    if schema is None:
        schema = json.loads((CHART / "values.schema.json").read_text())
        values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = []
    for key, node in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = (values or {}).get(key)
        if node.get("properties"):
            rows.append((path, "object", "see below", node.get("description", "")))
            rows += chart_rows(node, default if isinstance(default, dict) else {}, path + ".")
        else:
            shown = f"`{json.dumps(default)}`" if key in (values or {}) else "-"
            rows.append((path, _json_type(node), shown, node.get("description", "")))
    return rows


# ---------------------------------------------------------------- output


def missing() -> list[str]:
    """Every field or value without a description."""
    gaps = [
        row[0]
        for _, _, rows in pydantic_sections(mlflow_model())
        for row in rows
        if not row[3].strip()
    ]
    return gaps + [f"chart: {row[0]}" for row in chart_rows() if not row[3].strip()]


def _cell(text: str) -> str:
    """A table cell: pipes escaped, `<` escaped outside code spans (not an HTML tag)."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


# A pointer to a page of this site, as the code's comments and messages write them.
DOCS_POINTER = re.compile(r"\bdocs/([\w/-]+\.md(?:#[\w-]+)?)")


def _linked(cell: str) -> str:
    """docs/<page>.md#<section> in a description becomes a link from this page (under
    docs/reference/), which `mkdocs build --strict` then checks, anchor included."""
    return DOCS_POINTER.sub(lambda m: f"[{m.group(1)}](../{m.group(1)})", cell)


def _table(rows: list[tuple[str, str, str, str]], first: str, section: str) -> list[str]:
    """Rows named relative to their section's heading (which carries the full path)."""
    out = [f"| {first} | type | default | description |", "|---|---|---|---|"]
    for name, kind, default, doc in rows:
        short = name.removeprefix(f"{section}.") if section else name
        out.append(f"| `{short}` | {kind} | {_cell(default)} | {_linked(_cell(doc))} |")
    return out


def markdown() -> str:
    """The generated part of docs/reference/configuration.md."""
    lines = ["## The `mlflow:` block", ""]
    for path, doc, rows in pydantic_sections(mlflow_model()):
        lines += [f"### `{path}`", ""]
        if doc:
            lines += [_linked(doc), ""]
        lines += [*_table(rows, "field", path), ""]
    lines += [
        "## Chart values (`mlflow.overrides`)",
        "",
        "Every value of `helm/mlflow`, settable through `mlflow.overrides` except those the "
        "plugin sets itself (`nebari validate` names the field to use instead).",
        "",
    ]
    groups: dict[str, list] = {}
    for row in chart_rows():
        top = row[0].split(".")[0] if "." in row[0] or row[1] == "object" else ""
        groups.setdefault(top, []).append(row)
    for top, rows in groups.items():
        lines += [f"### `{top}`" if top else "### Top level", ""]
        lines += [*_table(rows, "value", top), ""]
    return "\n".join(lines)
