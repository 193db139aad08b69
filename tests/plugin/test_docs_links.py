"""Links that must not break: the site's own (a broken link or anchor fails `make docs`,
shown on a tiny site built with the project's settings) and the pointers to the docs
that messages, schema comments and templates give (a page and section that exist; no
pointer left at a README section, the README being only the front page now)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify
from test_docs import DOCS, ROOT, build_site

# Where the code and the chart point people at the docs.
SOURCES = [
    *(ROOT / "src").rglob("*.py"),
    *(p for p in (ROOT / "helm").rglob("*") if p.suffix in {".yaml", ".tpl", ".json", ".sh"}),
    *(ROOT / "terraform").rglob("*.tf"),
]
POINTER = re.compile(r"\bdocs/([\w/-]+\.md)(?:#([\w-]+))?")


def test_a_broken_link_or_anchor_fails_the_build(tmp_path):
    """mkdocs.yml's promise, kept by its own settings (strict and the validation block:
    anchors are only logged by default): two pages, one link to a page that does not
    exist, one to a section that does not; the build fails naming both, and only them."""
    project = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\n[a page](missing.md), [a section](other.md#no-such-section), "
        "[fine](other.md#a-section)\n"
    )
    (docs / "other.md").write_text("# Other\n\n## A section\n")
    kept = ("strict", "validation", "markdown_extensions", "theme")
    config = {key: project[key] for key in kept} | {
        "site_name": "links", "docs_dir": "docs", "nav": ["index.md", "other.md"]
    }  # fmt: skip
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = build_site(tmp_path / "site", tmp_path / "mkdocs.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "'missing.md'" in output and "'#no-such-section'" in output, output
    assert "Aborted with 2 warnings in strict mode" in output, output


def _anchors(page: Path) -> set[str]:
    """The ids Python-Markdown's toc gives the page's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+?)\s*$", text, flags=re.MULTILINE)
    return {slugify(heading.replace("`", ""), "-") for heading in headings}


def pointers() -> list[tuple[str, str, str | None]]:
    return [
        (f"{path.relative_to(ROOT)}: {match.group(0)}", match.group(1), match.group(2))
        for path in SOURCES
        for match in POINTER.finditer(path.read_text())
    ]


def test_every_docs_pointer_names_a_page_and_section_that_exist():
    found = pointers()
    assert len(found) >= 10  # the messages and comments repointed from the README
    broken = [
        where for where, page, anchor in found
        if not (DOCS / page).is_file() or (anchor and anchor not in _anchors(DOCS / page))
    ]  # fmt: skip
    assert broken == []


def test_the_check_catches_a_section_that_does_not_exist():
    anchors = _anchors(DOCS / "admin" / "volumes.md")
    assert "moving-a-volume" in anchors and "moving-volumes" not in anchors
    assert "upgrading-from-nebari-mlflow-plugin-202510x" in _anchors(DOCS / "admin" / "upgrade.md")


def test_no_pointer_is_left_at_a_readme_section():
    """The README is the front page; its old sections live under docs/. A file path
    (helm/mlflow/README.md, the chart's own) is fine."""
    stale = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"README(?!\.md)", line)
    ]
    assert stale == []
