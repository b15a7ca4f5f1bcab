"""Loading MiniCLAP scorers: from a file alone, or for a preset (the shipped file, else the cached
one; the ``ci`` preset trains in seconds when neither exists)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import checkpoints as ckpt
from ..core.assets import resolve_model_file
from ..core.config import MelConfig, from_dict
from .networks import ClapConfig, MiniClap
from .training import _display_name, _kind, reproduce_clap_command, train_clap


def load_clap_file(path: str | Path, device: str | torch.device = "cpu") -> MiniClap:
    """Rebuild a MiniCLAP scorer from its file alone (float32, eval mode, frozen)."""
    tensors, meta = ckpt.read(path)
    if "clap" not in meta:
        raise ckpt.CheckpointError(f"{path} has no MiniCLAP config in its metadata; it is not a MiniCLAP "
                                   "file (train one with `python -m ditto2_nb.cli train-clap`)")
    try:
        mel = from_dict(MelConfig, meta["mel"]) if "mel" in meta else None
        cfg = from_dict(ClapConfig, meta["clap"])
    except (TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path}: its stored config is invalid ({e}); restore the file or "
                                   "retrain it with the reproducing command in its model card") from e
    model = MiniClap(cfg, mel, _display_name(str(meta.get("kind", "")).endswith("eval")),
                     meta.get("text_vocab", ()))
    ckpt.load_state(model, tensors, path)
    model.meta = meta
    return model.to(device).eval().requires_grad_(False)


def load_miniclap(preset: str = "laptop", evaluator: bool = False, *, device: str | torch.device = "cpu",
                  retrain: bool = False, progress: bool = False) -> MiniClap:
    """MiniCLAP (or, with ``evaluator=True``, the independent evaluator) for ``preset``.

    The shipped file (``ditto2_nb/assets/miniclap[_eval]_<preset>.safetensors``) when there is
    one, else the cached one; the ``ci`` preset trains in seconds when neither exists; other presets
    raise an error naming the command.
    """
    kind = _kind(evaluator)
    path = resolve_model_file(kind, preset, retrain, reproduce_clap_command(preset, evaluator))
    if retrain or not path.exists():
        train_clap(preset, evaluator, path, progress=progress)
    return load_clap_file(path, device)
