"""Distillation of the teacher into one-step students: consistency (CM) and CTM models.

Both students start from the teacher's weights and learn from the teacher's ODE solver (Heun) on a
Karras grid. Guidance is distilled in: the teacher step uses the CFG-guided denoiser at a fixed
scale ``w``, so one student evaluation replaces two teacher evaluations.

* CM: f(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, t) with the boundary scalings, so
  f(x, sigma_min) = x exactly (Song et al. 2023).
* CTM: G(x_t, t, s) = (s/t) x_t + (1 - s/t) g(x_t, t, s), with g the EDM-preconditioned teacher
  network plus a second (zero-initialised) time embedding for s (Kim et al. 2024).

Samplers: ``cm_multistep`` and ``ctm_gamma_sample``; their injected noise comes from ``noise_fn``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import nn

from .controls.intensity import intensity
from .controls.melody import chroma_agreement
from .core import checkpoints as ckpt
from .core.config import DistillConfig, NetConfig, Preset, from_dict, get_preset, to_dict
from .core.train import export_ema, fit
from .diffusion import teacher as T
from .diffusion.losses import edm_loss
from .diffusion.networks import Denoiser, UNet1d, drop_tag_input
from .diffusion.precond import append_dims, consistency_scalings, ctm_jump, edm_scalings
from .diffusion.samplers import guided
from .diffusion.schedule import karras_sigmas

# ----------------------------------------------------------------------------- models


class ConsistencyModel(nn.Module):
    """f(x, t) with boundary scalings around a :class:`UNet1d` (student of a teacher)."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg, self.net = cfg, UNet1d(cfg)
        self.sigma_data, self.sigma_min, self.sigma_max = cfg.sigma_data, cfg.sigma_min, cfg.sigma_max

    @classmethod
    def from_teacher(cls, teacher: Denoiser) -> ConsistencyModel:
        student = cls(teacher.cfg)
        student.net.load_state_dict(teacher.net.state_dict())
        return student

    def forward(self, x, t, tags=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])  # [B]
        tb = append_dims(t, x.ndim)
        _, _, c_in, c_noise = edm_scalings(tb, self.sigma_data)
        c_skip, c_out = consistency_scalings(tb, self.sigma_data, self.sigma_min)
        return c_skip * x + c_out * self.net(c_in * x, c_noise.flatten(), tags)


class CTMModel(nn.Module):
    """G(x_t, t, s) = (s/t) x_t + (1 - s/t) g(x_t, t, s); g(x, t, t) is a denoiser."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = dataclasses.replace(cfg, two_time=True)
        self.g = Denoiser(self.cfg)
        self.sigma_data, self.sigma_min, self.sigma_max = cfg.sigma_data, cfg.sigma_min, cfg.sigma_max

    @classmethod
    def from_teacher(cls, teacher: Denoiser) -> CTMModel:
        """Copy the teacher; only the new s-branch (zero-initialised) is not in it."""
        student = cls(teacher.cfg)
        missing = student.g.load_state_dict(teacher.state_dict(), strict=False).missing_keys
        if not all(k.startswith("net.emb_s") for k in missing):
            raise ValueError(f"teacher weights do not fit the CTM student: missing {missing[:4]}")
        return student

    def denoise(self, x, t, s, tags=None) -> torch.Tensor:
        return self.g(x, t, tags, sigma_s=s)

    def forward(self, x, t, s, tags=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device).expand(x.shape[0])
        g = self.g(x, t, tags, sigma_s=s)
        return ctm_jump(x, g, append_dims(t, x.ndim), append_dims(s, x.ndim))


# ----------------------------------------------------------------------------- distances


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """sqrt(|a-b|^2 + c^2) - c per example, with c = 0.00054 sqrt(dim) (Song & Dhariwal 2023)."""
    dim = a[0].numel()
    c = 0.00054 * dim**0.5 if c is None else c
    sq = (a - b).pow(2).flatten(1).sum(1)
    return (sq + c**2).sqrt() - c


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


DISTANCES = {"pseudo_huber": pseudo_huber, "l2": l2}


# ----------------------------------------------------------------------------- losses


def _grid(model, cfg: DistillConfig, device) -> torch.Tensor:
    return karras_sigmas(cfg.n_grid, model.sigma_min, model.sigma_max, append_zero=False).to(device)


@torch.no_grad()
def teacher_solve(teacher: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, tags, w: float):
    """Per-example Heun integration of the guided teacher along the rows of ``sigmas`` ``[B, k+1]``.

    A row may repeat its last sigma (fewer steps than the others): those steps leave it unchanged.
    """
    denoise = guided(teacher, tags, w)
    for j in range(sigmas.shape[1] - 1):
        s_now, s_next = sigmas[:, j], sigmas[:, j + 1]
        active = s_next < s_now
        if not active.any():
            break
        sn, sx = append_dims(s_now, x.ndim), append_dims(s_next, x.ndim)
        d = (x - denoise(x, s_now)) / sn  # slope at sigma
        x_euler = x + d * (sx - sn)
        d_next = (x_euler - denoise(x_euler, s_next)) / sx  # slope at sigma_next
        x = torch.where(append_dims(active, x.ndim), x + 0.5 * (d + d_next) * (sx - sn), x)
    return x


def cd_loss(student: ConsistencyModel, target: ConsistencyModel, teacher: Denoiser,
            x0: torch.Tensor, tags, gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """Consistency distillation (Song et al. 2023, Algorithm 2).

    1. adjacent grid points t > t';  2. x_t = x0 + t z;  3. one guided teacher Heun step t -> t';
    4. d(f_theta(x_t, t), f_target(x_t', t')) with the target under stop-gradient.
    """
    grid = _grid(student, cfg, x0.device)
    b = x0.shape[0]
    n = torch.randint(0, cfg.n_grid - 1, (b,), generator=gen).to(x0.device)  # 1.
    t, t_next = grid[n], grid[n + 1]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), tags, cfg.w)  # 3.
    with torch.no_grad():
        f_target = target(x_next, t_next, tags)
    return DISTANCES[cfg.distance](student(x_t, t, tags), f_target).mean()  # 4.


def ctm_target(student: CTMModel, target: CTMModel, x_u: torch.Tensor, u, s, tags) -> tuple:
    """The CTM target, without gradient: (inner, outer) with inner = G_sg(x_u, u, s), the
    *student's* own jump under stop-gradient, and outer = G_target(inner, s, sigma_min), the EMA
    net mapping it to (almost) clean data (Kim et al. 2024, eq. 10; the reference code's default).
    """
    floor = torch.full_like(torch.as_tensor(s, dtype=x_u.dtype), student.sigma_min)
    with torch.no_grad():
        inner = student(x_u, u, s, tags)
        return inner, target(inner, s, floor, tags)


def ctm_loss(student: CTMModel, target: CTMModel, teacher: Denoiser, x0: torch.Tensor, tags,
             gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """CTM distillation (Kim et al. 2024, eq. 10 + DSM), efficient variant with k <= k_max.

    1. grid indices t > u >= s, u = t + k steps (k in 1..k_max);  2. x_t = x0 + t z;
    3. x_u = k guided teacher Heun steps from x_t;
    4. student side  G_target(G_theta(x_t, t, s), s, sigma_min)   (gradient through the outer input);
    5. target side   G_target(G_sg(x_u, u, s), s, sigma_min)       (:func:`ctm_target`, no gradient);
    6. plus dsm_weight * denoising loss of g(x, sigma, sigma) (:func:`dsm_loss`).

    Every time the network sees is on the grid, in [sigma_min, sigma_max]: the final jump goes to
    sigma_min, as the samplers' last step does (:func:`ctm_gamma_sample`), never to 0.
    """
    grid = _grid(student, cfg, x0.device)
    b, last = x0.shape[0], cfg.n_grid - 1
    i_t = torch.randint(0, last, (b,), generator=gen)  # 1.
    k = torch.randint(1, cfg.k_max + 1, (b,), generator=gen)
    i_u = torch.minimum(i_t + k, torch.full_like(i_t, last))
    i_s = i_u + (torch.rand(b, generator=gen) * (last - i_u + 1)).long().clamp(max=last - i_u)
    t, u, s = grid[i_t], grid[i_u], grid[i_s]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    steps = torch.stack([grid[torch.minimum(i_t + j, i_u)] for j in range(cfg.k_max + 1)], 1)
    x_u = teacher_solve(teacher, x_t, steps, tags, cfg.w)  # 3.
    floor = torch.full_like(s, student.sigma_min)
    est = target(student(x_t, t, s, tags), s, floor, tags)  # 4.
    _, tgt = ctm_target(student, target, x_u, u, s, tags)  # 5.
    loss = DISTANCES[cfg.distance](est, tgt).mean()
    if cfg.dsm_weight > 0:
        loss = loss + cfg.dsm_weight * dsm_loss(student, x0, tags, gen, teacher, cfg)  # 6.
    return loss


def dsm_loss(student: CTMModel, x0, tags, gen, teacher: Denoiser | None = None,
             cfg: DistillConfig | None = None) -> torch.Tensor:
    """Denoising loss of g(x, sigma, sigma), which keeps g a good denoiser.

    ``cfg.dsm_target`` "teacher" (default): regress on the *guided* teacher's denoiser
    D_w(x, sigma) (the same w the CTM term distils), so both terms ask the network for the same
    function; "data": the plain EDM loss towards x0, which is the w = 1 denoiser and disagrees with
    a w != 1 CTM term. EDM's sigma distribution and weighting in both cases.
    """
    g = lambda x, sigma, tg: student.denoise(x, sigma, sigma, tg)  # noqa: E731
    to_teacher = cfg is not None and cfg.dsm_target == "teacher" and teacher is not None
    return edm_loss(g, x0, tags, gen, sigma_data=student.sigma_data,
                    target=guided(teacher, tags, cfg.w) if to_teacher else None)


# ----------------------------------------------------------------------------- samplers


def cm_multistep(model: ConsistencyModel, x_T: torch.Tensor, taus, tags=None, *,
                 noise_fn=None, callback=None) -> torch.Tensor:
    """Consistency multistep sampling (Song et al. 2023, Algorithm 1).

    x = f(x_T, T); then for each tau in ``taus``: x = f(x + sqrt(tau^2 - eps^2) z, tau).
    With ``taus`` empty this is the one-step model. ``noise_fn(x)`` supplies each z.
    """
    eps = model.sigma_min
    noise_fn = noise_fn or torch.randn_like
    x = model(x_T, model.sigma_max, tags)
    for i, tau in enumerate(taus):
        if callback is not None:
            callback(i, model.sigma_max if i == 0 else taus[i - 1], x)
        tau = float(tau)
        x = model(x + (tau**2 - eps**2) ** 0.5 * noise_fn(x), tau, tags)
    return x


def ctm_gamma_sample(model: CTMModel, x_T: torch.Tensor, ts, tags=None, *, gamma: float = 0.0,
                     noise_fn=None, callback=None) -> torch.Tensor:
    """CTM gamma-sampling (Kim et al. 2024, Algorithm 1) over times ``ts`` = [T, t_1, ..., 0].

    x <- G(x, t_i, s_i) + sqrt(t_{i+1}^2 - s_i^2) z,  s_i = sqrt(1 - gamma^2)(t_{i+1} - eps) + eps
    (s_i = eps = sigma_min at the last step: the output is x at sigma_min, the end of the grid the
    student was trained on; the network never sees s = 0). gamma = 0 is deterministic; gamma = 1
    is CM-like.
    """
    eps = model.sigma_min
    noise_fn = noise_fn or torch.randn_like
    ts = [float(t) for t in ts]
    x = x_T
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        if t_next <= eps:
            s = eps
        else:
            s = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps
        if callback is not None:
            callback(i, t, x)
        x = model(x, t, s, tags)
        if t_next > eps and t_next**2 > s**2:
            x = x + (t_next**2 - s**2) ** 0.5 * noise_fn(x)
    return x


# ----------------------------------------------------------------------------- training


def make_student(kind: str, teacher: Denoiser) -> nn.Module:
    if kind == "cm":
        return ConsistencyModel.from_teacher(teacher)
    if kind == "ctm":
        return CTMModel.from_teacher(teacher)
    raise ValueError(f"unknown student kind {kind!r}; choose 'cm' or 'ctm'")


def unconditional_student(conditional: nn.Module) -> nn.Module:
    """A tag-free copy of a distilled conditional student, equal to it with every tag dropped
    (:func:`ditto2_nb.diffusion.networks.drop_tag_input`): a warm start for distilling the unconditional
    teacher, which shares the conditional teacher's weights it was fine-tuned from."""
    cfg = dataclasses.replace(conditional.cfg, tag_vocab=())
    if isinstance(conditional, ConsistencyModel):
        student = ConsistencyModel(cfg)
        student.net = drop_tag_input(conditional.net)
    else:
        student = CTMModel(cfg)
        student.g.net = drop_tag_input(conditional.g.net)
    return student


def student_loss(kind: str):
    return {"cm": cd_loss, "ctm": ctm_loss}[kind]


def train_student(kind: str, preset: str | Preset = "laptop", out=None, *,
                  conditional: bool = True, teacher_path=None, steps: int | None = None,
                  progress: bool = True, work_dir=None, snapshots: int = 0,
                  from_conditional: bool = False):
    """Distil the preset's teacher into a ``kind`` ("cm" or "ctm") student; resumable.

    ``snapshots`` > 0 also exports that many evenly spaced EMA snapshots (with their wall time)
    to ``<work_dir>/<name>_<preset>_snapshots/``, for consistency-vs-distillation-time plots.
    ``from_conditional`` (unconditional only): start from the preset's distilled conditional
    student with its tags dropped (:func:`unconditional_student`) instead of from the teacher.
    Returns the exported file (EMA weights, float16, with the recipe and history in metadata).
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    tcfg = p.distill_train if steps is None else dataclasses.replace(p.distill_train, steps=steps)
    dcfg = p.distill
    teacher = (T.load_denoiser(teacher_path) if teacher_path
               else T.load_teacher(p.name, conditional, progress=progress))
    ds = T.training_data(p)
    mels = ds.mels
    tags = T.tags_tensor(ds.labels) if conditional else None
    torch.manual_seed(tcfg.seed)
    if from_conditional and conditional:
        raise ValueError("from_conditional is for the unconditional student (conditional=False)")
    student = (unconditional_student(load_distilled(kind, p.name)) if from_conditional
               else make_student(kind, teacher))
    target = copy.deepcopy(student).requires_grad_(False)
    fn = student_loss(kind)

    def loss_fn(model, gen, step):
        idx = torch.randint(len(mels), (tcfg.batch_size,), generator=gen)
        return fn(model, target, teacher, mels[idx], None if tags is None else tags[idx], gen, dcfg)

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
            "teacher": teacher.meta.get("kind", "teacher") if hasattr(teacher, "meta") else "?"}
    if from_conditional:
        meta["init_from"] = f"conditional {kind} student, tags dropped"
    work = Path(work_dir) if work_dir else T.cache_dir() / "runs"
    ema, hist = fit(student, loss_fn, tcfg, work / f"{name}_{p.name}.train.safetensors",
                    meta=meta, extra={"target": target}, after_step=update_target,
                    progress=progress)
    out = Path(out) if out else T.shipped_path(name, p.name)
    export_ema(out, ema.model, T.training_card(meta, kind, conditional, tcfg, hist))
    return out


def decode_file(path) -> Path:
    """Where a student file's measured decode settings live: ``<name>.decode.json`` beside it."""
    return Path(path).with_suffix(".decode.json")


def load_student(path, device="cpu") -> nn.Module:
    """Rebuild a CM or CTM student from its exported file alone (plus its measured decode
    settings, :func:`decode_file`, when present)."""
    tensors, meta = ckpt.read(path)
    kind = meta.get("student")
    if kind not in ("cm", "ctm") or "net" not in meta:
        raise ckpt.CheckpointError(f"{path} is not a ditto2_nb CM/CTM student file")
    cfg = from_dict(NetConfig, meta["net"])
    model = ConsistencyModel(cfg) if kind == "cm" else CTMModel(cfg)
    ckpt.load_state(model, tensors, path)
    model.meta = meta
    side = decode_file(path)
    if side.is_file():
        settings = json.loads(side.read_text())
        if settings.get("weights_sha256") == ckpt.sha256(path):  # measured on these very weights
            model.decode = settings["decode"]
    return model.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- evaluation helpers


def decode_defaults(model) -> dict:
    """The model's measured decode settings (``{"sigma_mid": ...}``; see
    ``benchmarks/decode_sweep.py``), empty when none were measured."""
    return dict(getattr(model, "decode", {}) or {})


def student_times(model, steps: int, sigma_mid: float | None = None) -> list[float]:
    """Decode times [T, ..., 0] for ``steps`` student steps: Karras-spaced, or with one
    intermediate sigma when ``steps == 2`` (``sigma_mid``, else the model's measured default from
    :func:`decode_defaults`, else the Karras midpoint)."""
    if steps == 2 and sigma_mid is None:
        sigma_mid = decode_defaults(model).get("sigma_mid")
    if steps == 2 and sigma_mid is not None:
        return [model.sigma_max, float(sigma_mid), 0.0]
    grid = karras_sigmas(steps + 1, model.sigma_min, model.sigma_max, append_zero=False).tolist()
    return grid[:-1] + [0.0]  # M + 1 times: T, M - 1 intermediate sigmas, then clean


def student_decode(model, x_T: torch.Tensor, steps: int, tags=None, *, gamma: float = 0.0,
                   sigma_mid: float | None = None, seed: int = 0) -> torch.Tensor:
    """Decode x_T with ``steps`` student evaluations (CM multistep or CTM gamma-sampling).

    Injected noise is drawn from a generator seeded by ``seed``, so the decode is a deterministic
    function of x_T (what DITTO-2's final decode needs).
    """
    gen = torch.Generator().manual_seed(seed)
    noise_fn = lambda x: torch.randn(x.shape, generator=gen).to(x.device)  # noqa: E731
    ts = student_times(model, steps, sigma_mid)
    if isinstance(model, ConsistencyModel):
        return cm_multistep(model, x_T, ts[1:-1], tags, noise_fn=noise_fn)
    return ctm_gamma_sample(model, x_T, ts, tags, gamma=gamma, noise_fn=noise_fn)


def trajectory_gap(model, x_T: torch.Tensor, mel_cfg, steps: int, tags=None, **decode_kw) -> dict:
    """How far the ``steps``-step decode lands from the 1-step jump, for the same x_T.

    Returns mel MSE, intensity MSE (dB^2) and top-1 chroma agreement between the two outputs.
    """
    with torch.no_grad():
        one = student_decode(model, x_T, 1, tags)
        many = student_decode(model, x_T, steps, tags, **decode_kw)
    return {"mel_mse": float((one - many).pow(2).mean()),
            "intensity_mse_db2": float((intensity(one, mel_cfg) - intensity(many, mel_cfg))
                                       .pow(2).mean()),
            "chroma_agreement": chroma_agreement(one, many, mel_cfg)}


def load_distilled(kind: str, preset: str = "laptop", conditional: bool = True, *, device="cpu",
                   retrain: bool = False, progress: bool = False) -> nn.Module:
    """The ``kind`` ("cm"/"ctm") student for ``preset``: shipped file, else trained and cached."""
    name = f"{kind}{'' if conditional else '_uncond'}"
    path = T.resolve_model_file(name, preset, retrain, T.reproduce_command(kind, preset, conditional))
    if retrain or not path.exists():
        train_student(kind, preset, path, conditional=conditional, progress=progress)
    return load_student(path, device)
