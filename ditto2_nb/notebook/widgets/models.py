"""The panels' model cache: the frozen model each method optimises through, loaded once per
(preset, model, device) and shared by every panel and run, and the held-out clips per preset."""

from __future__ import annotations

from typing import Any

import torch

from ...core import checkpoints as ckpt
from ...core.assets import cache_dir, shipped_path
from ...data.sources import heldout_data
from ...data.tags import TAG_FIELDS, model_tag_fields
from ...diffusion.teacher import load_teacher
from ...distill.train import load_distilled

METHODS = {"ditto": "DITTO (teacher, S steps)", "ditto2-cm": "DITTO-2 (CM)",
           "ditto2-ctm": "DITTO-2 (CTM)"}

_MODELS: dict[tuple[str, str, str], torch.nn.Module] = {}  # (preset, kind, device) -> model
_HELDOUT: dict[str, Any] = {}  # preset -> held-out MelDataset


def _model_name(method: str, conditional: bool) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    return ("teacher" if method == "ditto" else method.split("-")[1]) + ("" if conditional else "_uncond")


def method_model(preset: str, method: str, device: str | torch.device = "cpu", *,
               conditional: bool = True) -> torch.nn.Module:
    """The frozen model a method optimises through (teacher for DITTO, CM/CTM student for
    DITTO-2), loaded once per (preset, model, device) and kept for every later panel and run."""
    name = _model_name(method, conditional)
    kind = name.removesuffix("_uncond")
    key = (preset, name, str(device))
    if key not in _MODELS:
        _MODELS[key] = (load_teacher(preset, conditional, device=device) if kind == "teacher"
                        else load_distilled(kind, preset, conditional, device=device))
    return _MODELS[key]


def method_instruments(preset: str, method: str) -> tuple[str, ...]:
    """The instrument tags the method's conditional model knows (its ``tag_vocab``; without loading
    it): those of a model already loaded, else of the file it would load (shipped, else cached),
    else, for a model still to be trained, every class of ``TAG_FIELDS["instrument"]``. A model
    trained before the GM families were added (the shipped ones) knows the six procedural timbres."""
    name = _model_name(method, True)
    vocab = next((m.cfg.tag_vocab for (p, n, _), m in _MODELS.items() if (p, n) == (preset, name)), None)
    if vocab is None:
        for path in (shipped_path(name, preset), cache_dir() / f"{name}_{preset}.safetensors"):
            if path.is_file():  # the order of core.assets.resolve_model_file
                try:
                    vocab = tuple(ckpt.read_metadata(path)["net"]["tag_vocab"])
                except (ckpt.CheckpointError, KeyError, TypeError):
                    pass  # a bad file is reported when the run loads it
                break
    if vocab is None:
        return TAG_FIELDS["instrument"]
    return model_tag_fields(vocab).get("instrument", ())


class PanelModels:
    """The panel's models and held-out clips (from the module-level caches)."""

    def model(self, method: str) -> torch.nn.Module:
        return method_model(self.preset.name, method, self.device)

    def instruments(self, method: str) -> tuple[str, ...]:
        """The instrument tags ``method``'s model knows (:func:`method_instruments`)."""
        return method_instruments(self.preset.name, method)

    def heldout(self):
        """The preset's held-out procedural clips (loaded once)."""
        if self.preset.name not in _HELDOUT:
            _HELDOUT[self.preset.name] = heldout_data(self.preset)
        return _HELDOUT[self.preset.name]
