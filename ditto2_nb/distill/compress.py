"""A narrower CTM student, distilled from a trained one on the jumps DITTO-2 makes.

DITTO-2 evaluates its student at three (t, s) pairs only (gamma = 0, M = 2):

* the surrogate, ``G(x_T, T, sigma_min)``;
* the decode's first step, ``x_mid = G(x_T, T, sigma_mid)``, and its second, ``G(x_mid, sigma_mid,
  sigma_min)``;

with ``x_T = T z`` for a unit-scale noise z. A student with fewer channels and blocks (cheaper
passes: what the optimisation loop spends its time on) is trained to reproduce the source
student's outputs at exactly these inputs, on fresh noise and the tags of training clips every
step (tags dropped with the preset's CFG probability, as in training). This distils layers, not
steps (cf. Presto!, Novack et al. 2025); the step count stays the source's.

Matching outputs alone teaches a narrow network the source's values but not its slopes: with
too little capacity it regresses towards the mean output, so its response to a change of z is
smaller and points elsewhere (measured: input-gradients of a control loss 0.1-0.4x the source's,
cosine 0.0-0.5) -- and DITTO-2 follows exactly that gradient. ``jacobian_weight`` > 0 adds a
directional-derivative match: the jumps are also taken from ``z + h v`` (v a fresh Gaussian
direction, h = ``jacobian_step``), and the student's change of output, divided by h, must equal
the source's. Over random v this is the squared Frobenius distance of the two Jacobians in
expectation, the same as matching vector-Jacobian products, without second derivatives.

:func:`compress_student` trains it with the project's resumable fit loop and exports it as an
ordinary CTM student file with the source's decode settings (the same ``sigma_mid``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..core import checkpoints as ckpt
from ..core import validate as check
from ..core.assets import cache_dir, training_card
from ..core.config import get_preset, to_dict
from ..core.train import batch_of, export_ema, fit, on_device, training_device
from ..data.sources import training_data
from ..diffusion.losses import drop_tags
from .students import CTMModel, decode_defaults, decode_file, load_student


def ditto2_jumps(source: CTMModel, z: torch.Tensor, tags, sigma_mid: float):
    """The inputs DITTO-2 feeds a student for unit noise ``z [B, ...]`` and the source's outputs
    there, stacked over the three jumps: (x, t, s, tags, target), each with 3B rows."""
    T, eps, b = source.sigma_max, source.sigma_min, len(z)
    x_T = T * z
    full = lambda v: torch.full((b,), float(v), dtype=z.dtype, device=z.device)  # noqa: E731
    t = torch.cat([full(T), full(T), full(sigma_mid)])
    s = torch.cat([full(eps), full(sigma_mid), full(eps)])
    tags3 = None if tags is None else tags.repeat(3, 1)
    with torch.no_grad():
        x_mid = source(x_T, T, sigma_mid, tags)
        ends = source(torch.cat([x_T, x_mid]), torch.cat([full(T), full(sigma_mid)]),  # both to sigma_min
                      full(eps).repeat(2), None if tags is None else tags.repeat(2, 1))
        target = torch.cat([ends[:b], x_mid, ends[b:]])
    return torch.cat([x_T, x_T, x_mid]), t, s, tags3, target


def drop_blocks(source: CTMModel, blocks: int) -> CTMModel:
    """A copy of ``source`` with only the first ``blocks`` residual blocks of each level, down and up.

    The names of the kept weights are the source's (``down.i.j``, ``up.i.j`` with j < ``blocks``),
    and so are their shapes: the first block of a level changes the channels, the others keep them,
    and each up block still receives a skip of its level's width (up block j now that of down
    block ``blocks - 1 - j`` instead of ``source.blocks - 1 - j``). What changes is the function: the
    dropped blocks' residual contributions are gone, which the compression's training makes up for.
    """
    blocks = check.integer("blocks", blocks, 1, source.cfg.blocks)
    out = CTMModel(dataclasses.replace(source.cfg, blocks=blocks))
    state = source.state_dict()
    out.load_state_dict({k: state[k].float() for k in out.state_dict()})
    return out


def jump_loss(student: CTMModel, source: CTMModel, z, tags, sigma_mid: float, dz=None,
              jacobian_weight: float = 0.0) -> torch.Tensor:
    """Mean squared difference between the student's and the source's outputs on the jumps; with
    a step ``dz`` (same shape as z; its size h = RMS of dz), the jumps from ``z + dz`` join the
    mean and ``jacobian_weight`` times the squared mismatch of the finite-difference slopes
    (change of output / h) is added."""
    if dz is not None:  # both noises in one batch: rows [jump][z or z + dz][example]
        z, tags = torch.cat([z, z + dz]), None if tags is None else tags.repeat(2, 1)
    x, t, s, tags3, target = ditto2_jumps(source, z, tags, sigma_mid)
    error = student(x, t, s, tags3) - target
    if dz is None:
        return error.pow(2).mean()
    error = error.unflatten(0, (3, 2, len(dz)))
    # (student - source) at z + dz minus at z = the student's change of output minus the source's
    slope_gap = (error[:, 1] - error[:, 0]).pow(2).mean() / dz.pow(2).mean()
    return error.pow(2).mean() + jacobian_weight * slope_gap


def compress_student(source_path, channels: tuple, blocks: int, out=None, *, preset: str = "laptop",
                     steps: int = 3000, batch_size: int = 16, lr: float = 1e-3,
                     jacobian_weight: float = 0.0, jacobian_step: float = 0.1, init=None,
                     from_source: bool = False, work_dir=None, progress: bool = True,
                     device: str | torch.device = "auto") -> Path:
    """Distil the CTM student in ``source_path`` into one with ``channels`` and ``blocks``; resumable.

    ``jacobian_weight`` > 0 adds the slope match (module docstring) with steps of RMS
    ``jacobian_step`` in z; ``init``: a student file of the same architecture to start from (e.g.
    an earlier compression) instead of random weights; ``from_source``: start from the source's own
    weights with each level's first ``blocks`` blocks kept (:func:`drop_blocks`: the same channels,
    fewer layers); ``device``: where to train, the source included (``"auto"``: CUDA when
    present). Returns the exported file (EMA weights,
    float16; the recipe in its metadata) with a decode sidecar carrying the source's ``sigma_mid``.
    """
    dev = training_device(device)
    source = load_student(source_path)
    if not isinstance(source, CTMModel):
        raise ValueError(f"source_path {source_path} is not a CTM student (compress needs a CTM source)")
    channels = tuple(check.integer("channels", c, 1) for c in channels)
    blocks = check.integer("blocks", blocks, 0)
    sigma_mid = decode_defaults(source).get("sigma_mid")
    if sigma_mid is None:
        raise ValueError(f"{source_path} has no measured decode settings ({decode_file(source_path)}); "
                         "run benchmarks/decode_sweep.py first")
    p = get_preset(preset)
    # the preset's distillation schedule (warm-up, EMA, checkpoints), at a from-scratch learning rate
    tcfg = dataclasses.replace(p.distill_train, steps=check.integer("steps", steps, 1),
                               batch_size=check.integer("batch_size", batch_size, 1),
                               lr=check.real("lr", lr, 0.0, lo_open=True))
    jacobian_weight = check.real("jacobian_weight", jacobian_weight, 0.0)
    jacobian_step = check.real("jacobian_step", jacobian_step, 0.0, lo_open=True)
    cfg = dataclasses.replace(source.cfg, channels=channels, blocks=blocks)
    tags_all = on_device(training_data(p).tags(), dev) if source.cfg.conditional else None
    torch.manual_seed(tcfg.seed)
    student = CTMModel(cfg)
    if from_source and init is not None:
        raise ValueError("give init or from_source, not both")
    if from_source:
        student = drop_blocks(source, blocks)
        if student.cfg != cfg:
            raise ValueError(f"from_source keeps the source's channels {source.cfg.channels}; got channels "
                             f"{channels}")
    if init is not None:
        start = load_student(init)
        if not isinstance(start, CTMModel) or start.cfg != cfg:
            raise ValueError(f"init {init} is not a CTM student with channels {channels} and blocks "
                             f"{blocks} on the source's mel settings")
        student.load_state_dict({k: v.float() for k, v in start.state_dict().items()})
    shape = (cfg.n_mels, p.mel.frames)
    source.to(dev)  # after drop_blocks copied its weights: the source's state is read on the CPU

    def loss_fn(model, gen, step):
        z = torch.randn((tcfg.batch_size, *shape), generator=gen)
        tags = None
        if tags_all is not None:
            idx = torch.randint(len(tags_all), (tcfg.batch_size,), generator=gen)
            tags = drop_tags(batch_of(tags_all, idx, dev), tcfg.p_uncond, gen, tcfg.p_partial)
        dz = jacobian_step * torch.randn(z.shape, generator=gen) if jacobian_weight > 0 else None
        z, dz = z.to(dev), None if dz is None else dz.to(dev)
        return jump_loss(model, source, z, tags, sigma_mid, dz, jacobian_weight)

    name = ("ctm_" + "x".join(map(str, channels)) + f"_b{blocks}" + ("_src" if from_source else "")
            + (f"_j{jacobian_weight:g}" if jacobian_weight > 0 else ""))
    start_from = "random"
    if init is not None:
        start_from = Path(init).name
    elif from_source:
        start_from = f"{Path(source_path).name} with {blocks} of its {source.cfg.blocks} blocks per level"
    recipe = "DITTO-2's jumps" + (f" and their slopes (weight {jacobian_weight:g}, step {jacobian_step:g})"
                                  if jacobian_weight > 0 else "")
    meta = {"kind": name, "student": "ctm", "preset": p.name, "net": to_dict(cfg),
            "train": to_dict(tcfg), "mel": to_dict(p.mel),
            "init_from": f"{start_from}; distilled from {Path(source_path).name} on {recipe}",
            "source_sha256": ckpt.sha256(source_path), "sigma_mid": sigma_mid}
    if jacobian_weight > 0:  # only then: an outputs-only run's checkpoint keeps resuming
        meta |= {"jacobian_weight": jacobian_weight, "jacobian_step": jacobian_step}
    if init is not None:
        meta["init_sha256"] = ckpt.sha256(init)
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    ema, hist = fit(student, loss_fn, tcfg, work / f"{name}_{p.name}.train.safetensors", meta=meta,
                    progress=progress, device=dev)
    out = Path(out) if out else cache_dir() / "candidates" / f"{name}_{p.name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    card = training_card(meta, "ctm", source.cfg.conditional, tcfg, hist)
    card["reproduce"] = (f"python -m ditto2_nb.cli compress --source {source_path} --channels "
                         f"{','.join(map(str, channels))} --blocks {blocks} --preset {p.name} "
                         f"--steps {steps}" + (f" --lr {lr:g}" if lr != 1e-3 else "")
                         + (f" --jacobian-weight {jacobian_weight:g} --jacobian-step {jacobian_step:g}"
                            if jacobian_weight > 0 else "")
                         + (f" --init {init}" if init is not None else "")
                         + (" --from-source" if from_source else ""))
    export_ema(out, ema.model, card)
    decode_file(out).write_text(json.dumps({"weights_sha256": ckpt.sha256(out),
                                            "decode": {"sigma_mid": sigma_mid},
                                            "chosen_by": "copied from the source student"}, indent=1) + "\n")
    return out
