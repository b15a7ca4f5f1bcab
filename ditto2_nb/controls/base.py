"""The control interface: a differentiable feature of a mel, a target, a per-example loss, and the
same property measured on decoded audio (:class:`Control`), plus the target checks every control
shares.

See docs/method.md, section 6 (the controls table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..core.config import MelConfig


def _per_example(x: torch.Tensor) -> list[float]:
    return [float(v) for v in x.reshape(len(x), -1).mean(-1)]


def _batch(target: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Broadcast a target batch of 1 to ``batch``; any other mismatch is an error."""
    if len(target) not in (1, batch):
        raise ValueError(f"{what} has a batch of {len(target)} targets but the mel/audio batch is {batch}; "
                         "give one target or one per example")
    return target.expand(batch, *target.shape[1:])


@dataclass(frozen=True, eq=False)
class Control:
    """Base class: ``cfg`` (mel settings) and ``frames`` (the number of frames of the mels it accepts).

    Subclasses implement :meth:`feature`, :meth:`loss` (``[B]``), :meth:`evaluate` and
    :meth:`describe`. Calling a control is its loss.
    """

    cfg: MelConfig
    frames: int
    name: ClassVar[str] = "control"

    def check(self, mel: torch.Tensor) -> torch.Tensor:
        """Raise a ``ValueError`` unless ``mel`` is ``[B, n_mels, frames]``."""
        if not isinstance(mel, torch.Tensor):
            raise ValueError(f"{self.name}: mel must be a torch.Tensor, got {type(mel).__name__}")
        if mel.ndim == 3 and mel.shape[1] == self.cfg.n_mels and mel.shape[2] != self.frames:
            raise ValueError(f"{self.name}: the target has {self.frames} frames but the mel has "
                             f"{mel.shape[2]} (mel must be [B, {self.cfg.n_mels}, {self.frames}])")
        if mel.ndim != 3 or mel.shape[1] != self.cfg.n_mels:
            hint = " (add a batch dimension: mel[None])" if mel.ndim == 2 else ""
            raise ValueError(f"{self.name}: mel must be [B, {self.cfg.n_mels}, {self.frames}], got shape "
                             f"{tuple(mel.shape)}{hint}")
        return mel

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        return self.loss(mel)


def _finite_float_target(target: torch.Tensor | np.ndarray | Sequence[float], what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(target, dtype=np.float32) if not isinstance(target, torch.Tensor)
                        else target.detach().float().cpu())
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[-1] == 0:
        raise ValueError(f"{what} must be [T] or [B, T], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return t


def _check_frames(target_frames: int, frames: int, what: str) -> None:
    if target_frames != frames:
        raise ValueError(f"{what} has {target_frames} frames but the mel has {frames} frames")
