"""One public surface: ``import ditto2_nb as d2`` gives what the notebooks use, and stays light (no
plotly, ipywidgets or papermill until a panel is asked for)."""

import os
import subprocess
import sys
from pathlib import Path

import ditto2_nb as d2

ROOT = Path(__file__).resolve().parent.parent

REQUIRED = ["load_teacher", "load_distilled", "ditto", "ditto2", "OptimConfig", "GriffinLimVocoder",
            "intensity_control", "melody_control", "structure_control", "get_preset"]
STAGES = ["core", "audio", "data", "diffusion", "distill", "optimize", "controls", "clap"]
HEAVY = ("plotly", "ipywidgets", "papermill")


def test_the_surface_has_the_names_notebooks_use():
    for name in REQUIRED + STAGES:
        assert hasattr(d2, name), name
        assert name in d2.__all__, name
    for name in d2.__all__:
        assert getattr(d2, name) is not None, name
    assert d2.load_teacher.__module__ == "ditto2_nb.diffusion.teacher"
    assert d2.ditto2.__module__ == "ditto2_nb.optimize.methods"


def test_the_panels_load_on_first_use():
    from ditto2_nb.notebook.widgets import ControlPanel, TextPanel

    assert d2.ControlPanel is ControlPanel and d2.TextPanel is TextPanel
    try:
        d2.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_the_package_is_light():
    loaded = _modules_after("import ditto2_nb")
    assert "ditto2_nb" in loaded
    heavy = {m for m in loaded if m.split(".")[0] in HEAVY}
    assert not heavy, f"import ditto2_nb pulled in notebook libraries: {sorted(heavy)[:5]}"


def test_every_name_but_the_panels_is_light():
    loaded = _modules_after("import ditto2_nb as d2\n"
                            "[getattr(d2, n) for n in d2.__all__ if n not in ('ControlPanel', 'TextPanel')]")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert "ditto2_nb.notebook.widgets" not in loaded
