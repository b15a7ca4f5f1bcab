"""Running the panel: the conditioning tags, DITTO or DITTO-2 from the seed's noise (the same
entry point for the unoptimised baseline, with 0 iterations), the metrics on the vocoded audio,
and :class:`PanelResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
import torch

from ...controls.base import Control
from ...data.tags import encode_tags
from ...diffusion.samplers import seeded_noise
from ...optimize.loop import OptimConfig, OptResult
from ...optimize.methods import ditto, ditto2


@dataclass
class PanelResult:
    """What one panel run produced (batch of one clip)."""

    params: dict[str, Any]  # the validated parameters of the run
    control: Control
    result: OptResult  # z, x0 [1, n_mels, frames], trace, surrogate output
    figures: dict[str, go.Figure]  # loss, feature, mel (+ latent, snapshots when snapshotted)
    wave: torch.Tensor  # vocoded output [L]
    sample_rate: int
    metrics: dict[str, float]  # control.evaluate on the audio + losses of the output mels
    # seconds from the start of the run: "audio_ready" (optimised, decoded, vocoded and, with
    # widgets, the audio player shown) and "done" (the metrics measured and shown too)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def mel(self) -> torch.Tensor:
        """The output mel ``[n_mels, frames]``."""
        return self.result.x0[0]

    def audio(self):
        """An ``IPython.display.Audio`` player of the output."""
        from IPython.display import Audio

        return Audio(self.wave.numpy(), rate=self.sample_rate)


class PanelRunning:
    """One run: :meth:`run` (what the Run button does), :meth:`optimise`, :meth:`baseline`."""

    def tags(self, p) -> torch.Tensor | None:
        """Conditioning tags ``[1, n_tags]`` (None = unconditional)."""
        if p["instrument"] is None:
            return None
        return encode_tags({"instrument": p["instrument"]})[None].to(self.device)

    def optimise(self, p: dict[str, Any], control: Control, iterations: int | None = None) -> OptResult:
        """Run DITTO or DITTO-2 from the seed's noise; deterministic given ``p``. ``iterations``
        overrides ``p["iterations"]``; 0 gives the method's decode of the unoptimised noise. The
        seed also fixes DITTO-2's decode noise."""
        z0 = seeded_noise([p["seed"]], (self.cfg.n_mels, control.frames), self.device)
        its = p["iterations"] if iterations is None else iterations
        refine = 0 if p["method"] == "ditto" or its == 0 else p["refine_last"]
        ocfg = OptimConfig(iterations=its, lr=p["lr"], snapshot_every=p["snapshot_every"],
                           reg_weight=p["reg_weight"], refine_last=refine)
        model = self.model(p["method"])
        live = self._live_callback(control, p) if its else None
        if p["method"] == "ditto":
            return ditto(model, control.loss, z0, self.tags(p), steps=p["teacher_steps"], w=p["w"],
                         cfg=ocfg, progress=self.progress, callback=live)
        return ditto2(model, control.loss, z0, self.tags(p), decode_steps=p["decode_steps"],
                      decode_seed=p["seed"], cfg=ocfg, progress=self.progress, callback=live)

    def baseline(self, **overrides) -> dict[str, float]:
        """The same control measured on the *unoptimised* output of the run's initial noise (the
        seed's x_T decoded by the method itself: :meth:`optimise` with 0 iterations), for
        before/after comparisons."""
        p = self.resolve(**overrides)
        control = self.make_control(p)
        res = self.optimise(p, control, iterations=0)
        with torch.no_grad():
            wave = self.vocoder(res.x0).cpu()
        return {k: float(v[0]) for k, v in control.evaluate(wave).items()}

    def measure(self, control: Control, res: OptResult, wave: torch.Tensor) -> dict[str, float]:
        """``control.evaluate`` on the audio, plus the control loss of the output mel(s) and how
        much the vocoder's limiter lowered the audio's peaks (dB; 0 = untouched, never clipped)."""
        out = {k: float(v[0]) for k, v in control.evaluate(wave).items()}
        out["limiter_gain_db"] = float(self.vocoder.last_gain_db[0]) if self.vocoder.last_gain_db else 0.0
        with torch.no_grad():
            out["loss_decoded"] = float(control.loss(res.x0)[0])
            if res.x0_surrogate is not None:
                out["loss_surrogate"] = float(control.loss(res.x0_surrogate)[0])
        if res.trace.loss:  # none with iterations=0 (the unoptimised decode)
            out["loss_last_iteration"] = float(res.trace.loss[-1])
        return out

    def run(self, **overrides) -> PanelResult:
        """Optimise with the current values and ``overrides``; what the Run button does, headless.

        Returns a :class:`PanelResult`. When the panel's widgets exist they are updated too: the
        output's plots and audio player first, then the metrics on the audio (the first run of a
        kernel loads the librosa evaluator for them, about a second).
        """
        t0 = time.perf_counter()
        p = self.resolve(**overrides)
        if self._ui is not None:
            self._close_retired()
        control = self.make_control(p)
        res = self.optimise(p, control)
        with torch.no_grad():
            wave = self.vocoder(res.x0).cpu()
        out = PanelResult(p, control, res, self.figures(p, control, res), wave[0], self.cfg.sample_rate, {})
        self.last_result = out
        if self._ui is not None:
            self._show_output(out)
        out.seconds["audio_ready"] = time.perf_counter() - t0
        out.metrics.update(self.measure(control, res, wave))
        if self._ui is not None:
            self._show_metrics(out)
        out.seconds["done"] = time.perf_counter() - t0
        return out
