"""The reference docs list what the code has: sweepable fields, SDXL_NB_* settings, notebooks; the README links."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOCS = REPO / "docs"


def table_first_column(path, heading: str | None = None) -> list[str]:
    """The `code` names in the first column of a Markdown table (under `heading`, when given)."""
    text = path.read_text(encoding="utf-8")
    if heading:
        text = text.split(heading, 1)[1].split("\n#", 1)[0]
    return re.findall(r"(?m)^\| `([^`]+)` \|", text)


def test_sweepable_fields_doc_lists_exactly_the_code_fields():
    from sdxl_nb.jobs.sweep import SWEEPABLE

    listed = table_first_column(DOCS / "ANIMATE_SWEEP.md", "### Sweepable fields")
    assert sorted(listed) == sorted(SWEEPABLE) and len(listed) == len(set(listed))


def test_settings_doc_lists_every_sdxl_nb_variable():
    from sdxl_nb import settings

    variables = {value for name, value in vars(settings).items()
                 if name.isupper() and isinstance(value, str) and value.startswith("SDXL_NB_")}
    listed = table_first_column(DOCS / "SETTINGS.md")
    assert sorted(listed) == sorted(variables)


def test_layout_doc_names_every_notebook():
    layout = (DOCS / "LAYOUT.md").read_text(encoding="utf-8")
    notebooks = sorted(path.name for path in (REPO / "notebooks").glob("*.ipynb"))
    assert notebooks and [name for name in notebooks if name not in layout] == []


def test_readme_links_and_pictures_exist():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/SECURITY.md" in targets and any(t.startswith("docs/images/") for t in targets)
    assert [target for target in targets if not (REPO / target).is_file()] == []
    for doc in DOCS.glob("*.md"):  # the reference docs' own relative links
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
