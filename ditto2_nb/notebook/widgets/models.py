"""The panels' model cache: the frozen model each method optimises through, loaded once per
(preset, model, device) and shared by every panel and run, and the held-out clips per preset."""

from __future__ import annotations

from typing import Any

import torch

from ...data.datasets import heldout_data
from ...diffusion.teacher import load_teacher
from ...distill.train import load_distilled

METHODS = {"ditto": "DITTO (teacher, S steps)", "ditto2-cm": "DITTO-2 (CM)",
           "ditto2-ctm": "DITTO-2 (CTM)"}

_MODELS: dict[tuple[str, str, str], torch.nn.Module] = {}  # (preset, kind, device) -> model
_HELDOUT: dict[str, Any] = {}  # preset -> held-out MelDataset


def method_model(preset: str, method: str, device: str | torch.device = "cpu", *,
               conditional: bool = True) -> torch.nn.Module:
    """The frozen model a method optimises through (teacher for DITTO, CM/CTM student for
    DITTO-2), loaded once per (preset, model, device) and kept for every later panel and run."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    kind = "teacher" if method == "ditto" else method.split("-")[1]
    key = (preset, kind + ("" if conditional else "_uncond"), str(device))
    if key not in _MODELS:
        _MODELS[key] = (load_teacher(preset, conditional, device=device) if kind == "teacher"
                        else load_distilled(kind, preset, conditional, device=device))
    return _MODELS[key]


class PanelModels:
    """The panel's models and held-out clips (from the module-level caches)."""

    def model(self, method: str) -> torch.nn.Module:
        return method_model(self.preset.name, method, self.device)

    def heldout(self):
        """The preset's held-out procedural clips (loaded once)."""
        if self.preset.name not in _HELDOUT:
            _HELDOUT[self.preset.name] = heldout_data(self.preset)
        return _HELDOUT[self.preset.name]
