"""The teacher: an EDM diffusion model on mels, trained on the procedural music.

One line loads the shipped model::

    teacher = load_teacher()            # laptop preset, conditional, from ditto2_nb/assets/

and one command reproduces it (about 35 minutes on 2 CPU cores)::

    python -m ditto2_nb.cli train-teacher --preset laptop --steps 6000

Conditioning: a few tags per clip (instrument, tempo, mode, drums, dynamics), each an index with 0
meaning "no tag", dropped together with probability ``p_uncond`` so that one network is both
conditional and unconditional (classifier-free guidance), and field by field with probability
``p_partial`` so that any subset of tags (an instrument alone, say) is a trained condition
(:func:`~ditto2_nb.diffusion.losses.drop_tags`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..core import checkpoints as ckpt
from ..core.assets import cache_dir, reproduce_command, resolve_model_file, shipped_path, training_card
from ..core.config import NetConfig, Preset, from_dict, get_preset, to_dict
from ..core.train import batch_of, export_ema, fit, on_device, training_device
from ..data.sources import training_data, training_record
from ..data.tags import tag_vocab
from .losses import edm_loss
from .networks import Denoiser, count_parameters, drop_tag_input


def teacher_net_config(preset: Preset, conditional: bool = True) -> NetConfig:
    return dataclasses.replace(preset.net, n_mels=preset.mel.n_mels,
                               tag_vocab=tag_vocab() if conditional else ())


def load_denoiser(path: str | Path, device: str | torch.device = "cpu") -> Denoiser:
    """Rebuild a :class:`Denoiser` from a shipped/exported file alone (EMA weights, float32)."""
    tensors, meta = ckpt.read(path)
    if "net" not in meta:
        raise ckpt.CheckpointError(f"{path} has no network config in its metadata; it is not a "
                                   "ditto2_nb model file")
    if "student" in meta or not str(meta.get("kind", "teacher")).startswith("teacher"):
        raise ckpt.CheckpointError(f"{path} is a {meta.get('student', meta.get('kind'))!s} file "
                                   f"(kind {meta.get('kind')!r}), not a teacher: load students with "
                                   "load_distilled / load_student")
    try:
        net_cfg = from_dict(NetConfig, meta["net"])
    except (TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path}: its network config is invalid ({e})") from e
    model = Denoiser(net_cfg)
    ckpt.load_state(model, tensors, path)
    model.meta = meta
    return model.to(device).eval().requires_grad_(False)


def load_teacher(preset: str = "laptop", conditional: bool = True, *, device="cpu",
                 retrain: bool = False, progress: bool = False) -> Denoiser:
    """The teacher for ``preset``: the shipped file when there is one, else trained and cached."""
    kind = "teacher" if conditional else "teacher_uncond"
    path = resolve_model_file(kind, preset, retrain, reproduce_command("teacher", preset, conditional))
    if retrain or not path.exists():
        train_teacher(preset, path, conditional=conditional, progress=progress)
    return load_denoiser(path, device)



def unconditional_from(conditional: Denoiser) -> Denoiser:
    """An unconditional teacher (no tag input) equal to ``conditional`` with every tag dropped
    (:func:`ditto2_nb.diffusion.networks.drop_tag_input`): a warm start for fine-tuning on all the data,
    which the null-tag mode saw only ``p_uncond`` of."""
    model = Denoiser(dataclasses.replace(conditional.cfg, tag_vocab=()))
    model.net = drop_tag_input(conditional.net)
    return model



def train_teacher(preset: str | Preset = "laptop", out: str | Path | None = None, *,
                  conditional: bool = True, steps: int | None = None, progress: bool = True,
                  work_dir: str | Path | None = None, from_conditional: bool = False,
                  device: str | torch.device = "auto") -> Path:
    """Train a teacher on the preset's procedural data; resumable; returns the exported file.

    The training checkpoint (weights, EMA, optimiser, loss history) lives in ``work_dir`` and is
    resumed from when it exists, so an interrupted run continues where it stopped.
    ``from_conditional`` (unconditional only): start from the preset's conditional teacher with
    its tags dropped (:func:`unconditional_from`) instead of from random weights. ``device``:
    where to train (``"auto"``: CUDA when present; :func:`~ditto2_nb.core.train.training_device`);
    the exported file is the same CPU float16 file either way.
    """
    if from_conditional and conditional:
        raise ValueError("from_conditional is for the unconditional teacher (conditional=False)")
    p = get_preset(preset) if isinstance(preset, str) else preset
    kind = "teacher" if conditional else "teacher_uncond"
    out = Path(out) if out else shipped_path(kind, p.name)
    tcfg = p.train if steps is None else dataclasses.replace(p.train, steps=steps)
    net_cfg = teacher_net_config(p, conditional)
    dev = training_device(device)
    ds = training_data(p)
    mels = on_device(ds.mels, dev)
    tags = on_device(ds.tags(), dev) if conditional else None
    torch.manual_seed(tcfg.seed)
    model = Denoiser(net_cfg)
    if from_conditional:
        model = unconditional_from(load_teacher(p.name, True, progress=progress))

    def loss_fn(model, gen, step):
        idx = torch.randint(len(mels), (tcfg.batch_size,), generator=gen)
        return edm_loss(model, batch_of(mels, idx, dev), None if tags is None else batch_of(tags, idx, dev),
                        gen, p_uncond=tcfg.p_uncond, p_partial=tcfg.p_partial)

    meta = {"kind": kind, "preset": p.name, "net": to_dict(net_cfg), "train": to_dict(tcfg),
            "mel": to_dict(p.mel), "data": to_dict(p.data), **training_record(p, ds)}
    if from_conditional:
        meta["init_from"] = "conditional teacher, tags dropped"
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    ema, hist = fit(model, loss_fn, tcfg, work / f"{kind}_{p.name}.train.safetensors",
                    meta=meta, progress=progress, device=dev)
    card = training_card(meta, "teacher", conditional, tcfg, hist,
                         parameters=count_parameters(model),
                         data_description=meta["training_data"])
    export_ema(out, ema.model, card)
    return out
