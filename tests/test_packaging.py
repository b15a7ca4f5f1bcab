"""Project plumbing: environment.yml matches pyproject, the layout exists, imports flow one way."""

import ast
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_lists_the_same_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(deps)
    assert "-e .[dev]" in pip


def test_layout():
    for name in ("environment.yml", "README.md", "pyproject.toml", "Makefile", "ditto2_nb",
                 "notebooks", "tutorials", "tests", "benchmarks", ".ci/run"):
        assert (ROOT / name).exists(), name


# Lower layers must not import higher ones (DESIGN.md's dependency direction).
LAYERS = ["config", "audio", "schedule", "precond", "networks", "samplers", "losses",
          "checkpoints", "train", "data", "metrics", "teacher", "controls", "distill", "optimize",
          "clap", "plots", "widgets", "tutor", "pipeline", "cli"]
def _imports(mod: str) -> set[str]:
    tree = ast.parse((ROOT / "ditto2_nb" / f"{mod}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_imports_flow_one_way():
    order = {m: i for i, m in enumerate(LAYERS)}
    for mod in LAYERS:
        if not (ROOT / "ditto2_nb" / f"{mod}.py").exists():
            continue
        for dep in _imports(mod):
            if dep in order:
                assert order[dep] < order[mod], f"{mod} imports {dep}, a higher layer"


def test_no_unpickling_anywhere():
    import re

    for path in (ROOT / "ditto2_nb").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import pickle|pickle\.load|allow_pickle=True", text, re.M), path
        assert "torch.load(" not in text or "weights_only=True" in text, path


def test_ruff_is_clean():
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "ditto2_nb", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
