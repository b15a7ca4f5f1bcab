"""DITTO-2 variants: which change keeps both the control and the quality?

    python benchmarks/ditto2_variants.py [--split validation|claims] [--variants base shell ...] [--kind ctm]

Each variant is the DITTO-2 configuration of ``benchmarks/claims.py`` before this study (CTM
student, R = 10, 2-step decode, the protocol's iterations and learning rate) with a few things
changed. Per control it reports the decoded error (median, IQR), the surrogate's median, the final
noise norm |z| / sqrt(D) (1 = the typical shell a Gaussian draw lies on) and how far z moved,
|z - z0| / sqrt(D); over the three controls pooled, the FD (attr-clf, 48 outputs, the claims'
reference clips).

``--split validation`` (the default, where a configuration is *chosen*): 16 targets per control from
training clips, with initial noises no claims run uses. ``--split claims``: the claims' own held-out
targets and noises, with DITTO's rows read from the claims run (run ``claims.py`` first) — for
reporting, not for choosing. The rule, fixed before the validation run: among the variants whose
intensity and structure medians are no worse than ``base``'s and whose melody median is at most 0.02
below it, the lowest FD wins. Merges into ``benchmarks/results/ditto2_variants_<preset>.json``.

Melody is reported twice: the chroma agreement (the control's own ``evaluate``, what the rule
above was fixed on, ``median``) and, beside it, the pitch judge's pitch-class accuracy on the score's
sounding frames (``judge``: the claims' melody number, :data:`claims.MELODY_JUDGED`). The outputs
are heard through the claims' vocoder (``--vocoder``, default the preset's: ``claims.protocol_vocoder``),
named in every row, so the claims split's DITTO rows (read from the claims run) and the variants
are heard alike.
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

from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core import metrics
from ditto2_nb.core.assets import cache_dir, machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, tag_vocab, tags_tensor, training_data
from ditto2_nb.diffusion import seeded_noise
from ditto2_nb.distill import load_distilled
from ditto2_nb.optimize import OptimConfig, ditto2

OUT = Path(__file__).parent / "results"
BASE_R = 10  # the DITTO-2 refinement before this study (its `base` row)

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
    "shell_r20_lr_0.02": ({"project": True, "refine_last": 20, "lr": 0.02}, {}),
    "shell_r20_trust_0.3": ({"project": True, "refine_last": 20, "trust_radius": 0.3}, {}),
    "shell_r20_trust_0.1": ({"project": True, "refine_last": 20, "trust_radius": 0.1}, {}),
    "shell_r20_trust_0.15": ({"project": True, "refine_last": 20, "trust_radius": 0.15}, {}),
    "shell_r20_trust_0.25": ({"project": True, "refine_last": 20, "trust_radius": 0.25}, {}),
    "shell_r20_trust_0.2": ({"project": True, "refine_last": 20, "trust_radius": 0.2}, {}),
    "r20_trust_0.2": ({"refine_last": 20, "trust_radius": 0.2}, {}),
    "shell_r20_trust_0.6": ({"project": True, "refine_last": 20, "trust_radius": 0.6}, {}),
}


def validation_noise(control: str, idx: list[int], n: int, cfg) -> torch.Tensor:
    """Validation z0: seeds no claims target uses (clip k of control c: 700,000 + 1000 c + k)."""
    c = C.CONTROLS.index(control)
    return seeded_noise([700_000 + 1000 * c + (i - c * n) for i in idx], (cfg.n_mels, cfg.frames))


def run_variant(name: str, student, clips, cfg, vocoder, n: int, noise) -> dict:
    opt_kw, d2_kw = VARIANTS[name]
    rows, outputs, seconds = {}, [], 0.0
    for control_name in C.CONTROLS:
        idx = list(C.clip_range(control_name, n))
        control = C.make_control(control_name, clips, cfg, idx)
        tags = tags_tensor([clips.labels[i] for i in idx])
        z0 = noise(control_name, idx, n, cfg)
        iters = C.ITERATIONS[control_name]
        opt = replace(OptimConfig(iterations=iters, lr=C.PROTOCOL["lr"], snapshot_every=0,
                                  refine_last=BASE_R), **opt_kw)
        t0 = time.perf_counter()
        r = ditto2(student, control.loss, z0, tags, decode_steps=C.PROTOCOL["decode_steps"], cfg=opt, **d2_kw)
        seconds += time.perf_counter() - t0
        metric, better = C.METRIC[control_name]
        wave, sur_wave = vocoder(r.x0.detach()), vocoder(r.x0_surrogate.detach())
        decoded = control.evaluate(wave)[metric]
        surrogate = control.evaluate(sur_wave)[metric]
        d = r.z[0].numel() ** 0.5
        norm = (r.z.flatten(1).norm(dim=1) / d).tolist()
        moved = ((r.z - z0).flatten(1).norm(dim=1) / d).tolist()
        rows[control_name] = C.summary(decoded, better) | {
            "surrogate_median": float(np.median(surrogate)), "norm_median": float(np.median(norm)),
            "moved_median": float(np.median(moved)),
            "per_target": list(map(float, decoded))}
        if (j := C.judged(control, wave, cfg.sample_rate)) is not None:
            acc = j[C.MELODY_JUDGED[0]]
            sur = C.judged(control, sur_wave, cfg.sample_rate)[C.MELODY_JUDGED[0]]
            rows[control_name]["judge"] = ({"metric": C.MELODY_JUDGED[0]} | C.summary(acc, C.MELODY_JUDGED[1])
                                           | {"surrogate_median": float(np.median(sur)), "per_target": acc})
        outputs.append(r.x0)
    return {"controls": rows, "optimise_seconds_per_clip": seconds / (3 * n),
            "vocoder": vocoder.description}, torch.cat(outputs)


def ditto_reference(run: Path, n: int, batch: int) -> tuple[dict, torch.Tensor]:
    """DITTO's rows from the claims run's chunks, as heard there (``evaluation``: its vocoder); the
    judge's melody numbers where the chunks have them."""
    rows, outputs, heard = {}, [], set()
    for control_name in C.CONTROLS:
        chunks = [ckpt.read(run / f"{control_name}_ditto_{i:03d}.safetensors") for i in range(0, n, batch)]
        decoded = [v for _, m in chunks for v in m["decoded"]]
        rows[control_name] = C.summary(decoded, C.METRIC[control_name][1]) | {"per_target": decoded}
        if all("judge" in m for _, m in chunks):
            rows[control_name]["judge"] = C.judge_row(chunks)
        heard |= {m.get("evaluation", "?") for _, m in chunks}
        outputs.append(torch.cat([t["x0"] for t, _ in chunks]))
    return {"controls": rows, "evaluation": sorted(heard)}, torch.cat(outputs)


def choose(variants: dict[str, dict], base: str) -> str:
    """The rule: lowest FD among the variants no worse than ``base`` on intensity and structure
    (medians) and at most 0.02 below it on melody accuracy."""
    b = variants[base]["controls"]

    def ok(row):
        c = row["controls"]
        return (c["intensity"]["median"] <= b["intensity"]["median"]
                and c["structure"]["median"] <= b["structure"]["median"]
                and c["melody"]["median"] >= b["melody"]["median"] - 0.02)

    return min((k for k, row in variants.items() if ok(row)), key=lambda k: variants[k]["fd"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--kind", default="ctm", choices=("ctm", "cm"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--targets", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="the claims run's batch (to read DITTO's chunks)")
    ap.add_argument("--split", default="validation", choices=("validation", "claims"),
                    help="validation: training clips and fresh noises (choose here); claims: the "
                         "claims' own held-out targets and noises (report only)")
    ap.add_argument("--vocoder", default="default", choices=C.VOCODERS,
                    help="as benchmarks/claims.py (default: the preset's)")
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    cfg = p.mel
    held, train = heldout_data(p), training_data(p)
    student = load_distilled(a.kind, a.preset)
    vocoder = C.protocol_vocoder(a.preset, cfg, a.vocoder)
    emb = metrics.train_fd_embedder(train.mels, tags_tensor(train.labels)[:, :4], tag_vocab()[:4],
                                    db_range=p.mel.db_max - p.mel.db_min)
    ref = metrics.embed(emb, held.mels[4 * a.targets:])
    out = OUT / f"ditto2_variants_{a.preset}.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update(machine=machine(), preset=a.preset, targets=a.targets, fd_embedder=emb.name,
               melody_judge=C.judge_info())
    split = res.setdefault(a.split, {"variants": {}})
    if a.split == "claims":
        clips, noise = held, C.initial_noise
        ref_row, x = ditto_reference(cache_dir() / "runs" / f"claims_{a.preset}", a.targets, a.batch)
        split["ditto"] = ref_row | {"fd": metrics.frechet_distance(metrics.embed(emb, x), ref)}
    else:
        clips, noise = train, validation_noise
    for name in a.variants:
        row, x = run_variant(name, student, clips, cfg, vocoder, a.targets, noise)
        row["fd"] = metrics.frechet_distance(metrics.embed(emb, x), ref)
        split["variants"][f"{a.kind}:{name}"] = row
        c = row["controls"]
        norms = "/".join(f"{c[k]['norm_median']:.2f}" for k in C.CONTROLS)
        norms += " moved " + "/".join(f"{c[k]['moved_median']:.2f}" for k in C.CONTROLS)
        print(f"{a.kind}:{name:22s} int {c['intensity']['median']:.3f} mel {c['melody']['median']:.3f} "
              f"(judge {c['melody']['judge']['median']:.3f}) "
              f"str {c['structure']['median']:.5f} FD {row['fd']:.2f} |z| "
              f"{norms} "
              f"{row['optimise_seconds_per_clip']:.2f} s/clip", flush=True)
        if a.split == "validation" and f"{a.kind}:base" in split["variants"]:
            res["chosen"] = choose(split["variants"], f"{a.kind}:base")
        out.write_text(json.dumps(res, indent=1))
    if "ditto" in split:
        d = split["ditto"]["controls"]
        print(f"ditto int {d['intensity']['median']:.3f} mel {d['melody']['median']:.3f} "
              f"str {d['structure']['median']:.5f} FD {split['ditto']['fd']:.2f}")


if __name__ == "__main__":
    main()
