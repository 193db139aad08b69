"""MkDocs hooks (mkdocs.yml `hooks:`): the configuration reference is generated at
build time from the pydantic schema and the chart's values schema
(scripts/docs_reference.py), so the page cannot drift from the code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docs_reference

MARKER = "<!-- generated: configuration reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, docs_reference.markdown())
    return markdown
