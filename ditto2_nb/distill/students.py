"""The one-step students and how they are stored.

* CM: f(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, t) with the boundary scalings, so
  f(x, sigma_min) = x exactly (Song et al. 2023).
* CTM: G(x_t, t, s) = (s/t) x_t + (1 - s/t) g(x_t, t, s), with g the EDM-preconditioned teacher
  network plus a second (zero-initialised) time embedding for s (Kim et al. 2024).

Both start from the teacher's weights (:func:`make_student`). An exported student file carries
its config in the metadata (:func:`load_student`) and may have a sidecar ``<name>.decode.json``
with decode settings measured on exactly those weights (:func:`decode_file`, :func:`decode_defaults`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ..core import checkpoints as ckpt
from ..core.config import NetConfig, from_dict
from ..diffusion.networks import Denoiser, UNet1d, drop_tag_input
from ..diffusion.precond import append_dims, consistency_scalings, ctm_jump, edm_scalings


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

    def last_layer(self) -> torch.Tensor:
        """The output convolution's weight, where distillation balances its two terms."""
        return self.g.net.out[-1].weight

    def forward(self, x, t, s, tags=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device).expand(x.shape[0])
        g = self.g(x, t, tags, sigma_s=s)
        return ctm_jump(x, g, append_dims(t, x.ndim), append_dims(s, x.ndim))


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
    try:
        cfg = from_dict(NetConfig, meta["net"])
    except (TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path}: its network config is invalid ({e})") from e
    model = ConsistencyModel(cfg) if kind == "cm" else CTMModel(cfg)
    ckpt.load_state(model, tensors, path)
    model.meta = meta
    side = decode_file(path)
    if side.is_file():
        settings = json.loads(side.read_text())
        if settings.get("weights_sha256") == ckpt.sha256(path):  # measured on these very weights
            model.decode = settings["decode"]
    return model.to(device).eval().requires_grad_(False)


def decode_defaults(model) -> dict:
    """The model's measured decode settings (``{"sigma_mid": ...}``; see
    ``benchmarks/decode_sweep.py``), empty when none were measured."""
    return dict(getattr(model, "decode", {}) or {})
