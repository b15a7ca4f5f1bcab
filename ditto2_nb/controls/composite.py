"""Composite controls: a weighted sum of controls on the same mel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .base import Control


@dataclass(frozen=True, eq=False)
class CompositeControl(Control):
    """Weighted sum ``sum_i w_i L_i`` of controls on the same mel; ``feature`` is a dict of the
    terms' features and ``evaluate`` merges their metrics as ``"<term>/<metric>"``."""

    terms: tuple[tuple[float, Control], ...]
    name: ClassVar[str] = "composite"

    @property
    def keys(self) -> list[str]:
        """Unique term names (``melody``, ``melody#2``...)."""
        out: list[str] = []
        for _, c in self.terms:
            k, n = c.name, 2
            while k in out:
                k, n = f"{c.name}#{n}", n + 1
            out.append(k)
        return out

    def feature(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {k: c.feature(mel) for k, (_, c) in zip(self.keys, self.terms)}

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        return sum(w * c.loss(mel) for w, c in self.terms)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        return {f"{k}/{m}": v for k, (_, c) in zip(self.keys, self.terms)
                for m, v in c.evaluate(wave).items()}

    def describe(self) -> str:
        return "composite: " + " + ".join(f"{w:g} x [{c.describe()}]" for w, c in self.terms)


def composite(terms: Sequence[tuple[float, Control]]) -> CompositeControl:
    """``composite([(1.0, c1), (0.5, c2)])``: loss ``1.0 * c1.loss + 0.5 * c2.loss`` ``[B]``.

    Weights must be positive and finite; all terms must share the mel settings and frame count.
    """
    terms = tuple((float(w), c) for w, c in terms)
    if not terms:
        raise ValueError("composite needs at least one (weight, control) term")
    for w, c in terms:
        if not isinstance(c, Control):
            raise ValueError(f"composite terms must be (weight, Control) pairs, got a {type(c).__name__}")
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"composite weights must be positive and finite, got {w} for {c.name}")
    frames = {c.frames for _, c in terms}
    if len(frames) > 1 or len({c.cfg for _, c in terms}) > 1:
        raise ValueError("composite terms must share the mel config and frame count, got frames "
                         f"{sorted(frames)}")
    return CompositeControl(terms[0][1].cfg, frames.pop(), terms)
