"""Distilling the teacher into a student (resumable, with EMA snapshots for consistency-vs-time
plots) and :func:`load_distilled`, the shipped student in one line (else trained and cached)."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from ..core.assets import cache_dir, reproduce_command, resolve_model_file, shipped_path, training_card
from ..core.config import Preset, get_preset, to_dict
from ..core.train import batch_of, export_ema, fit, on_device, training_device
from ..data.sources import training_data, training_record
from ..diffusion.losses import drop_tags
from ..diffusion.teacher import load_denoiser, load_teacher
from .losses import cd_loss, ctm_terms
from .students import load_student, make_student, unconditional_student


def train_student(kind: str, preset: str | Preset = "laptop", out=None, *,
                  conditional: bool = True, teacher_path=None, steps: int | None = None,
                  progress: bool = True, work_dir=None, snapshots: int = 0,
                  from_conditional: bool = False, device: str | torch.device = "auto"):
    """Distil the preset's teacher into a ``kind`` ("cm" or "ctm") student; resumable.

    ``snapshots`` > 0 also exports that many evenly spaced EMA snapshots (with their wall time)
    to ``<work_dir>/<name>_<preset>_snapshots/``, for consistency-vs-distillation-time plots.
    ``from_conditional`` (unconditional only): start from the preset's distilled conditional
    student with its tags dropped (:func:`unconditional_student`) instead of from the teacher.
    ``device``: where to train, the teacher included (``"auto"``: CUDA when present).
    Returns the exported file (EMA weights, float16, with the recipe and history in metadata).
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    tcfg = p.distill_train if steps is None else dataclasses.replace(p.distill_train, steps=steps)
    dcfg = p.distill
    dev = training_device(device)
    teacher = (load_denoiser(teacher_path, dev) if teacher_path
               else load_teacher(p.name, conditional, device=dev, progress=progress))
    ds = training_data(p)
    mels = on_device(ds.mels, dev)
    tags = on_device(ds.tags(), dev) if conditional else None
    torch.manual_seed(tcfg.seed)
    if from_conditional and conditional:
        raise ValueError("from_conditional is for the unconditional student (conditional=False)")
    student = (unconditional_student(load_distilled(kind, p.name)) if from_conditional
               else make_student(kind, teacher))
    target = copy.deepcopy(student).requires_grad_(False)
    def loss_fn(model, gen, step):
        """One distillation batch; the tags dropped as in the teacher's training (any subset, or
        none, is a condition the student learns), teacher and student given the same tags."""
        idx = torch.randint(len(mels), (tcfg.batch_size,), generator=gen)
        tg = None if tags is None else drop_tags(batch_of(tags, idx, dev), tcfg.p_uncond, gen, tcfg.p_partial)
        x0 = batch_of(mels, idx, dev)
        if kind == "cm":
            return cd_loss(model, target, teacher, x0, tg, gen, dcfg)
        terms = ctm_terms(model, target, teacher, x0, tg, gen, dcfg)
        return terms["loss"], {"dsm_share": terms["dsm_share"], "dsm_scale": terms["dsm_scale"]}

    t0 = time.perf_counter()
    every = max(tcfg.steps // snapshots, 1) if snapshots else 0

    @torch.no_grad()
    def update_target(step, ema):
        for pt, ps in zip(target.parameters(), student.parameters()):
            pt.lerp_(ps, 1.0 - dcfg.target_ema)
        if every and (step + 1) % every == 0:
            snap = work / f"{name}_{p.name}_snapshots" / f"step{step + 1:06d}.safetensors"
            export_ema(snap, ema.model, {**meta, "steps": step + 1,
                                         "train_seconds": time.perf_counter() - t0})

    name = f"{kind}{'' if conditional else '_uncond'}"
    meta = {"kind": name, "student": kind, "preset": p.name, "net": to_dict(student.cfg),
            "distill": to_dict(dcfg), "train": to_dict(tcfg), "mel": to_dict(p.mel),
            "teacher": teacher.meta.get("kind", "teacher") if hasattr(teacher, "meta") else "?",
            **training_record(p, ds)}
    if from_conditional:
        meta["init_from"] = f"conditional {kind} student, tags dropped"
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    ema, hist = fit(student, loss_fn, tcfg, work / f"{name}_{p.name}.train.safetensors",
                    meta=meta, extra={"target": target}, after_step=update_target,
                    progress=progress, device=dev)
    out = Path(out) if out else shipped_path(name, p.name)
    export_ema(out, ema.model, training_card(meta, kind, conditional, tcfg, hist))
    return out


def load_distilled(kind: str, preset: str = "laptop", conditional: bool = True, *, device="cpu",
                   retrain: bool = False, progress: bool = False) -> nn.Module:
    """The ``kind`` ("cm"/"ctm") student for ``preset``: shipped file, else trained and cached."""
    name = f"{kind}{'' if conditional else '_uncond'}"
    path = resolve_model_file(name, preset, retrain, reproduce_command(kind, preset, conditional))
    if retrain or not path.exists():
        train_student(kind, preset, path, conditional=conditional, progress=progress)
    return load_student(path, device)
