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

Subclassing (e.g. a text panel): extend ``CONTROLS``, ``DEFAULTS`` and ``SHOWN`` and register a
builder ``builder(panel, params) -> Control`` under the control's name in ``BUILDERS`` (a plain
dict: ``{**ControlPanel.BUILDERS, "text": build_text}``); parameters without a dedicated widget get
a plain text/number/checkbox widget.

Modules, one role each: :mod:`.params` (validation), :mod:`.models` (the model cache),
:mod:`.builders` (building the control), :mod:`.running` (optimise, baseline, measure),
:mod:`.figures`, :mod:`.layout` (the widgets and live updates) and :mod:`.panel` (the two panels).
"""

from .builders import BUILDERS, CONTROLS, SHAPES
from .models import METHODS, method_model
from .panel import ControlPanel, TextPanel
from .running import PanelResult

__all__ = ["BUILDERS", "CONTROLS", "METHODS", "SHAPES", "ControlPanel", "PanelResult", "TextPanel",
           "method_model"]
