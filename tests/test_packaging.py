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


# Imports flow one way: stage by stage, and module by module inside a stage. Each (package, modules)
# pair lists a package's modules bottom-up (a sub-package's __init__ right after its modules); the
# package's __init__ comes after them all (it may re-export them), and the public surface
# ditto2_nb/__init__.py comes last. A module may import only what is listed before it, so no stage
# imports a later one and nothing imports the surface.
LAYERS = [
    ("core", ["validate", "config", "checkpoints", "metrics", "assets", "train"]),
    ("audio", ["mel", "vocoder", "files", "analysis", "pitch", "neural"]),
    ("data", ["theory", "labels", "composition", "synthesis", "tags", "captions", "summaries", "cache",
              "datasets", "corpus", "folder", "scores", "arranging", "rendering", "renditions",
              "repertoire", "sources"]),
    ("diffusion", ["schedule", "precond", "networks", "losses", "samplers", "teacher"]),
    ("controls", ["base", "intensity", "melody", "structure", "masks", "composite"]),
    ("distill", ["students", "losses", "sampling", "train", "compress"]),
    ("optimize", ["loop", "noise", "methods"]),
    ("clap", ["base", "minilm", "paraphrase", "networks", "evaluation", "training", "loading", "control",
              "laion"]),
    ("notebook", ["plots",
                  "widgets.models", "widgets.builders", "widgets.params", "widgets.running",
                  "widgets.figures", "widgets.layout", "widgets.panel", "widgets",
                  "tutor.checking", "tutor.checks_audio", "tutor.checks_diffusion", "tutor.checks_distill",
                  "tutor.checks_ditto", "tutor.checks_control", "tutor.checks_melody", "tutor",
                  "pipeline"]),
    ("cli", None),
]


def _order() -> dict[str, int]:
    names: list[str] = []
    for pkg, mods in LAYERS:
        names += [f"{pkg}.{m}" for m in mods or []] + [pkg]
    return {n: i for i, n in enumerate(names + [""])}  # "": ditto2_nb/__init__.py


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT / "ditto2_nb").with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of ditto2_nb that ``path`` imports (dotted, relative to ditto2_nb; "" = the package)."""
    mod = _dotted(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                out.add(target)
            else:
                out.update(f"{target}.{a.name}".lstrip(".") for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ditto2_nb"):
            out.add(node.module.removeprefix("ditto2_nb").lstrip("."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("ditto2_nb").lstrip(".") for a in node.names
                       if a.name.split(".")[0] == "ditto2_nb")
    return out


def _layer(name: str, order: dict[str, int]) -> str:
    while name not in order:  # a name imported from a module, e.g. "core.config.MelConfig"
        name = name.rpartition(".")[0]
    return name


def test_every_module_has_a_layer():
    files = {_dotted(p) for p in (ROOT / "ditto2_nb").rglob("*.py")}
    assert files == set(_order()), "add new modules to LAYERS (or remove gone ones)"


def test_imports_flow_one_way():
    order = _order()
    for path in (ROOT / "ditto2_nb").rglob("*.py"):
        mod = _dotted(path)
        for dep in _imports(path):
            dep = _layer(dep, order)
            who, what = mod or "ditto2_nb", dep or "ditto2_nb"
            assert order[dep] < order[mod], f"{who} imports {what}, a higher layer"


def test_modules_stay_small():
    for path in (ROOT / "ditto2_nb").rglob("*.py"):
        n = len(path.read_text().splitlines())
        assert n < 800, f"{path.relative_to(ROOT)} has {n} lines; split it by job"


def test_no_unpickling_anywhere():
    import re

    for path in (ROOT / "ditto2_nb").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import pickle|pickle\.load|allow_pickle=True", text, re.M), path
        assert "torch.load(" not in text or "weights_only=True" in text, path


def test_ruff_is_clean():
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "ditto2_nb", "tests", "benchmarks", "scripts"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]
