"""DITTO vs DITTO-2: wall time, network evaluations, control error, RTF, memory.

    python benchmarks/bench_ditto.py [--controls intensity melody structure] [--steps 20]

Side by side in one run, with the shipped laptop models and the same targets and initial noise:

1. speed per control (one target, the paper's iteration counts: 70 for intensity, 150 for melody
   and structure): DITTO (teacher, S-step Euler with CFG, checkpointed) and DITTO-2 with the CM and
   CTM students (1-step surrogate, 2-step decode; also R = 10 decode-aware refinement iterations).
   Wall time includes the Griffin-Lim vocoder; speed-up = DITTO's wall time / the method's;
   NFE per iteration is the machine-independent cost model.
2. real-time factor of DITTO-2 (CTM, intensity, 70 iterations, vocoder included) for 1 clip and for
   ``--batch`` clips optimised as one batch (RTF per clip = wall / (clips x clip length)).
3. DITTO's memory vs S (10, 20, 40), with and without gradient checkpointing: peak resident memory
   of a fresh process running 2 iterations, and the bytes autograd keeps for the backward pass.

Writes benchmarks/results/ditto_laptop.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.config import get_preset
from ditto2_nb.controls import INTENSITY_SHAPES, intensity_control, melody_control, structure_control
from ditto2_nb.distill import load_distilled
from ditto2_nb.metrics import peak_rss_mb, saved_for_backward_mb
from ditto2_nb.optimize import OptimConfig, checkpointed, ditto, ditto2
from ditto2_nb.samplers import get_sampler, guided, karras_for
from ditto2_nb.teacher import heldout_data, load_teacher, machine, tags_tensor

OUT = Path(__file__).parent / "results"
ITERATIONS = {"intensity": 70, "melody": 150, "structure": 150}
METRIC = {"intensity": "mse_db2", "melody": "accuracy", "structure": "ssm_mse"}


def make_control(name: str, labels, cfg, n: int):
    if name == "intensity":
        shapes = sorted(INTENSITY_SHAPES)
        return intensity_control(torch.stack([intensity_control(shapes[i % len(shapes)], cfg).target[0]
                                              for i in range(n)]), cfg)
    if name == "melody":
        return melody_control(list(labels[:n]), cfg)
    return structure_control(["ABA"] * n, cfg)


def timed(fn, control, vocoder, metric: str, seconds_audio: float) -> dict:
    t0 = time.perf_counter()
    res = fn()
    wave = vocoder(res.x0)
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "rtf_per_clip": wall / (seconds_audio * len(wave)),
           "decoded": float(np.mean(control.evaluate(wave)[metric])), "final_loss": res.trace.loss[-1],
           "nfe_per_iteration": res.trace.nfe[-1] / len(res.trace.loss)}
    if res.x0_surrogate is not None:
        out["surrogate"] = float(np.mean(control.evaluate(vocoder(res.x0_surrogate))[metric]))
    return out


def speed(name, teacher, students, held, cfg, vocoder, steps: int, w: float) -> list[dict]:
    control = make_control(name, held.labels, cfg, 1)
    tags = tags_tensor(list(held.labels[:1]))
    z0 = torch.randn(1, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(0))
    opt = OptimConfig(iterations=ITERATIONS[name], lr=0.05, snapshot_every=0)
    methods = {f"DITTO S={steps}": lambda: ditto(teacher, control.loss, z0, tags, steps=steps, w=w, cfg=opt)}
    for kind, st in students.items():
        methods[f"DITTO-2 {kind}"] = lambda st=st: ditto2(st, control.loss, z0, tags, cfg=opt)
        methods[f"DITTO-2 {kind} R=10"] = lambda st=st: ditto2(st, control.loss, z0, tags,
                                                               cfg=replace(opt, refine_last=10))
    rows = []
    for method, fn in methods.items():
        rows.append({"control": name, "method": method, "iterations": opt.iterations, "metric": METRIC[name],
                     **timed(fn, control, vocoder, METRIC[name], cfg.seconds)})
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    for r in rows:
        r["speedup_vs_ditto"] = rows[0]["wall_s"] / r["wall_s"]
    return rows


def rtf(student, held, cfg, vocoder, batch: int) -> list[dict]:
    rows = []
    for b in (1, batch):
        control = make_control("intensity", held.labels, cfg, b)
        tags = tags_tensor(list(held.labels[:b]))
        z0 = torch.randn(b, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(1))
        opt = OptimConfig(iterations=ITERATIONS["intensity"], lr=0.05, snapshot_every=0)
        run = lambda c=control, z=z0, t=tags, o=opt: ditto2(student, c.loss, z, t, cfg=o)  # noqa: E731
        r = timed(run, control, vocoder, "mse_db2", cfg.seconds)
        rows.append({"batch": b, **r})
        print(rows[-1], flush=True)
    return rows


def memory_child(steps: int, use_ckpt: bool) -> None:
    """Run in a fresh process: 2 DITTO iterations; print peak RSS and autograd's saved bytes."""
    cfg = get_preset("laptop").mel
    teacher = load_teacher()
    tags = tags_tensor(list(heldout_data(get_preset("laptop")).labels[:1]))
    control = intensity_control("ramp_up", cfg)
    z0 = torch.randn(1, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(0))
    rss_loaded = peak_rss_mb()
    ditto(teacher, control.loss, z0, tags, steps=steps, grad_checkpoint=use_ckpt,
          cfg=OptimConfig(iterations=2, snapshot_every=0))
    sigmas = karras_for(teacher, steps)
    denoise = guided(teacher, tags, 2.0)
    fn = checkpointed(denoise) if use_ckpt else denoise
    z = z0.clone().requires_grad_(True)
    saved, _ = saved_for_backward_mb(lambda: get_sampler("euler")(fn, z * sigmas[0], sigmas))
    print(json.dumps({"steps": steps, "checkpointed": use_ckpt, "peak_rss_mb": peak_rss_mb(),
                      "rss_after_loading_mb": rss_loaded, "saved_for_backward_mb": saved}))


def memory() -> list[dict]:
    rows = []
    for use_ckpt in (True, False):
        for s in (10, 20, 40):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(s), str(int(use_ckpt))],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--controls", nargs="+", default=list(ITERATIONS), choices=list(ITERATIONS))
    ap.add_argument("--steps", type=int, default=20, help="DITTO's sampler steps S")
    ap.add_argument("--batch", type=int, default=8, help="clips optimised as one batch for the RTF")
    ap.add_argument("--skip", nargs="*", default=[], choices=["speed", "rtf", "memory"])
    ap.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.memory_child:
        return memory_child(a.memory_child[0], bool(a.memory_child[1]))
    p = get_preset("laptop")
    cfg = p.mel
    held = heldout_data(p)
    teacher = load_teacher()
    students = {k: load_distilled(k) for k in ("cm", "ctm")}
    vocoder = GriffinLimVocoder(cfg)
    path = OUT / "ditto_laptop.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    res = {k: v for k, v in res.items() if k in ("speed", "rtf", "memory")}
    res.update({"machine": machine(), "torch_threads": torch.get_num_threads(), "ditto_steps": a.steps,
                "cfg_w": p.distill.w, "clip_seconds": cfg.seconds})
    if "speed" not in a.skip:
        res["speed"] = [r for name in a.controls
                        for r in speed(name, teacher, students, held, cfg, vocoder, a.steps, p.distill.w)]
    if "rtf" not in a.skip:
        res["rtf"] = rtf(students["ctm"], held, cfg, vocoder, a.batch)
    if "memory" not in a.skip:
        res["memory"] = memory()
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
