"""Control quality of DITTO vs DITTO-2 over many targets: decoded control error and FD.

    python benchmarks/eval_controls.py [--targets 16] [--controls intensity melody structure]

For each control, ``--targets`` held-out clips give the targets and the tags (one batch per
method, the same initial noise for every method):

* intensity: a named dB shape (cycling through the presets) with a per-target range;
* melody: the clip's own pitch-class line (procedural labels);
* structure: "AB", "ABA", "AABB", "AA" in turn.

Methods: no optimisation (the initial noise decoded: teacher S steps and CTM 2 steps), DITTO
(teacher, Euler S steps with CFG w; S = 20 for intensity, ``--ditto-steps-long`` for the 150-
iteration controls to fit a CPU budget), DITTO-2 with CM and CTM (2-step decode), each with and
without R = 10 decode-aware refinement iterations, and CTM with the typical-set penalty. DITTO runs
without gradient checkpointing here (identical gradients, tested; faster on CPU); memory is
measured in bench_ditto.py.

Errors are measured on the Griffin-Lim audio with librosa (the controls' ``evaluate``). FD: mel
statistics of every output of a method (all controls pooled, 48 distinct clips) against held-out
clips, normalised with the data floor and the trivial-baseline ceiling (the unoptimised outputs are
left out: the same 16 noises repeat across controls, which would inflate their FD). Results are
written after every (control, method) so an interrupted run resumes:
benchmarks/results/controls_laptop.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ditto2_nb import metrics
from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.config import get_preset
from ditto2_nb.controls import INTENSITY_SHAPES, intensity_control, melody_control, structure_control
from ditto2_nb.distill import load_distilled, student_decode
from ditto2_nb.optimize import OptimConfig, ditto, ditto2
from ditto2_nb.samplers import get_sampler, guided, karras_for
from ditto2_nb.teacher import heldout_data, load_teacher, machine, tags_tensor

OUT = Path(__file__).parent / "results" / "controls_laptop.json"
ITERATIONS = {"intensity": 70, "melody": 150, "structure": 150}
METRIC = {"intensity": "mse_db2", "melody": "accuracy", "structure": "ssm_mse"}
STRUCTURES = ["AB", "ABA", "AABB", "AA"]


def make_control(name: str, clips, cfg, n: int):
    if name == "intensity":
        shapes = sorted(INTENSITY_SHAPES)
        rng = np.random.default_rng(1)
        targets = [intensity_control(shapes[i % len(shapes)], cfg, lo=float(rng.uniform(-36, -26)),
                                     hi=float(rng.uniform(-16, -8))).target[0] for i in range(n)]
        return intensity_control(torch.stack(targets), cfg)
    if name == "melody":
        return melody_control(list(clips.labels[:n]), cfg)
    return structure_control([STRUCTURES[i % len(STRUCTURES)] for i in range(n)], cfg)


def methods(teacher, students, tags, w: float, s_long: int, name: str, iters: int):
    """name -> function(loss, z0) returning (x0, x0_surrogate or None, trace or None)."""
    s = 20 if name == "intensity" else s_long
    opt = OptimConfig(iterations=iters, lr=0.05, snapshot_every=0)
    sigmas = karras_for(teacher, s)
    euler = get_sampler("euler")

    def plain(res):
        return res.x0, res.x0_surrogate, res.trace

    out = {
        f"teacher S={s} (no optimisation)": lambda loss, z0: (
            euler(guided(teacher, tags, w), z0 * sigmas[0], sigmas), None, None),
        "CTM 2-step (no optimisation)": lambda loss, z0: (
            student_decode(students["ctm"], z0 * students["ctm"].sigma_max, 2, tags), None, None),
        f"DITTO S={s}": lambda loss, z0: plain(ditto(teacher, loss, z0, tags, steps=s, w=w,
                                                     grad_checkpoint=False, cfg=opt)),
    }
    for kind, st in students.items():
        out[f"DITTO-2 {kind}"] = lambda loss, z0, st=st: plain(ditto2(st, loss, z0, tags, cfg=opt))
        out[f"DITTO-2 {kind} R=10"] = lambda loss, z0, st=st: plain(
            ditto2(st, loss, z0, tags, cfg=replace(opt, refine_last=min(10, iters))))
    reg = replace(opt, refine_last=min(10, iters), reg_weight=10.0)
    out["DITTO-2 ctm R=10 + typical-set penalty"] = lambda loss, z0: plain(
        ditto2(students["ctm"], loss, z0, tags, cfg=reg))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=16)
    ap.add_argument("--controls", nargs="+", default=list(ITERATIONS), choices=list(ITERATIONS))
    ap.add_argument("--ditto-steps-long", type=int, default=10,
                    help="DITTO's S for the 150-iteration controls (melody, structure)")
    ap.add_argument("--fresh", action="store_true", help="ignore earlier results")
    ap.add_argument("--scale", type=float, default=1.0, help="scale the iteration counts (smoke tests)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    p = get_preset("laptop")
    cfg = p.mel
    held = heldout_data(p)
    teacher = load_teacher()
    students = {k: load_distilled(k) for k in ("cm", "ctm")}
    tags = tags_tensor(list(held.labels[:a.targets]))
    z0 = torch.randn(a.targets, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(0))
    vocoder = GriffinLimVocoder(cfg)
    out = a.out
    iterations = {k: max(1, round(v * a.scale)) for k, v in ITERATIONS.items()}
    res = {} if a.fresh or not out.exists() else json.loads(out.read_text())
    res.update({"machine": machine(), "targets": a.targets, "cfg_w": p.distill.w,
                "iterations": iterations, "ditto_steps": {"intensity": 20, "melody": a.ditto_steps_long,
                                                          "structure": a.ditto_steps_long}})
    rows = res.setdefault("rows", {})
    out.parent.mkdir(exist_ok=True)
    for name in a.controls:
        control = make_control(name, held, cfg, a.targets)
        for method, fn in methods(teacher, students, tags, p.distill.w, a.ditto_steps_long, name,
                                  iterations[name]).items():
            key = f"{name} | {method}"
            if key in rows:
                continue
            t0 = time.perf_counter()
            x0, x0_sur, trace = fn(control.loss, z0)
            wall = time.perf_counter() - t0
            err = control.evaluate(vocoder(x0))[METRIC[name]]
            row = {"control": name, "method": method, "metric": METRIC[name], "wall_s": wall,
                   "decoded_mean": float(np.mean(err)), "decoded_median": float(np.median(err)),
                   "decoded": err,
                   "mel_stats": metrics.mel_stats_embedding(x0.detach().float()).round(decimals=4).tolist()}
            if x0_sur is not None:
                sur = control.evaluate(vocoder(x0_sur))[METRIC[name]]
                row.update(surrogate_mean=float(np.mean(sur)), surrogate_median=float(np.median(sur)))
            if trace is not None:
                row.update(final_loss=trace.loss[-1], nfe_per_iteration=trace.nfe[-1] / len(trace.loss))
            rows[key] = row
            out.write_text(json.dumps(res))
            print(f"{key}: {METRIC[name]} mean {row['decoded_mean']:.3f} median "
                  f"{row['decoded_median']:.3f} ({wall:.0f} s)", flush=True)
    fd_table(res, held.mels)
    out.write_text(json.dumps(res))


def fd_table(res: dict, heldout: torch.Tensor) -> None:
    """Normalised mel-stats FD of each method's outputs (all controls pooled) to held-out clips."""
    by_method: dict[str, list] = {}
    for row in res["rows"].values():
        if "no optimisation" in row["method"]:  # one noise per target, repeated across controls:
            continue  # 48 rows but only 16 distinct clips would inflate the FD
        short = row["method"].split(" S=")[0] if row["method"].startswith("DITTO S=") else row["method"]
        by_method.setdefault(short, []).extend(row["mel_stats"])
    embed = metrics.mel_stats_embedding
    half = len(heldout) // 2
    target, reference = embed(heldout[:half]), heldout[half:]
    res["fd"] = {}
    for m, feats in by_method.items():
        n = len(feats)
        rep = metrics.FDReport("mel-stats", metrics.frechet_distance(torch.tensor(feats), target),
                               metrics.frechet_distance(embed(reference[:n]), target),
                               metrics.frechet_distance(embed(metrics.trivial_baseline(reference, n)),
                                                        target))
        res["fd"][m] = rep.as_dict() | {"n": n}
    for m, r in res["fd"].items():
        print(f"FD {m}: {r['fd_norm']:.3f} (n={r['n']})")


if __name__ == "__main__":
    main()
