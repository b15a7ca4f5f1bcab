"""The README is the front door and docs/results.md holds the tables: both generated parts are current,
every link resolves, and the README's test command is the one CI runs."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS_MD = ROOT / "docs" / "results.md"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines: move tables and long explanations to docs/"


def test_generated_sections_are_current(report):
    stale = report.outdated()
    assert not stale, f"run `.venv/bin/python benchmarks/report.py`: {[str(p) for p in stale]} out of date"


def test_results_md_contains_every_section_report_makes(report):
    text = RESULTS_MD.read_text()
    sections = report.result_sections()
    assert set(sections) == set(report.SOURCES)
    for key, lines in sections.items():
        assert lines is not None, f"section {key!r}: its results file is missing"
        start, end = report.markers(key)
        assert text.count(start) == 1 and text.count(end) == 1, f"docs/results.md lacks section {key!r}"
        body = text.split(start, 1)[1].split(end, 1)[0]
        assert body.strip("\n") == report._body(key, lines), f"section {key!r} is not what report.py makes"
    assert set(report.MARKER.findall(text)) == set(sections)


def test_readme_shows_the_claims_in_one_table(report):
    text = README.read_text()
    claims = json.loads((ROOT / "benchmarks" / "results" / "claims_laptop.json").read_text())
    assert "\n".join(report.readme_claims(claims)) in text
    assert text.count("| claim | measured | comparison | holds |") == 1
    assert claims["machine"] in text  # the machine the numbers come from


def _fenced_commands(text: str) -> list[str]:
    """The command lines of a Markdown text's bash blocks (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line.split("#", 1)[0].strip() for b in blocks for line in b.splitlines()
            if line.split("#", 1)[0].strip()]


def test_readme_test_command_is_the_one_ci_runs():
    commands = _fenced_commands(README.read_text())
    assert commands == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "make test"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", path.read_text(), re.M)}


def _demo_notebook(stem: str) -> Path | None:
    """The tutorial or chapter `make demo` runs under this name, if any."""
    from ditto2_nb.notebook.pipeline import DEMO

    return next((ROOT / nb for nb in DEMO if Path(nb).stem == stem), None)


def _made_by_demo(rel: Path) -> bool:
    """Whether `make demo` (the pipeline into build/) creates this build/ path."""
    parts = rel.parts
    if parts == ("build", "summary.md"):
        return True
    if len(parts) == 2 and rel.suffix in (".html", ".ipynb"):
        return _demo_notebook(rel.stem) is not None
    if len(parts) == 4 and parts[1] == "artifacts" and rel.suffix == ".wav":
        nb = _demo_notebook(parts[2])
        if nb is None:
            return False
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                         if c["cell_type"] == "code")
        return f'ctx.path("{parts[3]}")' in code
    return False


@pytest.mark.parametrize("doc", ["README.md", "docs/results.md", "docs/README.md", "docs/usage.md",
                                 "docs/models.md", "docs/design.md", "docs/method.md"])
def test_every_relative_link_resolves(doc):
    path = ROOT / doc
    text = path.read_text()
    paragraphs = text.split("\n\n")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        rel = dest.relative_to(ROOT)
        if rel.parts[0] == "build":
            assert _made_by_demo(rel), f"{doc}: {target} is not a file `make demo` writes"
            # the reader is told: the paragraph with the link, or the one before it, names `make demo`
            i = next(i for i, p in enumerate(paragraphs) if f"]({target})" in p)
            assert "make demo" in paragraphs[i] + (paragraphs[i - 1] if i else ""), \
                f"{doc}: say next to {target} that `make demo` creates it"
            continue
        assert dest.exists(), f"{doc}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{doc}: {target}: no heading with that anchor"


def test_readme_has_no_hand_written_numbers(report):
    """Numbers in the README come from a results file (the generated claims block); outside it only
    names carry digits: ditto2_nb, file and notebook names (links, code), DITTO-2, Python 3.11, ISMIR 2024."""
    text = README.read_text()
    text = text.split(report.CLAIMS_START)[0] + text.split(report.CLAIMS_END)[1]
    text = re.sub(r"```.*?```", "", text, flags=re.S)    # the commands
    text = re.sub(r"`[^`]*`", "", text)                   # code and file names
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)        # links (notebook and WAV names)
    for name in ("ditto2_nb", "DITTO-2", "Python 3.11", "ISMIR 2024"):
        text = text.replace(name, "")
    assert not re.findall(r".{0,30}\d.{0,30}", text), "hand-written numbers in README.md"
