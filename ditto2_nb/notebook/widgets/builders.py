"""Building the panel's control from its parameters: one builder per control name in
:data:`BUILDERS` (``builder(panel, params) -> Control``), and the reference clip several use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ...audio.files import load_audio
from ...audio.mel import wave_to_mel
from ...controls.base import Control
from ...controls.intensity import INTENSITY_SHAPES, intensity_control
from ...controls.masks import inpaint_control, loop_control, outpaint_control
from ...controls.melody import melody_control, pitch_classes_from_mel
from ...controls.structure import structure_control

SHAPES = (*INTENSITY_SHAPES, "reference")  # "reference": the reference clip's own curve


def _intensity(panel, p) -> Control:
    if p["shape"] == "reference":
        return intensity_control(panel.reference_clip(p)[0], panel.cfg)
    return intensity_control(p["shape"], panel.cfg, lo=p["lo_db"], hi=p["hi_db"])


def _melody(panel, p) -> Control:
    mel, pitch_classes = panel.reference_clip(p)
    return melody_control(pitch_classes if pitch_classes is not None
                          else pitch_classes_from_mel(mel, panel.cfg)[0], panel.cfg)


def _structure(panel, p) -> Control:
    return structure_control(p["structure"], panel.cfg)


def _inpaint(panel, p) -> Control:
    return inpaint_control(panel.reference_clip(p)[0], p["gap"], panel.cfg)


def _outpaint(panel, p) -> Control:
    return outpaint_control(panel.reference_clip(p)[0], panel.cfg, overlap=p["overlap"])


def _loop(panel, p) -> Control:
    return loop_control(panel.cfg, overlap=p["overlap"])


Builder = Callable[[Any, dict[str, Any]], Control]
BUILDERS: dict[str, Builder] = {"intensity": _intensity, "melody": _melody, "structure": _structure,
                                "inpaint": _inpaint, "outpaint": _outpaint, "loop": _loop}
CONTROLS = tuple(BUILDERS)


class PanelControls:
    """The control of a run: ``BUILDERS[params["control"]](panel, params)``."""

    BUILDERS: ClassVar[dict[str, Builder]] = BUILDERS

    def reference_clip(self, p: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reference mel ``[1, n_mels, frames]``, its exact pitch classes ``[frames]`` or None).

        From ``reference_path`` when set (cut or zero-padded to the clip length), else the
        held-out procedural clip number ``reference``.
        """
        if p["reference_path"]:
            wave = load_audio(p["reference_path"], self.cfg.sample_rate)[: self.cfg.n_samples]
            wave = F.pad(wave, (0, self.cfg.n_samples - len(wave)))
            return wave_to_mel(wave, self.cfg), None
        ds, i = self.heldout(), p["reference"]
        pc = ds.labels[i].pitch_class
        return ds.mels[i: i + 1], None if pc is None else torch.as_tensor(pc.astype("int64"))

    def make_control(self, p: dict[str, Any]) -> Control:
        """The control for validated parameters ``p``: ``self.BUILDERS[p["control"]](self, p)``."""
        return self.BUILDERS[p["control"]](self, p)
