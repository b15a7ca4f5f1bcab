"""The panel's widgets: the ipywidgets tree (parameter inputs, upload, Run button, status, the live
plotly ``FigureWidget``), what each widget event does, and the live updates during a run."""

from __future__ import annotations

import html
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ...controls.base import Control
from ...controls.structure import StructureControl
from ...core.validate import LIMITS
from .builders import SHAPES
from .models import METHODS
from .params import PANEL_LIMITS
from .running import PanelResult


def _plain(obj):
    """Plotly JSON with numpy arrays turned into (nested) lists. A ``FigureWidget`` must not hold
    numpy arrays: the front end echoes such properties back as typed arrays, which plotly's delta
    handler then tests with ``if not value`` ("The truth value of an array ... is ambiguous")."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _live_figure(loss: dict[str, list], view: Sequence[dict] = (), title: str = "feature vs target",
                 reversed_y: bool = False) -> go.FigureWidget:
    """The live figure, built whole (so its widget state holds every trace): the loss ``{x, y}``
    on the left, the view's traces (plain plotly JSON) on the right."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], subplot_titles=["control loss", title])
    fig.add_trace(go.Scatter(**loss, mode="lines+markers", name="loss"), row=1, col=1)
    for tr in view:
        fig.add_trace(tr, row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    if reversed_y:
        fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(height=340, showlegend=False, margin=dict(l=50, r=20, t=40, b=40))
    return go.FigureWidget(fig)


class PanelWidgets:
    """The widget view of a panel (built on first use; absent in headless runs)."""

    # ------------------------------------------------------------------ live updates

    def _live_callback(self, control: Control, p: dict[str, Any]):
        """The optimiser's per-iteration callback that refreshes the live figure every
        ``live_every`` iterations (None when there are no widgets to refresh)."""
        if self._ui is None or not self.live_every:
            return None
        with self.figure.batch_update():
            self.figure.data[0].update(x=[], y=[])  # the traces stay: a fresh run, same layout

        def callback(it: int, trace, mel: torch.Tensor) -> None:
            if it % self.live_every == 0:
                self._update_live(trace.loss, control, mel[:1], p)

        return callback

    def _update_live(self, history: list[float], control: Control, mel: torch.Tensor, p) -> None:
        self._draw(history, control, mel)
        self.status.value = (f"{METHODS[p['method']]}: iteration {len(history)}/{p['iterations']}, "
                             f"loss {history[-1]:.4g}")

    def _draw(self, loss: list[float], control: Control, mel: torch.Tensor, name: str = "output",
              rebuild: bool = False) -> None:
        """Show the loss so far and the feature-vs-target view of ``mel``.

        A figure widget keeps the traces it was built with: when the view has the same traces
        (and axes) as the one on display, their data are updated in place; otherwise, or when
        ``rebuild``, a new widget replaces it. Adding or deleting traces of a displayed widget
        breaks any view that did not see those messages: after a browser reload the page gets
        the widget's state as built (``_widget_data``), and the next update's trace indices then
        point at the wrong traces ("indices must be valid indices for gd.data")."""
        view = self.feature_figure(control, {name: mel}, compact=True)
        traces = [_plain(tr.to_plotly_json()) for tr in view.data]
        for tr in traces:
            if tr["type"] == "heatmap":
                tr["showscale"] = False
        title = view.layout.title.text or name
        key = (tuple(tr["type"] for tr in traces), isinstance(control, StructureControl))
        loss_xy = dict(x=list(range(len(loss))), y=[float(v) for v in loss])
        fw = self.figure
        if rebuild or key != self._figure_key:
            self._set_figure(_live_figure(loss_xy, traces, title, reversed_y=key[1]), key)
            return
        with fw.batch_update():
            fw.data[0].update(loss_xy)
            for old, tr in zip(fw.data[1:], traces):
                old.update({k: tr[k] for k in ("x", "y", "z") if k in tr})
            fw.layout.annotations[1].text = title

    def _set_figure(self, figure: go.FigureWidget, key) -> None:
        """Display ``figure`` in place of the current live figure. The replaced one is closed at
        the start of the next run: the front end's answers to its last updates are still queued
        behind the running button click, and a closed widget would get them ("No such comm")."""
        old, self._figure, self._figure_key = self._figure, figure, key
        self._figure_box.children = (figure,)
        self._retired.append(old)

    def _close_retired(self) -> None:
        """Close the figure widgets replaced before this run."""
        while self._retired:
            self._retired.pop().close()

    def _show_output(self, out: PanelResult) -> None:
        """After a run: full loss curve, decoded output's view, spectrogram and audio.

        The figure is rebuilt with the final data, so that the widget state a reloaded page
        receives is the figure as drawn."""
        from IPython import get_ipython
        from IPython.display import clear_output, display

        tr = out.result.trace
        self._draw(tr.loss, out.control, out.result.x0[:1].cpu(), "decoded", rebuild=True)
        if get_ipython() is not None:  # a kernel to display into
            with self._output:
                clear_output(wait=True)
                display(out.figures["mel"], out.audio())
        self.status.value = f"{self._summary(out)}; measuring the audio ..."

    def _show_metrics(self, out: PanelResult) -> None:
        """The status line once the metrics on the audio are in."""
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in out.metrics.items())
        self.status.value = f"done: {self._summary(out, bold=True)}. {html.escape(metrics)}"

    @staticmethod
    def _summary(out: PanelResult, bold: bool = False) -> str:
        method = METHODS[out.params["method"]]
        return (f"{f'<b>{method}</b>' if bold else method}, {len(out.result.trace.loss)} iterations in "
                f"{out.result.seconds_total:.1f} s")

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

    # Parameters whose None is "" in their widget (a text box; a dropdown, whose value None
    # would select nothing and show blank).
    _NONE_AS_EMPTY = ("reference_path", "instrument")

    @classmethod
    def _widget_value(cls, name: str, v):
        return "" if v is None and name in cls._NONE_AS_EMPTY else v

    def widget_for(self, name: str, value):
        """The widget editing parameter ``name`` (subclasses add theirs; unknown ones get a
        widget by the value's type)."""
        import ipywidgets as W

        s, n = self.cfg.seconds, self.preset.data.n_heldout
        frame = self.cfg.hop_length / self.cfg.sample_rate

        def slider(cls, lo, hi, **kw):
            return cls(value=value, min=min(lo, value), max=max(hi, value), description=name, **kw)

        def low(name):  # a slider starts at the limits table's lower bound (PANEL_LIMITS)
            return LIMITS[PANEL_LIMITS[name]].lo

        make = {
            "control": lambda: W.Dropdown(options=self.CONTROLS, value=value, description=name),
            "method": lambda: W.Dropdown(options=[(v, k) for k, v in METHODS.items()], value=value,
                                         description=name),
            "shape": lambda: W.Dropdown(options=SHAPES, value=value, description=name),
            "instrument": lambda: W.Dropdown(options=self._instrument_options(self.values["method"]),
                                             value=value, description=name),
            "lo_db": lambda: slider(W.FloatSlider, -60.0, 0.0, step=1.0),
            "hi_db": lambda: slider(W.FloatSlider, -60.0, 0.0, step=1.0),
            "reference": lambda: slider(W.IntSlider, 0, n - 1),
            "gap": lambda: W.FloatRangeSlider(value=value, min=0.0, max=s, step=0.01, description=name),
            "overlap": lambda: slider(W.FloatSlider, frame, s - frame, step=0.01),
            "iterations": lambda: slider(W.IntSlider, low("iterations"), 300),
            "lr": lambda: W.FloatLogSlider(value=value, base=10, min=-3, max=0, description=name),
            "decode_steps": lambda: slider(W.IntSlider, low("decode_steps"), 8),
            "refine_last": lambda: slider(W.IntSlider, low("refine_last"), self.values["iterations"]),
            "teacher_steps": lambda: slider(W.IntSlider, low("teacher_steps"), 40),
            "w": lambda: slider(W.FloatSlider, low("w"), 5.0, step=0.25),
            "snapshot_every": lambda: slider(W.IntSlider, low("snapshot_every"), 50),
            "reg_weight": lambda: slider(W.FloatSlider, low("reg_weight"), 1.0, step=0.01),
            "seed": lambda: W.BoundedIntText(value=value, min=low("seed"), max=LIMITS["seed"].hi,
                                             description=name),
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
            if hasattr(w, "style") and w.style.has_trait("description_width"):
                w.style.description_width = "initial"  # the whole name ("snapshot_every")
            w.observe(lambda ch, name=name: self._on_change(name, ch["new"]), names="value")
        W.dlink((self._widgets["iterations"], "value"), (self._widgets["refine_last"], "max"))
        self._upload = W.FileUpload(accept=".wav,.flac,.ogg,.mp3", multiple=False,
                                    description="upload reference", layout=W.Layout(width="auto"))
        self._upload.observe(self._on_upload, names="value")
        self._button = W.Button(description="Run", button_style="primary", icon="play")
        self._button.on_click(self._on_click)
        self.status = W.HTML(value="Set the control and press Run.")
        self._output = W.Output()
        self._figure, self._figure_key, self._retired = _live_figure(dict(x=[], y=[])), None, []
        self._figure_box = W.VBox([self._figure])  # holds the live figure (replaced per view)
        wrap = W.Layout(flex_flow="row wrap")
        rows = [W.Box([w for k, w in self._widgets.items() if k not in self._contextual()], layout=wrap),
                W.Box([*(self._widgets[k] for k in self._contextual()), self._upload], layout=wrap),
                W.HBox([self._button, self.status]), self._figure_box, self._output]
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

    def _instrument_options(self, method: str) -> list[tuple[str, str]]:
        """The instrument dropdown's (label, value) pairs: unconditional, then the tags ``method``'s
        model knows (the six procedural timbres for a model trained before the GM families)."""
        return [("any (unconditional)", "")] + [(i, i) for i in self.instruments(method)]

    def _on_change(self, name: str, new) -> None:
        self.values[name] = None if (name in self._NONE_AS_EMPTY and new == "") else new
        if name in ("control", "method", "shape"):
            self._refresh_visibility()
        if name == "method":  # another model: offer the instrument tags it knows
            inst = self._widgets["instrument"]
            options = self._instrument_options(new)
            if [v for _, v in options] != [v for _, v in inst.options]:
                want = self._widget_value("instrument", self.values["instrument"])
                keep = want if want in [v for _, v in options] else ""  # else unconditional
                inst.options = options  # (may reset the value: set it again below)
                inst.value = keep
                self.values["instrument"] = keep or None

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
