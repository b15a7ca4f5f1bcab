"""The two panels: :class:`ControlPanel` (every control of the paper over DITTO / DITTO-2) and
:class:`TextPanel` (text control of the unconditional model with MiniCLAP)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...audio.vocoder import GriffinLimVocoder
from ...clap.base import check_texts
from ...clap.control import clap_control
from ...clap.loading import load_miniclap
from ...controls.base import Control
from ...core.config import get_preset, resolve_device
from .builders import CONTROLS, Builder, PanelControls
from .figures import PanelFigures
from .layout import PanelWidgets
from .models import PanelModels, method_model
from .params import PanelParameters, _integer
from .running import PanelResult, PanelRunning


class ControlPanel(PanelParameters, PanelModels, PanelControls, PanelRunning, PanelFigures,
                   PanelWidgets):
    """Choose a control and a method, run the noise optimisation, see and hear the result.

    Args:
        preset: "ci", "laptop" (default, shipped models) or "gpu".
        device: "auto" (CUDA when present), "cpu", "cuda", ...
        live_every: refresh the live figure every this many iterations (0 = only at the end).
        progress: show a tqdm bar over the iterations.
        **values: initial parameter values (see :attr:`DEFAULTS`); validated like ``run``'s.

    Its roles live in the mixins: parameters (:class:`~.params.PanelParameters`), models
    (:class:`~.models.PanelModels`), controls (:class:`~.builders.PanelControls`), running
    (:class:`~.running.PanelRunning`), figures (:class:`~.figures.PanelFigures`) and widgets
    (:class:`~.layout.PanelWidgets`).
    """

    CONTROLS: ClassVar[tuple[str, ...]] = CONTROLS
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        control="intensity", method="ditto2-ctm",
        shape="ramp_up", lo_db=-30.0, hi_db=-10.0,  # intensity
        reference=0, reference_path=None,  # held-out clip index, or an audio file (wins if set)
        structure="ABA",
        gap=None, overlap=None,  # seconds; None = middle third / a quarter of the clip
        instrument=None,  # conditioning tag (None = unconditional)
        iterations=50, lr=0.05, decode_steps=2, refine_last=0, seed=0,
        teacher_steps=20, w=2.0,  # DITTO only: sampler steps S, CFG scale (used with an instrument)
        snapshot_every=5, reg_weight=0.0,
    )
    # Parameters shown for each control and method (the others stay hidden in the panel).
    SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {
        "intensity": ("shape", "lo_db", "hi_db"), "melody": ("reference", "reference_path"),
        "structure": ("structure",), "inpaint": ("reference", "reference_path", "gap"),
        "outpaint": ("reference", "reference_path", "overlap"), "loop": ("overlap",),
        "ditto": ("teacher_steps", "w"), "ditto2-cm": ("decode_steps", "refine_last"),
        "ditto2-ctm": ("decode_steps", "refine_last"),
    }

    def __init__(self, preset: str = "laptop", device: str | torch.device = "auto", *,
                 live_every: int = 5, progress: bool = False, **values):
        self.preset = get_preset(preset)
        self.cfg = self.preset.mel
        self.device = resolve_device(device)
        self.live_every = _integer("live_every", live_every, 0)
        self.progress = progress
        self.vocoder = GriffinLimVocoder(self.cfg)
        s = self.cfg.seconds
        self.defaults = {**self.DEFAULTS, "gap": (round(s / 3, 2), round(2 * s / 3, 2)),
                         "overlap": round(s / 4, 2)}
        self._ui = None
        self.values = self.resolve(**values)
        self.last_result: PanelResult | None = None
        self.last_error: Exception | None = None


def _text(panel, p) -> Control:
    scorer, evaluator = panel.scorers()
    return clap_control(scorer, p["prompt"], panel.cfg, evaluator=evaluator)


class TextPanel(ControlPanel):
    """Text control of the *unconditional* model: a prompt box; DITTO-2 (or DITTO) with the
    MiniCLAP loss (1 - cosine on the mel), scored on the audio by the independent evaluator.

    ::

        panel = TextPanel("laptop")
        res = panel.run(prompt="a fast, loud square-wave melody with drums")
        res.metrics["clap_score"]   # the evaluator's cosine on the vocoded audio
    """

    CONTROLS: ClassVar[tuple[str, ...]] = ("text",)
    DEFAULTS: ClassVar[dict[str, Any]] = {**ControlPanel.DEFAULTS, "control": "text",
                                          "prompt": "a slow, soft organ melody without drums",
                                          "iterations": 70, "refine_last": 10}
    SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {**ControlPanel.SHOWN, "text": ("prompt",)}
    BUILDERS: ClassVar[dict[str, Builder]] = {**ControlPanel.BUILDERS, "text": _text}

    def check(self, p: dict[str, Any]) -> dict[str, Any]:
        p = super().check(p)
        if p["instrument"] is not None:
            raise ValueError("the text panel steers the unconditional model, which takes no tags: "
                             "leave instrument=None and say it in the prompt")
        if not isinstance(p["prompt"], str):
            raise ValueError(f"prompt must be one string describing the music, got {p['prompt']!r}")
        p["prompt"] = check_texts(p["prompt"])[0]
        return p

    def model(self, method: str) -> torch.nn.Module:
        return method_model(self.preset.name, method, self.device, conditional=False)

    def scorers(self):
        """(loss scorer, evaluator), loaded once."""
        if not hasattr(self, "_scorers"):
            self._scorers = (load_miniclap(self.preset.name, device=self.device),
                             load_miniclap(self.preset.name, evaluator=True, device=self.device))
        return self._scorers

    def control_text(self, p) -> Control:
        scorer, evaluator = self.scorers()
        return clap_control(scorer, p["prompt"], self.cfg, evaluator=evaluator)
