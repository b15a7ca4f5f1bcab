"""The notebook runner: parameter checks, recorded numbers, clear failures."""

import pytest

from ditto2_nb.notebook.pipeline import ParameterError, read_metrics, record, run_notebook, setup


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "huge"}, "PRESET: unknown preset"),
    ({"seed": -1}, r"SEED=-1 is out of range; allowed: \[0, 4294967295\]"),
    ({"seed": 1.5}, "SEED must be an integer, got 1.5"),
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


def test_demo_runs_the_student_path_then_the_tour():
    from pathlib import Path

    from ditto2_nb.notebook.pipeline import DEMO, ROOT, STUDENT_PATH, TOUR

    tutorials = sorted(f"tutorials/{p.name}" for p in (ROOT / "tutorials").glob("T*.ipynb"))
    assert STUDENT_PATH == tutorials and STUDENT_PATH[0] == "tutorials/T00_quickstart.ipynb"
    assert DEMO == STUDENT_PATH + TOUR
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


def test_executed_notebooks_share_one_copy_of_plotly_js(tmp_path):
    """plotly's notebook renderer embeds plotly.js (~5 MB) in every executed notebook; the pipeline
    keeps one copy beside them and the notebooks (and their HTML) refer to it."""
    import nbformat
    from plotly.offline import get_plotlyjs

    from ditto2_nb.notebook.pipeline import PLOTLY_JS, render_html, share_plotly_js

    init = ("<script>window.PlotlyConfig = {};</script>\n<script>/**\n* plotly.js v9.9.9\n*/"
            + "var Plotly = 1;" * 1000 + "</script>")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig.show()", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": init, "text/plain": "x"})])])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    share_plotly_js(path)
    html = nbformat.read(str(path), as_version=4).cells[0].outputs[0].data["text/html"]
    assert "var Plotly" not in html and f'<script src="{PLOTLY_JS}"></script>' in html
    assert "PlotlyConfig" in html  # the rest of the output is kept
    assert (tmp_path / PLOTLY_JS).read_text(encoding="utf-8") == get_plotlyjs()
    assert f'src="{PLOTLY_JS}"' in render_html(path).read_text(encoding="utf-8")
