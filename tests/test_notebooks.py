"""Every notebook: committed clean, runs on the ci preset with papermill, records sane numbers,
and passes nbval (cells marked ``# NBVAL_CHECK_OUTPUT`` must reproduce their outputs)."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ditto2_nb.notebook.pipeline import TOUR, artifacts_dir, read_metrics, run_tour

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("tutorials/*.ipynb"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_notebook_is_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"


def test_tour_lists_every_notebook():
    assert {str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*.ipynb")} == set(TOUR)


@pytest.fixture(scope="session")
def ci_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build_ci")
    run_tour("ci", out)
    return out


# What each notebook must have recorded on the ci preset: key -> (low, high).
EXPECTED = {
    "01_audio_and_data": {"griffin_lim_sc": (0.0, 0.25), "n_train": (96, 96),
                          "n_chorale_clips": (1, 10_000)},
    # even the ci teacher (200 steps, seconds) must denoise better than the dataset mean
    "02_edm_diffusion": {"toy_gaussian_std": (0.47, 0.53), "denoise_mse_ratio_sigma1": (0, 0.95)},
    "03_sampling_the_teacher": {"fd_norm_best": (-1.0, 3.0), "tag_chance": (0.1, 0.6)},
    "04_consistency_distillation": {"boundary_exact": (True, True)},
    "05_ctm_distillation": {"ctm_identity_err": (0.0, 1e-6)},
    "06_ditto_baseline": {"ditto_by_hand_matches": (True, True), "ckpt_grad_rel_diff": (0.0, 1e-5),
                          "saved_mb_ratio_at_max_steps": (0.0, 0.25), "ditto_decoded_ratio": (0.0, 0.8)},
    # one student call per DITTO-2 iteration vs S teacher calls (+ S recomputed) for DITTO
    # cost_ratio: forward-pass equivalents per iteration, 8S (DITTO, CFG, checkpointed) / 3 (DITTO-2)
    "07_ditto2": {"nfe_ratio_ditto_over_ditto2": (10, 100), "cost_ratio_ditto_over_ditto2": (10, 100),
                  "reg_norm_gap_ratio": (0.0, 1.0), "trust_moved": (0.0, 0.26),
                  # a refinement iteration runs M = 2 student passes where the surrogate runs one
                  "refine_over_surrogate_iteration": (1.0, 6.0), "refine_best_helped_seeds_ctm": (0, 3)},
    "08_controls_gallery": {"intensity_ratio": (0.0, 0.7), "structure_ratio": (0.0, 0.8),
                            "melody_accuracy_after": (0.3, 1.0)},
    # the crossfaded loop (mid-overlap cut) must not jump at its seam: the notebook's own threshold
    "09_inpainting_outpainting_looping": {"inpaint_mse_ratio": (0.0, 0.9), "outpaint_mse_ratio": (0.0, 0.9),
                                          "loop_mse_ratio": (0.0, 0.9), "loop_jump_ratio_xfade": (0.0, 1.25)},
}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", TOUR)
def test_notebook_runs_and_records(ci_build, notebook):
    stem = Path(notebook).stem
    assert (ci_build / f"{stem}.ipynb").exists() and (ci_build / f"{stem}.html").exists()
    metrics = read_metrics(artifacts_dir(ci_build, notebook))
    for key, (lo, hi) in EXPECTED.get(stem, {}).items():
        assert key in metrics, f"{stem} did not record {key}"
        assert lo <= metrics[key] <= hi, f"{stem}: {key}={metrics[key]} not in [{lo}, {hi}]"


@pytest.mark.slow
def test_loss_went_down_in_the_teacher_notebook(ci_build):
    m = read_metrics(artifacts_dir(ci_build, "notebooks/02_edm_diffusion.ipynb"))
    assert m["loss_last"] < m["loss_first"]


@pytest.mark.slow
def test_melody_control_beats_the_unoptimised_clip(ci_build):
    m = read_metrics(artifacts_dir(ci_build, "notebooks/08_controls_gallery.ipynb"))
    assert m["melody_accuracy_after"] > m["melody_accuracy_before"] + 0.2


@pytest.mark.slow
def test_text_control_raises_the_evaluators_score(ci_build):
    m = read_metrics(artifacts_dir(ci_build, "notebooks/10_text_control_clap.ipynb"))
    assert m["miniclap_recall5"] > 2 * m["recall_chance5"]
    assert m["text_score_after"] > m["text_score_before"] + 0.05


@pytest.mark.slow
def test_nbval_on_executed_notebooks(ci_build):
    executed = [str(ci_build / Path(nb).name) for nb in TOUR]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), *executed],
        capture_output=True, text=True, cwd=ci_build, env=os.environ.copy(), timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
