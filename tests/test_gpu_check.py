"""benchmarks/gpu_check.py, run on the CPU (--allow-cpu) with the ci preset and a few steps: it
trains the teacher and the CTM student through the library's trainers, times DITTO-2 and writes
every number; without CUDA and without --allow-cpu it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_gpu_check_runs_on_the_cpu_and_reports_every_number(tmp_path):
    out, work = tmp_path / "gpu.json", tmp_path / "work"
    res = subprocess.run([sys.executable, str(SCRIPT), "--preset", "ci", "--allow-cpu", "--device", "cpu",
                          "--teacher-steps", "3", "--student-steps", "2", "--warmup-steps", "2",
                          "--batches", "1,2", "--reps", "1", "--out", str(out), "--work", str(work)],
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["device"] == "cpu" and r["device_type"] == "cpu" and r["torch"] == torch.__version__
    assert r["preset"] == "ci" and r["data"]["clips"] == 96
    for name, steps in (("teacher", 3), ("ctm", 2)):
        t = r[name]
        assert t["steps"] == steps and t["warmup_steps"] == steps - 1
        assert t["steps_per_s"] > 0 and t["train_seconds"] > 0
        assert t["loss_first_5pct"] > 0 and t["loss_last_5pct"] > 0
        assert t["peak_cuda_memory_gib"] is None  # no CUDA here
    d = r["ditto2"]
    assert d["vocoder"].startswith(("Griffin-Lim", "neural"))
    for b in (1, 2):
        row = d[f"batch_{b}"]
        assert row["batch"] == b and row["seconds"] > 0 and len(row["runs_s"]) == 1
        assert row["rtf"] == pytest.approx(row["seconds"] / (b * d["audio_seconds_per_clip"]), rel=1e-2)
    assert (work / "teacher.safetensors").is_file() and (work / "ctm.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_check_refuses_without_cuda():
    res = subprocess.run([sys.executable, str(SCRIPT), "--preset", "ci"], capture_output=True, text=True,
                         timeout=120, env=ENV)
    assert res.returncode != 0 and "--allow-cpu" in res.stderr and "no CUDA" in res.stderr
