"""The notebook runner: parameter checks, recorded numbers, clear failures."""

import pytest

from ditto2_nb.notebook.pipeline import ParameterError, read_metrics, record, run_notebook, setup


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "huge"}, "PRESET: unknown preset"),
    ({"seed": -1}, "SEED must be a non-negative integer"),
    ({"seed": 1.5}, "SEED must be a non-negative integer"),
    ({"device": "quantum"}, "DEVICE"),
    ({"N_EVAL": -4}, "N_EVAL must be a non-negative number"),
    ({"N_EVAL": None}, "N_EVAL must be a non-negative number"),
])
def test_bad_parameters_are_named(kwargs, match, tmp_path):
    with pytest.raises(ParameterError, match=match):
        setup(artifacts_dir=str(tmp_path), **kwargs)


def test_cuda_requested_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ParameterError, match="no CUDA device"):
        setup(device="cuda", artifacts_dir=str(tmp_path))


def test_record_and_read_back(tmp_path):
    ctx = setup("ci", 0, "cpu", str(tmp_path / "a"))
    record("x", 1.5, ctx)
    record("y", [1, 2], ctx)
    assert read_metrics(tmp_path / "a") == {"x": 1.5, "y": [1, 2]}


def test_a_failing_notebook_says_which_cell_and_why(tmp_path):
    with pytest.raises(RuntimeError, match=r"02_edm_diffusion.ipynb failed in cell .*PRESET"):
        run_notebook("notebooks/02_edm_diffusion.ipynb", "no-such-preset", tmp_path, html=False)


def test_demo_runs_the_quickstart_then_the_tour():
    from pathlib import Path

    from ditto2_nb.notebook.pipeline import DEMO, ROOT, TOUR

    assert DEMO[0] == "tutorials/T00_quickstart.ipynb" and DEMO[1:] == TOUR
    assert all((ROOT / nb).is_file() for nb in DEMO), [nb for nb in DEMO if not (ROOT / Path(nb)).is_file()]


def test_tutorials_run_solved_in_the_demo(tmp_path):
    """`make demo` shows finished tutorials: the runner substitutes the solutions; notebooks
    without a solutions file run as they are."""
    import nbformat

    from ditto2_nb.notebook.pipeline import ROOT, _solved

    solved = _solved(ROOT / "tutorials" / "T00_quickstart.ipynb", tmp_path)
    assert solved != ROOT / "tutorials" / "T00_quickstart.ipynb"
    nb = nbformat.read(str(solved), as_version=4)
    exercises = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert exercises and not any("NotImplementedError" in c.source for c in exercises)
    plain = ROOT / "notebooks" / "06_ditto_baseline.ipynb"
    assert _solved(plain, tmp_path) == plain
