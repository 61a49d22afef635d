"""The docs travel with the package: package READMEs link absolutely, the shipped docs link only inside themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")
READMES = [ROOT / "README.md", *sorted((ROOT / "plugins").glob("lily-*/README.md"))]


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
def test_package_readmes_have_only_absolute_links(readme: Path) -> None:
    """A README is the package's page on a package index, where a relative link leads nowhere."""
    text = readme.read_text()
    # The one exception: the console's screenshot, a picture in the repository (docs/), which an index
    # shows as its alt text; every link a reader follows is absolute.
    images = set(re.findall(r"!\[[^\]]*\]\((docs/[\w.-]+\.png)\)", text))
    relative = [
        target
        for target in LINK.findall(text)
        if not target.startswith(("https://", "http://", "#")) and target not in images
    ]
    assert all((ROOT / image).is_file() for image in images)
    assert relative == [], f"{readme.relative_to(ROOT)}: relative links {relative}"


def test_links_inside_the_docs_stay_inside_the_docs() -> None:
    """docs/ is installed as lily_host/docs: a link must reach a page that is installed with it."""
    docs = ROOT / "docs"
    for page in docs.rglob("*.md"):
        for target in LINK.findall(page.read_text()):
            if target.startswith(("https://", "http://", "#")):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert resolved.is_file(), f"{page.relative_to(ROOT)} links to missing {target}"
            assert resolved.is_relative_to(docs), f"{page.relative_to(ROOT)} links outside docs/: {target}"


def test_the_wheel_ships_the_docs_and_the_template() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[tool.hatch.build.targets.wheel.force-include]\n"docs" = "lily_host/docs"' in pyproject
    assert (ROOT / "lily_host" / "scaffold" / "template" / "pyproject.toml.tmpl").is_file()


def test_chatwoot_readme_is_its_docs_page() -> None:
    assert (ROOT / "plugins" / "lily-chatwoot" / "README.md").read_text() == (
        ROOT / "docs" / "plugins" / "chatwoot.md"
    ).read_text()
