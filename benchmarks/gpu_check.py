"""The GPU check: train the preset's teacher and CTM student on CUDA for a few minutes each, time
DITTO-2 with the vocoder, and write down every number.

    python benchmarks/gpu_check.py [--preset gpu] [--minutes 3] [--device auto] [--out PATH]

1. data: the preset's training clips (:func:`ditto2_nb.data.training_data`, generated or rendered
   once into ``$DITTO2_CACHE``), whatever its ``data.source``;
2. the teacher, then its CTM student (``train_teacher`` / ``train_student``, the library's resumable
   trainers, into ``--work``: a temporary folder by default, never ditto2_nb/assets). A warm-up of
   ``--warmup-steps`` (its first quarter absorbs the start-up: CUDA context, kernel selection; the
   rest is timed) sizes each run to fill ``--minutes``, unless ``--teacher-steps`` /
   ``--student-steps`` say how many; the run resumes the warm-up's checkpoint. Reported: steps/s
   after the warm-up, the mean loss over the first and the last 5% of the steps, peak CUDA memory
   (``torch.cuda.max_memory_allocated``);
3. DITTO-2 (the claims' headline configuration: ``benchmarks/claims.py``) with that student on an
   intensity ramp, at batch 1 and 16, the vocoder included (the preset's trained neural vocoder when
   there is one, else Griffin-Lim): the real-time factor, seconds of compute per second of audio
   (median of ``--reps`` runs after a warm one, ``torch.cuda.synchronize`` around each);
4. writes ``benchmarks/results/gpu_<device name>.json`` (or ``--out``): the device, torch and CUDA
   versions and every number.

Without CUDA it refuses, unless ``--allow-cpu`` (tests/test_gpu_check.py: the ci preset, a few steps).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.audio.neural import load_vocoder, vocoder_file
from ditto2_nb.controls import intensity_control
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.core.train import training_device
from ditto2_nb.data import repertoire_training_data, training_data
from ditto2_nb.diffusion.teacher import train_teacher
from ditto2_nb.distill import load_student
from ditto2_nb.distill.train import train_student
from ditto2_nb.optimize import OptimConfig, ditto2

sys.path.insert(0, str(Path(__file__).parent))
import claims  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_gib(dev: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 3) if dev.type == "cuda" else None


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def _history(path: Path) -> dict:
    return ckpt.read_metadata(path)["history"]


def timed_training(train, warmup: int, steps: int | None, minutes: float,
                   dev: torch.device) -> tuple[Path, dict]:
    """``train(n)`` (a resumable trainer returning its exported file) through a warm-up, then on to
    ``steps`` steps (None: as many as fill ``minutes`` at the warm-up's pace): (file, numbers)."""
    _reset_peak(dev)
    t0 = time.perf_counter()
    warmup = min(warmup, steps - 1) if steps else warmup
    start = max(1, warmup // 4)
    s_start = _history(train(start))["seconds"]
    s_warm = _history(train(warmup))["seconds"] if warmup > start else s_start
    per_step = max(s_warm - s_start, 1e-6) / max(warmup - start, 1)
    if steps is None:
        steps = warmup + max(1, round(minutes * 60 / per_step))
    path = train(steps)
    h = _history(path)
    loss, n = h["loss"], max(1, len(h["loss"]) // 20)
    return path, {
        "steps": steps, "warmup_steps": warmup, "warmup_seconds_per_step": round(per_step, 5),
        "train_seconds": h["seconds"], "wall_seconds": round(time.perf_counter() - t0, 2),
        "steps_per_s": round((steps - warmup) / max(h["seconds"] - s_warm, 1e-6), 3),
        "loss_first_5pct": round(statistics.fmean(loss[:n]), 5),
        "loss_last_5pct": round(statistics.fmean(loss[-n:]), 5),
        "peak_cuda_memory_gib": _peak_gib(dev)}


def headline_config() -> OptimConfig:
    """The claims' headline DITTO-2 configuration on an intensity target (as profile_ditto2.py)."""
    return claims.ditto2_config(claims.HEADLINE, OptimConfig(iterations=claims.ITERATIONS["intensity"],
                                                             lr=claims.PROTOCOL["lr"], snapshot_every=0))


def pick_vocoder(preset, dev: torch.device):
    """(vocoder, description): the preset's trained neural vocoder when one exists, else Griffin-Lim."""
    try:
        path = vocoder_file(preset.name)
    except (ckpt.CheckpointError, ValueError):  # none trained (ValueError: no recipe for the preset)
        return GriffinLimVocoder(preset.mel), "Griffin-Lim (32 iterations) + limiter"
    return load_vocoder(path, device=dev), f"neural ({path.name})"


def time_ditto2(student, preset, tags_all, batch: int, reps: int, vocoder, dev: torch.device) -> dict:
    """DITTO-2 from fresh noise towards an intensity ramp, decoded and vocoded: median seconds of
    ``reps`` runs after a warm one, and the real-time factor (seconds per second of audio)."""
    opt = headline_config()
    control = intensity_control("ramp_up", preset.mel)
    shape = (batch, preset.mel.n_mels, preset.mel.frames)
    z0 = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dev)
    tags = tags_all[torch.arange(batch) % len(tags_all)].to(dev) if student.cfg.conditional else None
    decode_steps = claims.PROTOCOL["decode_steps"]

    def run() -> float:
        _sync(dev)
        t0 = time.perf_counter()
        r = ditto2(student, control.loss, z0, tags, decode_steps=decode_steps, cfg=opt)
        vocoder(r.x0.detach())
        _sync(dev)
        return time.perf_counter() - t0

    run()  # warm
    _reset_peak(dev)
    runs = [run() for _ in range(reps)]
    seconds = statistics.median(runs)
    return {"batch": batch, "iterations": opt.iterations, "refine_last": opt.refine_last,
            "decode_steps": decode_steps, "seconds": round(seconds, 4), "runs_s": [round(s, 4) for s in runs],
            "rtf": round(seconds / (batch * preset.mel.seconds), 5),
            "clips_per_s": round(batch / seconds, 3), "peak_cuda_memory_gib": _peak_gib(dev)}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--minutes", type=float, default=3.0,
                    help="training minutes per model (steps sized by the warm-up)")
    ap.add_argument("--teacher-steps", type=int, default=None, help="teacher steps instead of --minutes")
    ap.add_argument("--student-steps", type=int, default=None, help="CTM student steps instead of --minutes")
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--batches", default="1,16", help="DITTO-2 batch sizes")
    ap.add_argument("--reps", type=int, default=3, help="timed DITTO-2 runs per batch size")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="result file (default benchmarks/results/gpu_<device>.json)")
    ap.add_argument("--work", default=None,
                    help="work folder for checkpoints and models (default: a new temporary one)")
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (tests)")
    a = ap.parse_args(argv)
    for flag in ("teacher_steps", "student_steps"):
        if getattr(a, flag) is not None and getattr(a, flag) < 2:
            ap.error(f"--{flag.replace('_', '-')} must be at least 2 (a warm-up step and a timed one)")
    if a.warmup_steps < 2 or a.reps < 1 or a.minutes <= 0:
        ap.error("--warmup-steps must be >= 2, --reps >= 1 and --minutes > 0")
    try:
        preset, dev = get_preset(a.preset), training_device(a.device, "--device")
        batches = [int(b) for b in a.batches.split(",")]
    except ValueError as e:
        ap.error(str(e))
    if dev.type != "cuda" and not a.allow_cpu:
        sys.exit(f"gpu_check: no CUDA device here (--device {a.device} resolves to {dev}); this check is "
                 "for a CUDA machine. Pass --allow-cpu to run it anyway (the tests do, on --preset ci).")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out = Path(a.out) if a.out else RESULTS / f"gpu_{slug(name)}.json"
    t0 = time.perf_counter()

    if preset.data.source != "procedural":  # render the pieces on every core once (then cached)
        repertoire_training_data(preset, workers=max(1, min(16, os.cpu_count() or 1)))
    ds = training_data(preset)  # built (or loaded) once here; the trainers then load the cache
    data = {"clips": len(ds), "shape": list(ds.mels.shape), "source": preset.data.source,
            "seconds": round(time.perf_counter() - t0, 2)}
    teacher_file, teacher = timed_training(
        lambda n: train_teacher(preset, work / "teacher.safetensors", steps=n, progress=False, work_dir=work,
                                device=dev),
        a.warmup_steps, a.teacher_steps, a.minutes, dev)
    student_file, ctm = timed_training(
        lambda n: train_student("ctm", preset, work / "ctm.safetensors", teacher_path=teacher_file, steps=n,
                                progress=False, work_dir=work, device=dev),
        a.warmup_steps, a.student_steps, a.minutes, dev)

    student = load_student(student_file, dev)
    vocoder, vocoder_name = pick_vocoder(preset, dev)
    tags_all = ds.tags()
    timings = {f"batch_{b}": time_ditto2(student, preset, tags_all, b, a.reps, vocoder, dev) for b in batches}
    result = {"device": name, "device_type": dev.type, "torch": torch.__version__, "cuda": torch.version.cuda,
              "machine": machine(), "preset": preset.name, "work": str(work), "data": data,
              "teacher": teacher, "ctm": ctm,
              "ditto2": {"config": claims.HEADLINE, "control": "intensity ramp_up", "vocoder": vocoder_name,
                         "audio_seconds_per_clip": round(preset.mel.seconds, 4), **timings},
              "total_seconds": round(time.perf_counter() - t0, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
