"""Distillation's two review fixes measured on the shipped laptop models (issue 25, items 3 and 5).

    python benchmarks/tag_subsets.py [--preset laptop] [--steps 200] [--n 48]

1. **DSM share.** The DSM term's part of the gradient norm at the CTM student's last layer,
   |lambda grad dsm| / (|grad ctm| + |lambda grad dsm|), on several training batches of the shipped
   student: with the old fixed weight (lambda = 1) and with the adaptive balance (dsm_weight = 1);
   and the training step's time under each.
2. **Consistency by tag subset.** The CTM 1-step jump against the guided teacher's 18-step Heun
   solution from the same x_T (mel MSE per example; median and quartiles), with full tags, the
   instrument alone (what the control panel sets), and no tags. For the shipped student, and for two
   fine-tunings of it of ``--steps`` steps each, identical but for the tags they see: ``full`` (every
   tag, as the shipped student was distilled) and ``dropout`` (``p_uncond`` / ``p_partial`` dropout,
   the new default). Same x_T, tags, teacher and budget in every row.

Writes benchmarks/results/tag_subsets_<preset>.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset, to_dict
from ditto2_nb.core.train import fit
from ditto2_nb.data import TAG_FIELDS, heldout_data, tags_tensor, training_data
from ditto2_nb.diffusion import guided, karras_sigmas, load_teacher, sample_heun, seeded_noise
from ditto2_nb.diffusion.losses import drop_tags
from ditto2_nb.distill import ctm_terms, load_distilled

OUT = Path(__file__).parent / "results"
SUBSETS = {"full": list(TAG_FIELDS), "instrument only": ["instrument"], "no tags": []}


def keep_fields(tags: torch.Tensor, fields: list[str]) -> torch.Tensor:
    keep = torch.tensor([f in fields for f in TAG_FIELDS])
    return tags * keep.long()


def summary(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "q25": float(np.percentile(v, 25)),
            "q75": float(np.percentile(v, 75)), "n": len(v)}


@torch.no_grad()
def consistency(student, teacher, x_T, tags, w: float) -> dict:
    """Mel MSE per example between the 1-step jump and the teacher's 18-step Heun solution."""
    out = {}
    for name, fields in SUBSETS.items():
        tg = keep_fields(tags, fields)
        grid = karras_sigmas(18, teacher.sigma_min, teacher.sigma_max)
        ode = sample_heun(guided(teacher, tg, w), x_T, grid)
        jump = student(x_T, student.sigma_max, student.sigma_min, tg)
        out[name] = summary((jump - ode).pow(2).flatten(1).mean(1).tolist())
    return out


def dsm_shares(student, teacher, p, batches: int = 4) -> dict:
    """The DSM share and the step time, fixed weight 1 vs adaptive, on the same training batches."""
    mels, tags = training_data(p).mels, tags_tensor(training_data(p).labels)
    target = copy.deepcopy(student).requires_grad_(False)
    student = copy.deepcopy(student).requires_grad_(True).train()
    out = {}
    for balance in ("fixed", "adaptive"):
        dcfg = dataclasses.replace(p.distill, dsm_balance=balance, dsm_weight=1.0)
        shares, scales, seconds = [], [], []
        for b in range(batches):
            gen = torch.Generator().manual_seed(100 + b)
            idx = torch.randint(len(mels), (p.distill_train.batch_size,), generator=gen)
            t0 = time.perf_counter()
            terms = ctm_terms(student, target, teacher, mels[idx], tags[idx], gen, dcfg)
            terms["loss"].backward()
            seconds.append(time.perf_counter() - t0)
            student.zero_grad()
            shares.append(terms["dsm_share"])
            scales.append(terms["dsm_scale"])
        out[balance] = {"dsm_share": shares, "dsm_scale": scales, "step_seconds": summary(seconds)}
    return out


def finetune(student, teacher, p, steps: int, dropout: bool, work: Path):
    """``steps`` more distillation steps from ``student`` (the preset's recipe, adaptive DSM); tags
    dropped as the new default does, or all kept as the shipped student was trained."""
    student = copy.deepcopy(student).requires_grad_(True).train()
    target = copy.deepcopy(student).requires_grad_(False)
    ds = training_data(p)
    mels, tags = ds.mels, tags_tensor(ds.labels)
    tcfg = dataclasses.replace(p.distill_train, steps=steps, warmup=10, ckpt_every=50)
    dcfg = p.distill

    def loss_fn(model, gen, step):
        idx = torch.randint(len(mels), (tcfg.batch_size,), generator=gen)
        tg = drop_tags(tags[idx], tcfg.p_uncond, gen, tcfg.p_partial) if dropout else tags[idx]
        terms = ctm_terms(model, target, teacher, mels[idx], tg, gen, dcfg)
        return terms["loss"], {"dsm_share": terms["dsm_share"]}

    def update_target(step, ema):
        with torch.no_grad():
            for pt, ps in zip(target.parameters(), student.parameters()):
                pt.lerp_(ps, 1.0 - dcfg.target_ema)

    name = "dropout" if dropout else "full"
    meta = {"finetune": name, "train": to_dict(tcfg), "distill": to_dict(dcfg)}
    ema, hist = fit(student, loss_fn, tcfg, work / f"ctm_finetune_{name}.train.safetensors", meta=meta,
                    extra={"target": target}, after_step=update_target, progress=False)
    return ema.model.eval(), hist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--work-dir", default="runs/tag_subsets")
    a = ap.parse_args()
    p = get_preset(a.preset)
    teacher = load_teacher(a.preset)
    student = load_distilled("ctm", a.preset)
    held = heldout_data(p)
    n = min(a.n, len(held))
    tags = tags_tensor(held.labels[:n])
    x_T = seeded_noise(range(10_000, 10_000 + n), (p.mel.n_mels, p.mel.frames)) * student.sigma_max
    result = {"machine": machine(), "preset": a.preset, "n": n, "w": p.distill.w,
              "reference": "guided teacher, 18 Heun steps", "finetune_steps": a.steps,
              "dsm": dsm_shares(student, teacher, p)}
    print(json.dumps(result["dsm"], indent=1))
    rows = {"shipped": consistency(student, teacher, x_T, tags, p.distill.w)}
    print("shipped", rows["shipped"])
    work = Path(a.work_dir)
    for dropout in (False, True):
        t0 = time.perf_counter()
        tuned, hist = finetune(student, teacher, p, a.steps, dropout, work)
        name = f"+{a.steps} steps, " + ("tag dropout" if dropout else "full tags")
        rows[name] = consistency(tuned, teacher, x_T, tags, p.distill.w)
        rows[name]["train_seconds"] = round(time.perf_counter() - t0, 1)
        rows[name]["dsm_share_median"] = float(np.median(hist.stats["dsm_share"]))
        print(name, rows[name])
    result["consistency_mse"] = rows
    OUT.mkdir(exist_ok=True)
    path = OUT / f"tag_subsets_{a.preset}.json"
    path.write_text(json.dumps(result, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
