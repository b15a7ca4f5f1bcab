"""DITTO-2 variants on the fair protocol's targets: which change keeps control and quality?

    python benchmarks/ditto2_variants.py [--preset laptop] [--variants base shell ...] [--kind ctm]

Each variant is the headline DITTO-2 configuration of ``benchmarks/claims.py`` (CTM student, R = 10,
2-step decode, the same 16 targets and initial noises per control, the same iterations and learning
rate) with one thing changed. It reports the decoded control error per control (median and IQR),
the FD (attr-clf, 48 pooled outputs, the claims' reference clips) and the final noise norm
|z| / sqrt(D) (1 = the typical shell a Gaussian draw lies on). DITTO's rows are read from the claims
run (run ``claims.py`` first). Merges into ``benchmarks/results/ditto2_variants_<preset>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import claims as C
import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core import metrics
from ditto2_nb.core.assets import cache_dir, machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, tag_vocab, tags_tensor, training_data
from ditto2_nb.distill import load_distilled
from ditto2_nb.optimize import OptimConfig, ditto2

OUT = Path(__file__).parent / "results"

# name -> (OptimConfig changes, ditto2 keyword changes)
VARIANTS = {
    "base": ({}, {}),
    "shell": ({"project": True}, {}),
    "sigma_mid_0.3": ({}, {"sigma_mid": 0.3}),
    "sigma_mid_1": ({}, {"sigma_mid": 1.0}),
    "shell_sigma_mid_0.3": ({"project": True}, {"sigma_mid": 0.3}),
    "shell_sigma_mid_1": ({"project": True}, {"sigma_mid": 1.0}),
    "r20": ({"refine_last": 20}, {}),
    "shell_r20": ({"project": True, "refine_last": 20}, {}),
    "lr_0.02": ({"lr": 0.02}, {}),
}


def run_variant(name: str, student, held, cfg, vocoder, n: int, kind: str) -> dict:
    opt_kw, d2_kw = VARIANTS[name]
    rows, outputs, seconds = {}, [], 0.0
    for control_name in C.CONTROLS:
        idx = list(C.clip_range(control_name, n))
        control = C.make_control(control_name, held, cfg, idx)
        tags = tags_tensor([held.labels[i] for i in idx])
        z0 = C.initial_noise(control_name, idx, n, cfg)
        iters = C.ITERATIONS[control_name]
        opt = replace(OptimConfig(iterations=iters, lr=C.PROTOCOL["lr"], snapshot_every=0,
                                  refine_last=C.PROTOCOL["refine_last"]), **opt_kw)
        t0 = time.perf_counter()
        r = ditto2(student, control.loss, z0, tags, decode_steps=C.PROTOCOL["decode_steps"], cfg=opt, **d2_kw)
        seconds += time.perf_counter() - t0
        metric, better = C.METRIC[control_name]
        decoded = control.evaluate(vocoder(r.x0))[metric]
        surrogate = control.evaluate(vocoder(r.x0_surrogate))[metric]
        norm = (r.z.flatten(1).norm(dim=1) / r.z[0].numel() ** 0.5).tolist()
        rows[control_name] = C.summary(decoded, better) | {
            "surrogate_median": float(np.median(surrogate)), "norm_median": float(np.median(norm)),
            "per_target": list(map(float, decoded))}
        outputs.append(r.x0)
    return {"controls": rows, "optimise_seconds_per_clip": seconds / (3 * n)}, torch.cat(outputs)


def ditto_reference(run: Path, n: int, batch: int) -> tuple[dict, torch.Tensor]:
    rows, outputs = {}, []
    for control_name in C.CONTROLS:
        chunks = [ckpt.read(run / f"{control_name}_ditto_{i:03d}.safetensors") for i in range(0, n, batch)]
        decoded = [v for _, m in chunks for v in m["decoded"]]
        rows[control_name] = C.summary(decoded, C.METRIC[control_name][1]) | {"per_target": decoded}
        outputs.append(torch.cat([t["x0"] for t, _ in chunks]))
    return {"controls": rows}, torch.cat(outputs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--kind", default="ctm", choices=("ctm", "cm"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--targets", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="the claims run's batch (to read DITTO's chunks)")
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    cfg = p.mel
    held, train = heldout_data(p), training_data(p)
    student = load_distilled(a.kind, a.preset)
    vocoder = GriffinLimVocoder(cfg)
    emb = metrics.train_fd_embedder(train.mels, tags_tensor(train.labels)[:, :4], tag_vocab()[:4],
                                    db_range=p.mel.db_max - p.mel.db_min)
    ref = metrics.embed(emb, held.mels[4 * a.targets:])
    out = OUT / f"ditto2_variants_{a.preset}.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update(machine=machine(), preset=a.preset, targets=a.targets, fd_embedder=emb.name)
    res.setdefault("variants", {})
    ref_row, x = ditto_reference(cache_dir() / "runs" / f"claims_{a.preset}", a.targets, a.batch)
    res["ditto"] = ref_row | {"fd": metrics.frechet_distance(metrics.embed(emb, x), ref)}
    for name in a.variants:
        row, x = run_variant(name, student, held, cfg, vocoder, a.targets, a.kind)
        row["fd"] = metrics.frechet_distance(metrics.embed(emb, x), ref)
        res["variants"][f"{a.kind}:{name}"] = row
        c = row["controls"]
        norms = "/".join(f"{c[k]['norm_median']:.3f}" for k in C.CONTROLS)
        print(f"{a.kind}:{name:22s} int {c['intensity']['median']:.3f} mel {c['melody']['median']:.3f} "
              f"str {c['structure']['median']:.5f} FD {row['fd']:.2f} |z| "
              f"{norms} "
              f"{row['optimise_seconds_per_clip']:.2f} s/clip", flush=True)
        out.write_text(json.dumps(res, indent=1))
    d = res["ditto"]["controls"]
    print(f"ditto int {d['intensity']['median']:.3f} mel {d['melody']['median']:.3f} "
          f"str {d['structure']['median']:.5f} FD {res['ditto']['fd']:.2f}")


if __name__ == "__main__":
    main()
