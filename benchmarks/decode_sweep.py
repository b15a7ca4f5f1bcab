"""Choose each student's 2-step decode by measurement: the intermediate sigma that DITTO-2 keeps
its optimised control through.

    python benchmarks/decode_sweep.py [--preset laptop] [--kinds cm ctm] [--targets 8] [--write]

For every candidate sigma_mid, DITTO-2 without refinement (R = 0, 70 iterations) on ``--targets``
intensity targets built from *training* clips (validation targets: never the claims benchmark's
held-out ones), from the same noises: the decoded error (Griffin-Lim + librosa), the 1-step
surrogate's, and their ratio (the decode gap); plus the quality of plain 2-step samples of 64
noises, four independent draws (FD, attr-clf embedder, against training clips). The choice: the
smallest decoded error among the candidates whose FD is no worse than the 1-step samples' (a
2-step decode that loses quality is no decode) beyond the FD's own noise: the mean paired
difference over the draws at most two standard errors; if none qualifies, the best FD.
``--write`` stores the choice beside the model file (``<name>.decode.json``, tied to the weights
by their SHA-256), which :func:`ditto2_nb.distill.load_student` reads, so DITTO-2 uses it by
default.

Writes benchmarks/results/decode_sweep_<preset>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.controls import INTENSITY_SHAPES, intensity_control
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core import metrics
from ditto2_nb.core.assets import machine, resolve_model_file
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import tag_vocab, tags_tensor, training_data
from ditto2_nb.diffusion import seeded_noise
from ditto2_nb.distill import decode_file, load_distilled, student_decode
from ditto2_nb.optimize import OptimConfig, ditto2

OUT = Path(__file__).parent / "results"
SIGMA_MIDS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)


def validation_control(cfg, n: int):
    shapes = sorted(INTENSITY_SHAPES)
    rng = np.random.default_rng(77)
    curves = [intensity_control(shapes[(i + 3) % len(shapes)], cfg, lo=float(rng.uniform(-36, -26)),
                                hi=float(rng.uniform(-16, -8))).target[0] for i in range(n)]
    return intensity_control(torch.stack(curves), cfg)


DRAWS = 4  # independent sets of 64 noises for the FDs: their paired spread is the FD's noise


def sweep(student, train, cfg, emb, reference, n: int) -> dict:
    control = validation_control(cfg, n)
    tags = tags_tensor(train.labels[:n]) if student.cfg.conditional else None
    z0 = seeded_noise(range(9000, 9000 + n), (cfg.n_mels, cfg.frames))
    draws = [seeded_noise(range(9500 + 64 * k, 9564 + 64 * k), (cfg.n_mels, cfg.frames))
             for k in range(DRAWS)]
    tq = tags_tensor(train.labels[n: n + 64]) if student.cfg.conditional else None
    vocoder = GriffinLimVocoder(cfg)
    ref = metrics.embed(emb, reference)

    @torch.no_grad()
    def fds(steps: int, **kw) -> list[float]:
        return [metrics.frechet_distance(metrics.embed(emb, student_decode(
            student, zq * student.sigma_max, steps, tq, **kw)), ref) for zq in draws]

    one_step = fds(1)
    rows = []
    for sm in SIGMA_MIDS:
        r = ditto2(student, control.loss, z0, tags, decode_steps=2, sigma_mid=sm,
                   cfg=OptimConfig(iterations=70, lr=0.05, snapshot_every=0))
        dec = control.evaluate(vocoder(r.x0))["mse_db2"]
        sur = control.evaluate(vocoder(r.x0_surrogate))["mse_db2"]
        q = fds(2, sigma_mid=sm)
        diff = np.subtract(q, one_step)  # paired: the same noises
        rows.append({"sigma_mid": sm, "decoded_median": float(np.median(dec)),
                     "decoded_mean": float(np.mean(dec)), "surrogate_median": float(np.median(sur)),
                     "gap": float(np.median(dec) / np.median(sur)), "fd_2step": float(np.mean(q)),
                     "fd_2step_draws": q, "fd_minus_1step": float(diff.mean()),
                     "fd_minus_1step_se": float(diff.std(ddof=1) / np.sqrt(len(diff)))})
        print(f"sigma_mid {sm}: decoded {rows[-1]['decoded_median']:.2f}, surrogate "
              f"{rows[-1]['surrogate_median']:.2f}, FD {np.mean(q):.3g} (1-step {np.mean(one_step):.3g}, "
              f"difference {diff.mean():+.3f} +- {rows[-1]['fd_minus_1step_se']:.3f})", flush=True)
    return {"rows": rows, "fd_1step": float(np.mean(one_step)), "fd_1step_draws": one_step,
            "chosen": choose(rows), "rule": RULE}


def choose(rows: list[dict]) -> float:
    """The sigma_mid of :data:`RULE` from the sweep's rows."""
    ok = [r for r in rows if r["fd_minus_1step"] <= 2 * r["fd_minus_1step_se"]]
    best = min(ok, key=lambda r: r["decoded_median"]) if ok else min(rows, key=lambda r: r["fd_2step"])
    return best["sigma_mid"]


RULE = (f"smallest decoded error among the sigmas whose FD (mean of {DRAWS} draws of 64 noises) is not "
        "worse than the 1-step samples' beyond the noise: paired difference <= 2 standard errors; "
        "else the best FD")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--kinds", nargs="+", default=["cm", "ctm", "ctm_uncond"])
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--write", action="store_true", help="store the choice beside each model file")
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    cfg, train = p.mel, training_data(p)
    emb = metrics.train_fd_embedder(train.mels, tags_tensor(train.labels)[:, :4], tag_vocab()[:4],
                                    db_range=cfg.db_max - cfg.db_min)
    reference = train.mels[200:456]
    res = {"preset": a.preset, "machine": machine(), "targets": a.targets, "fd_embedder": emb.name,
           "candidates": list(SIGMA_MIDS), "models": {}}
    for kind in a.kinds:
        base, cond = kind.removesuffix("_uncond"), not kind.endswith("_uncond")
        student = load_distilled(base, a.preset, conditional=cond)
        student.decode = {}  # measure from scratch, not from an earlier choice
        path = resolve_model_file(kind, a.preset, False, "")
        res["models"][kind] = sweep(student, train, cfg, emb, reference, a.targets) | {
            "file": path.name, "weights_sha256": ckpt.sha256(path)}
        if a.write:
            m = res["models"][kind]
            decode_file(path).write_text(json.dumps({
                "weights_sha256": m["weights_sha256"], "decode": {"sigma_mid": m["chosen"]},
                "measured_by": f"benchmarks/decode_sweep.py --preset {a.preset}", "sweep": m["rows"]},
                indent=1))
    OUT.mkdir(exist_ok=True)
    path = OUT / f"decode_sweep_{a.preset}.json"
    if path.exists():  # keep the other models' rows when only some are measured again
        res["models"] = json.loads(path.read_text()).get("models", {}) | res["models"]
    path.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
