"""The docs stay true to the code: the executor pages' key tables are the generated ones, and
every relative link in the README and docs/ points at a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from executors import registry
from tools import executor_docs

ROOT = executor_docs.ROOT
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


@pytest.mark.parametrize("name", executor_docs.executor_names())
def test_each_executor_page_has_the_generated_key_table(name):
    page = executor_docs.page_path(name)
    assert page.exists(), f"{page.relative_to(ROOT)} is missing: run `make docs`"
    assert page.read_text() == executor_docs.expected(name), (
        f"{page.relative_to(ROOT)}: the key table differs from the executor's config schema;"
        " run `make docs` (python -m tools.executor_docs)"
    )


def test_every_schema_key_is_in_its_table():
    for name in executor_docs.executor_names():
        table = executor_docs.key_table(name)
        schema = registry.executor_class(name).config_schema.model_json_schema(by_alias=True)
        for key in schema["properties"]:
            assert f"| `{key}`" in table, (name, key)


def test_every_executor_page_belongs_to_a_built_in_executor():
    pages = {p.stem for p in executor_docs.PAGES.glob("*.md")}
    assert pages == set(executor_docs.executor_names())


def test_only_the_block_between_the_markers_is_rewritten():
    text = f"# x\n\nbefore\n\n{executor_docs.BEGIN}\nold table\n{executor_docs.END}\n\nafter\n"
    out = executor_docs.render(text, "NEW")
    assert out == f"# x\n\nbefore\n\n{executor_docs.BEGIN}\nNEW\n{executor_docs.END}\n\nafter\n"
    with pytest.raises(ValueError):
        executor_docs.render("no markers", "NEW")


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(executor_docs, "PAGES", tmp_path)
    monkeypatch.setattr(executor_docs, "ROOT", tmp_path)
    name = executor_docs.executor_names()[0]
    (tmp_path / f"{name}.md").write_text(
        f"# {name}\n\n{executor_docs.BEGIN}\nstale\n{executor_docs.END}\n"
    )
    assert executor_docs.main(["--check"]) == 1
    assert f"{name}.md is out of date" in capsys.readouterr().out
    assert executor_docs.main([]) == 0
    assert executor_docs.main(["--check"]) == 0


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = re.sub(r"[`*]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", page.read_text()).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            base = github_anchor(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    links = [a or b for a, b in LINK.findall(text)]
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert page.exists(), page
    broken = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("name", executor_docs.executor_names())
def test_key_details_name_only_keys_the_schema_has(name):
    """The hand-written notes below a table must not describe a key that no longer exists."""
    text = executor_docs.page_path(name).read_text()
    details = text.partition("## Key details")[2].partition("\n## ")[0]
    schema = registry.executor_class(name).config_schema
    known = {info.alias or attr for attr, info in schema.model_fields.items()}
    known |= set(schema.model_fields)
    for keys in re.findall(r"^- ((?:`[^`]+`(?:, )?)+):", details, re.M):
        for key in re.findall(r"`([^`]+)`", keys):
            assert key in known, f"docs/executors/{name}.md describes unknown key {key!r}"


def test_the_layout_page_matches_the_tree():
    """Every path docs/layout.md's table names exists (a bare `x.py` inside the row's package),
    and every top-level package is in it."""
    text = (ROOT / "docs" / "layout.md").read_text()
    missing = []
    for row in re.findall(r"^\| `.*$", text, re.M):
        first, _, rest = row.strip("|").partition("|")
        bases = [ROOT / b for b in re.findall(r"`([\w./-]+)`", first)]
        dirs = [b if b.is_dir() else b.parent for b in bases]
        for name in re.findall(r"`([\w./-]+(?:\.py|/))`", row):
            if not name.startswith("/") and not any((d / name).exists() for d in [ROOT, *dirs]):
                missing.append(name)
    assert not missing, f"docs/layout.md names paths that do not exist: {sorted(set(missing))}"
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    unlisted = sorted(p for p in packages if f"`{p}/`" not in text)
    assert not unlisted, f"top-level packages missing from docs/layout.md: {unlisted}"
    # Every subpackage is named (by its path or, inside its package's row, by its own name),
    # and so is every bench module: the tests import some of them.
    subpackages = {
        p.parent.relative_to(ROOT)
        for p in ROOT.glob("*/*/__init__.py")
        if p.parent.name not in {"migrations", "management", "templatetags"}
        and p.parts[len(ROOT.parts)] not in {"tests", "examples"}
    }
    unnamed = sorted(
        str(d) for d in subpackages if f"`{d}/`" not in text and f"`{d.name}/`" not in text
    )
    unnamed += sorted(
        f"bench/{p.name}"
        for p in (ROOT / "bench").glob("*.py")
        if p.name != "__init__.py" and f"`{p.name}`" not in text
    )
    assert not unnamed, f"docs/layout.md does not name: {unnamed}"
