"""DITTO vs DITTO-2 on intensity control: wall time, network evaluations, control error, RTF.

    python benchmarks/bench_ditto.py [--iterations 70] [--targets 1] [--steps 20]

Runs, side by side on the same targets and initial noise, with the shipped laptop models:
DITTO (teacher, S-step Euler with CFG, checkpointed) and DITTO-2 with the CM and CTM students
(1-step surrogate, 2-step decode; also R = 10 decode-aware refinement iterations). Reports the
decoded control error (intensity MSE in dB^2, measured with librosa on the Griffin-Lim audio),
the surrogate's error, wall time, speed-up, NFE per iteration and real-time factor (vocoder
included). Writes benchmarks/results/ditto_laptop.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.config import get_preset
from ditto2_nb.controls import intensity_control, intensity_target
from ditto2_nb.distill import load_distilled
from ditto2_nb.optimize import OptimConfig, ditto, ditto2
from ditto2_nb.teacher import encode_tags, load_teacher, machine

OUT = Path(__file__).parent / "results"
SHAPES = ["ramp_up", "ramp_down", "up_down", "down_up", "jump_up", "jump_down", "flat"]


def run(method: str, fn, control, vocoder, seconds_audio: float) -> dict:
    t0 = time.perf_counter()
    res = fn()
    wave = vocoder(res.x0)
    wall = time.perf_counter() - t0
    decoded = float(np.mean(control.evaluate(wave)["mse_db2"]))
    out = {"method": method, "wall_s": wall, "rtf": wall / (seconds_audio * len(wave)),
           "decoded_mse_db2": decoded, "final_loss": res.trace.loss[-1],
           "nfe_per_iteration": res.trace.nfe[-1] / len(res.trace.loss)}
    if res.x0_surrogate is not None:
        out["surrogate_mse_db2"] = float(np.mean(control.evaluate(vocoder(res.x0_surrogate))["mse_db2"]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=70)
    ap.add_argument("--targets", type=int, default=1, help="clips optimised as one batch")
    ap.add_argument("--steps", type=int, default=20, help="DITTO's sampler steps S")
    ap.add_argument("--lr", type=float, default=0.05)
    a = ap.parse_args(argv)
    p = get_preset("laptop")
    cfg, frames = p.mel, p.mel.frames
    teacher = load_teacher()
    students = {k: load_distilled(k) for k in ("cm", "ctm")}
    targets = torch.stack([intensity_target(SHAPES[i % len(SHAPES)], frames) for i in range(a.targets)])
    control = intensity_control(targets, cfg)
    tags = encode_tags({"instrument": "organ", "drums": "no drums"})[None].expand(a.targets, -1)
    z0 = torch.randn(a.targets, cfg.n_mels, frames, generator=torch.Generator().manual_seed(0))
    vocoder = GriffinLimVocoder(cfg)
    opt = OptimConfig(iterations=a.iterations, lr=a.lr, snapshot_every=0)
    w = p.distill.w
    rows = [run(f"DITTO S={a.steps}", lambda: ditto(teacher, control.loss, z0, tags, steps=a.steps,
                                                    w=w, cfg=opt), control, vocoder, cfg.seconds)]
    for kind, student in students.items():
        rows.append(run(f"DITTO-2 {kind} (2-step decode)",
                        lambda s=student: ditto2(s, control.loss, z0, tags, decode_steps=2, cfg=opt),
                        control, vocoder, cfg.seconds))
        rows.append(run(f"DITTO-2 {kind} + R=10 refine",
                        lambda s=student: ditto2(s, control.loss, z0, tags, decode_steps=2,
                                                 cfg=replace(opt, refine_last=10)),
                        control, vocoder, cfg.seconds))
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup_vs_ditto"] = base / r["wall_s"]
    res = {"machine": machine(), "iterations": a.iterations, "targets": a.targets,
           "ditto_steps": a.steps, "cfg_w": w, "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "ditto_laptop.json").write_text(json.dumps(res, indent=1))
    for r in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})


if __name__ == "__main__":
    main()
