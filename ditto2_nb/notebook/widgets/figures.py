"""The panel's figures: the loss trajectory, the feature against the target (decoded and, for
DITTO-2, the 1-step surrogate), the output mel, and the latent's evolution when snapshotted."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import torch

from ...controls.base import Control
from ...controls.intensity import IntensityControl
from ...controls.masks import LoopControl, MaskedMelControl
from ...controls.melody import MelodyControl
from ...controls.structure import StructureControl
from ...optimize.loop import OptResult
from .. import plots
from .models import METHODS


class PanelFigures:
    """Figures of a run (plotly ``Figure`` objects; the live view reuses :meth:`feature_figure`)."""

    def feature_figure(self, control: Control, mels: dict[str, torch.Tensor],
                       compact: bool = False) -> go.Figure:
        """Feature vs target of outputs ``{name: mel [1, n_mels, frames]}`` (only the first is used where
        one figure cannot hold several); ``compact`` gives a single-panel version (live view)."""
        name, mel = next(iter(mels.items()))
        cfg = self.cfg
        with torch.no_grad():
            if isinstance(control, IntensityControl):
                feats = torch.cat([control.feature(m) for m in mels.values()])
                return plots.feature_vs_target(feats, control.target[0], cfg, names=list(mels),
                                               title="intensity (smoothed frame energy)")
            if isinstance(control, MelodyControl):
                return plots.chroma_vs_target(control.feature(mel)[0], control.target[0], cfg,
                                              title=f"chroma of the {name} vs target melody")
            if isinstance(control, StructureControl):
                return plots.ssm_pair(control.feature(mel)[0], control.target[0], triangle=compact)
        return self._mel_view(control, mel[0], name, compact)

    def _mel_view(self, control: Control, mel: torch.Tensor, name: str, compact: bool) -> go.Figure:
        """Masked controls: output (and reference) with the free region's edges; looping: the
        loop body played twice with its seam; anything else: the output mel."""
        sec = self.cfg.hop_length / self.cfg.sample_rate
        if isinstance(control, LoopControl):
            body = mel[..., : control.frames - control.overlap]
            fig = plots.mel_heatmap(torch.cat([body, body], -1), f"{name}: loop body played twice", self.cfg)
            fig.add_vline(x=body.shape[-1] * sec, line_dash="dash", line_color="white")
            return fig
        if not isinstance(control, MaskedMelControl):
            return plots.mel_heatmap(mel, name, self.cfg)
        if compact:
            fig = plots.mel_heatmap(mel, name, self.cfg)
        else:
            fig = plots.mel_grid(torch.stack([control.reference[0], mel.cpu()]),
                                 ["reference (kept frames)", name], cols=2, cfg=self.cfg,
                                 title=control.describe())
        free = (~control.mask).nonzero()[:, 0]
        grid = {} if compact else dict(row="all", col="all")
        for x in (int(free.min()) * sec, (int(free.max()) + 1) * sec):
            fig.add_vline(x=x, line_dash="dash", line_color="white", **grid)
        return fig

    def figures(self, p: dict[str, Any], control: Control, res: OptResult) -> dict[str, go.Figure]:
        """loss (trajectory), feature (decoded vs target; surrogate too for DITTO-2), mel, and
        latent / snapshots when the trace has snapshots."""
        label = METHODS[p["method"]]
        mels = {"decoded": res.x0}
        if res.x0_surrogate is not None:
            mels["surrogate (1 step)"] = res.x0_surrogate
        figs = {"loss": plots.loss_trajectories({label: res.trace}, title=f"{label}: control loss"),
                "feature": self.feature_figure(control, mels),
                "mel": plots.mel_heatmap(res.x0[0], f"{label}: output", self.cfg)}
        if res.trace.snapshots:
            figs["latent"] = plots.latent_evolution(res.trace)
            figs["snapshots"] = plots.decoded_slider(res.trace, cfg=self.cfg)
        return figs
