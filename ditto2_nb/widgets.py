"""Interactive control panel over DITTO / DITTO-2, with a headless twin.

::

    panel = ControlPanel("laptop")          # models load lazily, once per (preset, method)
    panel                                   # in Jupyter: the widgets, a Run button, a live figure
    res = panel.run(control="melody", method="ditto2-ctm", iterations=60)   # same thing, headless

The button and :meth:`ControlPanel.run` share one code path: the button calls ``run()`` with the
widgets' current values (:attr:`ControlPanel.values`), so a notebook cell that calls ``run()``
computes exactly what a click would, and papermill runs need no widgets. ``run`` returns a
:class:`PanelResult` (optimisation result, control, figures, waveform, metrics measured on the
vocoded audio by ``control.evaluate``).

Live updates: the optimiser's per-iteration ``callback`` refreshes, every ``live_every``
iterations, the loss curve and the feature-vs-target view of the panel's plotly ``FigureWidget``
from that iteration's output.

Subclassing (e.g. a text panel): extend ``CONTROLS``, ``DEFAULTS`` and ``SHOWN`` and add a
``control_<name>(self, params) -> Control`` method (or override :meth:`ControlPanel.make_control`);
parameters without a dedicated widget get a plain text/number/checkbox widget.
"""

from __future__ import annotations

import html
import math
import numbers
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from . import plots
from .audio.files import load_audio
from .audio.mel import wave_to_mel
from .audio.vocoder import GriffinLimVocoder
from .clap.base import check_texts
from .clap.control import clap_control
from .clap.loading import load_miniclap
from .controls.base import Control
from .controls.intensity import INTENSITY_SHAPES, IntensityControl, intensity_control
from .controls.masks import LoopControl, MaskedMelControl, inpaint_control, loop_control, outpaint_control
from .controls.melody import MelodyControl, melody_control, pitch_classes_from_mel
from .controls.structure import StructureControl, structure_control
from .core.config import get_preset, resolve_device
from .data.datasets import heldout_data
from .data.tags import encode_tags
from .data.theory import INSTRUMENTS
from .diffusion.samplers import seeded_noise
from .diffusion.teacher import load_teacher
from .distill.train import load_distilled
from .optimize.loop import OptimConfig, OptResult
from .optimize.methods import ditto, ditto2

__all__ = ["CONTROLS", "METHODS", "SHAPES", "ControlPanel", "PanelResult", "TextPanel", "load_model"]

METHODS = {"ditto": "DITTO (teacher, S steps)", "ditto2-cm": "DITTO-2 (CM)",
           "ditto2-ctm": "DITTO-2 (CTM)"}
CONTROLS = ("intensity", "melody", "structure", "inpaint", "outpaint", "loop")
SHAPES = (*INTENSITY_SHAPES, "reference")  # "reference": the reference clip's own curve

_MODELS: dict[tuple[str, str, str], torch.nn.Module] = {}  # (preset, kind, device) -> model
_HELDOUT: dict[str, Any] = {}  # preset -> held-out MelDataset


def load_model(preset: str, method: str, device: str | torch.device = "cpu", *,
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


@dataclass
class PanelResult:
    """What one panel run produced (batch of one clip)."""

    params: dict[str, Any]  # the validated parameters of the run
    control: Control
    result: OptResult  # z, x0 [1, M, T], trace, surrogate output
    figures: dict[str, go.Figure]  # loss, feature, mel (+ latent, snapshots when snapshotted)
    wave: torch.Tensor  # vocoded output [L]
    sample_rate: int
    metrics: dict[str, float]  # control.evaluate on the audio + losses of the output mels

    @property
    def mel(self) -> torch.Tensor:
        """The output mel ``[M, T]``."""
        return self.result.x0[0]

    def audio(self):
        """An ``IPython.display.Audio`` player of the output."""
        from IPython.display import Audio

        return Audio(self.wave.numpy(), rate=self.sample_rate)


# ----------------------------------------------------------------------------- value checks


def _integer(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v != int(v):
        raise ValueError(f"{name} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in [{lo}, {'inf' if hi is None else hi}], got {v!r}")
    return int(v)


def _number(name: str, v, lo: float = -math.inf, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < lo or (positive and v <= 0):
        raise ValueError(f"{name} must be {'> 0' if positive else f'>= {lo}'}, got {v!r}")
    return float(v)


def _seconds(name: str, v, length: float) -> float:
    v = _number(name, v, 0.0)
    if v > length:
        raise ValueError(f"{name}={v} s is beyond the clip's {length:.2f} s")
    return v


# ----------------------------------------------------------------------------- the panel


class ControlPanel:
    """Choose a control and a method, run the noise optimisation, see and hear the result.

    Args:
        preset: "ci", "laptop" (default, shipped models) or "gpu".
        device: "auto" (CUDA when present), "cpu", "cuda", ...
        live_every: refresh the live figure every this many iterations (0 = only at the end).
        progress: show a tqdm bar over the iterations.
        **values: initial parameter values (see :attr:`DEFAULTS`); validated like ``run``'s.
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

    # ------------------------------------------------------------------ parameters

    def resolve(self, **overrides) -> dict[str, Any]:
        """Current values with ``overrides`` applied, validated; a ``ValueError`` names any
        unknown parameter or bad value and lists what is allowed."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid parameters are "
                             f"{sorted(self.defaults)}")
        return self.check({**getattr(self, "values", self.defaults), **overrides})

    def choices(self) -> dict[str, tuple]:
        """Parameters with a fixed set of allowed values."""
        return {"control": self.CONTROLS, "method": tuple(METHODS), "shape": SHAPES,
                "instrument": (None, *INSTRUMENTS)}

    def check(self, p: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise a full parameter dict (subclasses extend it)."""
        p = dict(p)
        for name, options in self.choices().items():
            if p[name] not in options:
                raise ValueError(f"{name}={p[name]!r} is not valid; choose one of {list(options)}")
        for name, lo in dict(iterations=1, decode_steps=1, seed=0, teacher_steps=1, snapshot_every=0,
                             reference=0).items():
            p[name] = _integer(name, p[name], lo)
        n = self.preset.data.n_heldout
        if p["reference"] >= n:
            raise ValueError(f"reference={p['reference']} but there are {n} held-out clips (0..{n - 1})")
        p["refine_last"] = _integer("refine_last", p["refine_last"], 0, p["iterations"])
        p["lr"] = _number("lr", p["lr"], positive=True)
        p["w"], p["reg_weight"] = _number("w", p["w"], 0.0), _number("reg_weight", p["reg_weight"], 0.0)
        p["lo_db"], p["hi_db"] = _number("lo_db", p["lo_db"]), _number("hi_db", p["hi_db"])
        if p["lo_db"] >= p["hi_db"]:
            raise ValueError(f"lo_db ({p['lo_db']}) must be below hi_db ({p['hi_db']})")
        p["reference_path"] = self._check_path(p["reference_path"])
        p["gap"], p["overlap"] = self._check_gap(p["gap"]), self._check_overlap(p["overlap"])
        structure_control(p["structure"], self.cfg)  # raises a clear error for bad strings
        return p

    def _check_path(self, path) -> str | None:
        if path is None or path == "":
            return None
        if not isinstance(path, (str, Path)) or not Path(path).is_file():
            raise ValueError(f"reference_path {path!r} is not an audio file; give an existing path "
                             "or None to use the held-out clip `reference`")
        return str(path)

    def _check_gap(self, gap) -> tuple[float, float]:
        gap = self.defaults["gap"] if gap is None else gap
        if not isinstance(gap, (tuple, list)) or len(gap) != 2:
            raise ValueError(f"gap must be (start, end) in seconds, got {gap!r}")
        t0, t1 = (_seconds("gap", v, self.cfg.seconds) for v in gap)
        if t0 >= t1 or (t0 == 0 and t1 >= self.cfg.seconds):
            raise ValueError(f"gap {tuple(gap)} must satisfy 0 <= start < end <= {self.cfg.seconds:.2f} s "
                             "and leave part of the clip to keep")
        return t0, t1

    def _check_overlap(self, overlap) -> float:
        overlap = self.defaults["overlap"] if overlap is None else overlap
        o = _seconds("overlap", overlap, self.cfg.seconds)
        frame = self.cfg.hop_length / self.cfg.sample_rate
        if o < frame or o > self.cfg.seconds - frame:
            raise ValueError(f"overlap must be between one frame ({frame:.3f} s) and the clip length "
                             f"minus one frame ({self.cfg.seconds - frame:.2f} s), got {o}")
        return o

    def set(self, **values) -> ControlPanel:
        """Change parameter values (and the widgets showing them)."""
        new = self.resolve(**values)
        self.values = new
        if self._ui is not None:
            for name in values:
                self._widgets[name].value = self._widget_value(name, new[name])
        return self

    # ------------------------------------------------------------------ computation

    def model(self, method: str) -> torch.nn.Module:
        return load_model(self.preset.name, method, self.device)

    def heldout(self):
        """The preset's held-out procedural clips (loaded once)."""
        if self.preset.name not in _HELDOUT:
            _HELDOUT[self.preset.name] = heldout_data(self.preset)
        return _HELDOUT[self.preset.name]

    def reference_clip(self, p: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reference mel ``[1, M, T]``, its exact pitch classes ``[T]`` or None).

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
        """The control for validated parameters ``p``: calls ``self.control_<p["control"]>(p)``."""
        return getattr(self, f"control_{p['control']}")(p)

    def control_intensity(self, p) -> Control:
        if p["shape"] == "reference":
            return intensity_control(self.reference_clip(p)[0], self.cfg)
        return intensity_control(p["shape"], self.cfg, lo=p["lo_db"], hi=p["hi_db"])

    def control_melody(self, p) -> Control:
        mel, pitch_classes = self.reference_clip(p)
        return melody_control(pitch_classes if pitch_classes is not None
                              else pitch_classes_from_mel(mel, self.cfg)[0], self.cfg)

    def control_structure(self, p) -> Control:
        return structure_control(p["structure"], self.cfg)

    def control_inpaint(self, p) -> Control:
        return inpaint_control(self.reference_clip(p)[0], p["gap"], self.cfg)

    def control_outpaint(self, p) -> Control:
        return outpaint_control(self.reference_clip(p)[0], self.cfg, overlap=p["overlap"])

    def control_loop(self, p) -> Control:
        return loop_control(self.cfg, overlap=p["overlap"])

    def tags(self, p) -> torch.Tensor | None:
        """Conditioning tags ``[1, K]`` (None = unconditional)."""
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
        """``control.evaluate`` on the audio, plus the control loss of the output mel(s)."""
        out = {k: float(v[0]) for k, v in control.evaluate(wave).items()}
        with torch.no_grad():
            out["loss_decoded"] = float(control.loss(res.x0)[0])
            if res.x0_surrogate is not None:
                out["loss_surrogate"] = float(control.loss(res.x0_surrogate)[0])
        out["loss_last_iteration"] = float(res.trace.loss[-1])
        return out

    def run(self, **overrides) -> PanelResult:
        """Optimise with the current values and ``overrides``; what the Run button does, headless.

        Returns a :class:`PanelResult`. When the panel's widgets exist they are updated too.
        """
        p = self.resolve(**overrides)
        control = self.make_control(p)
        res = self.optimise(p, control)
        with torch.no_grad():
            wave = self.vocoder(res.x0).cpu()
        out = PanelResult(p, control, res, self.figures(p, control, res), wave[0],
                          self.cfg.sample_rate, self.measure(control, res, wave))
        self.last_result = out
        if self._ui is not None:
            self._show(out)
        return out

    # ------------------------------------------------------------------ figures

    def feature_figure(self, control: Control, mels: dict[str, torch.Tensor],
                       compact: bool = False) -> go.Figure:
        """Feature vs target of outputs ``{name: mel [1, M, T]}`` (only the first is used where
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

    # ------------------------------------------------------------------ live updates

    def _live_callback(self, control: Control, p: dict[str, Any]):
        """The optimiser's per-iteration callback that refreshes the live figure every
        ``live_every`` iterations (None when there are no widgets to refresh)."""
        if self._ui is None or not self.live_every:
            return None
        with self.figure.batch_update():
            self.figure.data = self.figure.data[:1]
            self.figure.data[0].update(x=[], y=[])

        def callback(it: int, trace, mel: torch.Tensor) -> None:
            if it % self.live_every == 0:
                self._update_live(trace.loss, control, mel[:1], p)

        return callback

    def _update_live(self, history: list[float], control: Control, mel: torch.Tensor, p) -> None:
        with self.figure.batch_update():
            self.figure.data[0].update(x=list(range(len(history))), y=list(history))
            self._set_view(control, mel)
        self.status.value = (f"{METHODS[p['method']]}: iteration {len(history)}/{p['iterations']}, "
                             f"loss {history[-1]:.4g}")

    def _set_view(self, control: Control, mel: torch.Tensor, name: str = "output") -> None:
        """Replace (or update in place) the right-hand feature-vs-target view of the figure."""
        view = self.feature_figure(control, {name: mel}, compact=True)
        new, fw = list(view.data), self.figure
        same = len(fw.data) == 1 + len(new) and all(a.type == b.type for a, b in zip(fw.data[1:], new))
        if same:
            for old, tr in zip(fw.data[1:], new):
                old.update({k: tr[k] for k in ("x", "y", "z") if k in tr})
            return
        for tr in new:
            if "showscale" in tr:
                tr.showscale = False
        fw.data = fw.data[:1]
        fw.add_traces(new, rows=1, cols=2)
        fw.layout.annotations[1].text = view.layout.title.text or name
        fw.update_yaxes(autorange="reversed" if isinstance(control, StructureControl) else True,
                        row=1, col=2)

    def _show(self, out: PanelResult) -> None:
        """After a run: full loss curve, decoded output's view, spectrogram, audio, metrics."""
        from IPython import get_ipython
        from IPython.display import clear_output, display

        tr = out.result.trace
        with self.figure.batch_update():
            self.figure.data[0].update(x=list(range(len(tr.loss))), y=tr.loss)
            self._set_view(out.control, out.result.x0[:1].cpu(), "decoded")
        if get_ipython() is not None:  # a kernel to display into
            with self._output:
                clear_output(wait=True)
                display(out.figures["mel"], out.audio())
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in out.metrics.items())
        self.status.value = (f"<b>{METHODS[out.params['method']]}</b>: {len(tr.loss)} iterations in "
                             f"{out.result.seconds_total:.1f} s. {html.escape(metrics)}")

    # ------------------------------------------------------------------ widgets

    @property
    def ui(self):
        """The panel's widget tree (built on first use)."""
        if self._ui is None:
            self._build()
        return self._ui

    @property
    def button(self):
        """The Run button (``panel.button.click()`` runs as a click would)."""
        self.ui  # noqa: B018 - builds the widgets on first use
        return self._button

    @property
    def figure(self) -> go.FigureWidget:
        """The live figure: loss (left), feature vs target (right)."""
        self.ui  # noqa: B018
        return self._figure

    @property
    def inputs(self) -> dict[str, Any]:
        """The parameter widgets by parameter name."""
        self.ui  # noqa: B018
        return self._widgets

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    @staticmethod
    def _widget_value(name: str, v):
        return "" if v is None and name == "reference_path" else v

    def widget_for(self, name: str, value):
        """The widget editing parameter ``name`` (subclasses add theirs; unknown ones get a
        widget by the value's type)."""
        import ipywidgets as W

        s, n = self.cfg.seconds, self.preset.data.n_heldout
        frame = self.cfg.hop_length / self.cfg.sample_rate

        def slider(cls, lo, hi, **kw):
            return cls(value=value, min=min(lo, value), max=max(hi, value), description=name, **kw)

        make = {
            "control": lambda: W.Dropdown(options=self.CONTROLS, value=value, description=name),
            "method": lambda: W.Dropdown(options=[(v, k) for k, v in METHODS.items()], value=value,
                                         description=name),
            "shape": lambda: W.Dropdown(options=SHAPES, value=value, description=name),
            "instrument": lambda: W.Dropdown(options=[("any (unconditional)", None)]
                                             + [(i, i) for i in INSTRUMENTS], value=value,
                                             description=name),
            "lo_db": lambda: slider(W.FloatSlider, -60.0, 0.0, step=1.0),
            "hi_db": lambda: slider(W.FloatSlider, -60.0, 0.0, step=1.0),
            "reference": lambda: slider(W.IntSlider, 0, n - 1),
            "gap": lambda: W.FloatRangeSlider(value=value, min=0.0, max=s, step=0.01, description=name),
            "overlap": lambda: slider(W.FloatSlider, frame, s - frame, step=0.01),
            "iterations": lambda: slider(W.IntSlider, 1, 300),
            "lr": lambda: W.FloatLogSlider(value=value, base=10, min=-3, max=0, description=name),
            "decode_steps": lambda: slider(W.IntSlider, 1, 8),
            "refine_last": lambda: slider(W.IntSlider, 0, self.values["iterations"]),
            "teacher_steps": lambda: slider(W.IntSlider, 2, 40),
            "w": lambda: slider(W.FloatSlider, 1.0, 5.0, step=0.25),
            "snapshot_every": lambda: slider(W.IntSlider, 0, 50),
            "reg_weight": lambda: slider(W.FloatSlider, 0.0, 1.0, step=0.01),
            "seed": lambda: W.BoundedIntText(value=value, min=0, max=2**31 - 1, description=name),
        }
        if name in make:
            return make[name]()
        if isinstance(value, bool):
            return W.Checkbox(value=value, description=name)
        if isinstance(value, (int, float)):
            return (W.IntText if isinstance(value, int) else W.FloatText)(value=value, description=name)
        return W.Text(value="" if value is None else str(value), description=name)

    def _build(self) -> None:
        import ipywidgets as W

        self._widgets = {k: self.widget_for(k, self._widget_value(k, v)) for k, v in self.values.items()}
        for name, w in self._widgets.items():
            w.observe(lambda ch, name=name: self._on_change(name, ch["new"]), names="value")
        W.dlink((self._widgets["iterations"], "value"), (self._widgets["refine_last"], "max"))
        self._upload = W.FileUpload(accept=".wav,.flac,.ogg,.mp3", multiple=False,
                                    description="upload reference")
        self._upload.observe(self._on_upload, names="value")
        self._button = W.Button(description="Run", button_style="primary", icon="play")
        self._button.on_click(self._on_click)
        self.status = W.HTML(value="Set the control and press Run.")
        self._output = W.Output()
        self._figure = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6],
                                                     subplot_titles=["control loss", "feature vs target"]))
        self._figure.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="loss"), row=1, col=1)
        self._figure.update_yaxes(type="log", row=1, col=1)
        self._figure.update_layout(height=340, showlegend=False, margin=dict(l=50, r=20, t=40, b=40))
        wrap = W.Layout(flex_flow="row wrap")
        rows = [W.Box([w for k, w in self._widgets.items() if k not in self._contextual()], layout=wrap),
                W.Box([*(self._widgets[k] for k in self._contextual()), self._upload], layout=wrap),
                W.HBox([self._button, self.status]), self._figure, self._output]
        self._ui = W.VBox(rows)
        self._refresh_visibility()

    def _contextual(self) -> list[str]:
        """Parameters shown only for some controls or methods, in first-mention order."""
        return list(dict.fromkeys(k for v in self.SHOWN.values() for k in v if k in self._widgets))

    def _refresh_visibility(self) -> None:
        v = self.values
        shown = {*self.SHOWN.get(v["control"], ()), *self.SHOWN.get(v["method"], ())}
        if v["control"] == "intensity" and v["shape"] == "reference":
            shown |= {"reference", "reference_path"}
        for k in self._contextual():
            self._widgets[k].layout.display = None if k in shown else "none"
        self._upload.layout.display = None if "reference_path" in shown else "none"

    def _on_change(self, name: str, new) -> None:
        self.values[name] = None if (name == "reference_path" and new == "") else new
        if name in ("control", "method", "shape"):
            self._refresh_visibility()

    def _on_upload(self, change) -> None:
        for f in change["new"]:
            path = Path(tempfile.mkdtemp(prefix="ditto2_upload_")) / Path(f["name"]).name
            path.write_bytes(bytes(f["content"]))
            self._widgets["reference_path"].value = str(path)

    def _on_click(self, _button=None) -> None:
        """Run with the widgets' values; errors are shown in the panel (and kept in
        ``last_error``) instead of vanishing into the widget log."""
        self._button.disabled, self.last_error = True, None
        t0 = time.perf_counter()
        try:
            self.status.value = "loading models and running..."
            self.run()
        except Exception as e:  # noqa: BLE001 - any failure must reach the user
            self.last_error = e
            self.status.value = (f"<b style='color:#c00'>{type(e).__name__}</b> after "
                                 f"{time.perf_counter() - t0:.1f} s: {html.escape(str(e))}")
        finally:
            self._button.disabled = False


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
        return load_model(self.preset.name, method, self.device, conditional=False)

    def scorers(self):
        """(loss scorer, evaluator), loaded once."""
        if not hasattr(self, "_scorers"):
            self._scorers = (load_miniclap(self.preset.name, device=self.device),
                             load_miniclap(self.preset.name, evaluator=True, device=self.device))
        return self._scorers

    def control_text(self, p) -> Control:
        scorer, evaluator = self.scorers()
        return clap_control(scorer, p["prompt"], self.cfg, evaluator=evaluator)
