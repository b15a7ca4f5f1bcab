"""The control panel: the headless ``run`` for every control and method, the button and its live
figure, parameter checks with clear messages. On the ``ci`` preset (models train in seconds)."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from ditto2_nb.audio import save_audio
from ditto2_nb.data import generate_clips
from ditto2_nb.notebook.widgets import CONTROLS, METHODS, ControlPanel, PanelResult, method_model

FAST = dict(iterations=3, snapshot_every=2, teacher_steps=3)
# traces of the "feature" figure: DITTO-2 adds the surrogate's curve to the intensity plot
FEATURE_TRACES = {"intensity": 2, "melody": 2, "structure": 2, "inpaint": 2, "outpaint": 2, "loop": 1}


@pytest.fixture(scope="module")
def panel():
    return ControlPanel("ci", "cpu", live_every=2, **FAST)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("control", CONTROLS)
def test_run_every_control_and_method(panel, control, method):
    res = panel.run(control=control, method=method)
    assert isinstance(res, PanelResult) and res.control.name.startswith(control[:4])
    tr = res.result.trace
    assert len(tr.loss) == 3 and all(math.isfinite(v) for v in tr.loss)
    assert res.mel.shape == (panel.cfg.n_mels, panel.cfg.frames)
    assert res.wave.shape == (panel.cfg.n_samples,) and torch.isfinite(res.wave).all()
    assert set(res.control.evaluate(res.wave[None])) <= set(res.metrics)
    assert all(math.isfinite(v) for v in res.metrics.values())
    assert ("loss_surrogate" in res.metrics) == (method != "ditto")
    figs = res.figures
    assert set(figs) == {"loss", "feature", "mel", "latent", "snapshots"}
    assert len(figs["loss"].data) == 1 and len(figs["mel"].data) == 1 and len(figs["latent"].data) == 2
    extra = control == "intensity" and method != "ditto"
    assert len(figs["feature"].data) == FEATURE_TRACES[control] + extra
    assert len(figs["snapshots"].frames) == len(tr.snapshots) == 2  # iterations 0 and 2


def test_run_is_deterministic_by_seed_and_refines(panel):
    a = panel.run(method="ditto2-cm", seed=3, refine_last=1)
    b = panel.run(method="ditto2-cm", seed=3, refine_last=1)
    c = panel.run(method="ditto2-cm", seed=4)
    assert a.result.trace.loss == b.result.trace.loss and torch.equal(a.mel, b.mel)
    assert a.result.trace.loss != c.result.trace.loss
    assert a.result.trace.through_decode == [False, False, True]
    assert panel.values["seed"] == 0  # overrides do not change the panel's values


@pytest.mark.parametrize("method", ["ditto", "ditto2-ctm"])
def test_instrument_tags_condition_the_model(panel, method):
    plain = panel.run(method=method, iterations=1)
    tagged = panel.run(method=method, iterations=1, instrument="square")
    assert math.isfinite(tagged.metrics["loss_decoded"]) and not torch.equal(plain.mel, tagged.mel)


def test_models_are_loaded_once():
    assert method_model("ci", "ditto2-ctm") is method_model("ci", "ditto2-ctm")
    with pytest.raises(ValueError, match="ditto2-cm"):
        method_model("ci", "ditto3")


def test_references_from_a_file_and_the_intensity_of_a_clip(panel, tmp_path):
    waves, _ = generate_clips(1, 5, panel.cfg)
    path = save_audio(tmp_path / "ref.wav", waves[0][: panel.cfg.n_samples // 2], panel.cfg.sample_rate)
    res = panel.run(control="melody", reference_path=str(path))
    assert res.control.frames == panel.cfg.frames  # half a clip, zero-padded
    res = panel.run(control="intensity", shape="reference", reference=1)
    assert res.control.label == "reference"
    assert res.audio().data[:4] == b"RIFF"


def test_the_button_updates_the_figure_live(panel, monkeypatch):
    p = ControlPanel("ci", "cpu", live_every=1, control="melody", **FAST)
    assert len(p.figure.data) == 1 and len(p.figure.data[0].y) == 0
    calls = []
    update = p._update_live
    monkeypatch.setattr(p, "_update_live", lambda h, *a: (calls.append(len(h)), update(h, *a)))
    p.button.click()
    assert p.last_error is None, p.last_error
    assert calls == [1, 2, 3]  # refreshed during the optimisation, every iteration
    assert list(p.figure.data[0].y) == p.last_result.result.trace.loss
    assert [(d.type, d.xaxis) for d in p.figure.data[1:]] == [("heatmap", "x2"), ("scatter", "x2")]
    assert p.status.value.startswith("done") and "DITTO-2 (CTM)" in p.status.value
    assert "accuracy" in p.status.value
    p.inputs["control"].value = "structure"  # widget edits reach the values ...
    assert p.values["control"] == "structure"
    assert p.inputs["structure"].layout.display is None and p.inputs["shape"].layout.display == "none"
    p.set(method="ditto")  # ... and set() reaches the widgets
    assert p.inputs["method"].value == "ditto" and p.inputs["teacher_steps"].layout.display is None
    p.button.click()
    assert p.last_error is None and [d.type for d in p.figure.data] == ["scatter", "heatmap"]


def test_the_audio_is_shown_before_the_metrics_are_measured(monkeypatch):
    p = ControlPanel("ci", "cpu", **FAST)
    p.ui  # noqa: B018 - the widgets exist
    events = []
    show, measure = p._show_output, p.measure
    monkeypatch.setattr(p, "_show_output", lambda out: (events.append(("shown", p.status.value)), show(out)))
    monkeypatch.setattr(p, "measure",
                        lambda *a: (events.append(("measured", p.status.value)), measure(*a))[1])
    res = p.run()
    assert [e[0] for e in events] == ["shown", "measured"]
    assert "measuring the audio" in events[1][1] and p.status.value.startswith("done")
    assert 0 < res.seconds["audio_ready"] <= res.seconds["done"]
    assert set(res.control.evaluate(res.wave[None])) <= set(res.metrics)


def _arrays(obj, path=()):
    """Paths of the numpy arrays inside plotly properties (dicts and lists)."""
    if isinstance(obj, np.ndarray):
        return [path]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return [q for k, v in items for q in _arrays(v, (*path, k))]


def _front_end_delta(trace) -> dict:
    """The trace delta the plotly front end sends back after drawing ``trace`` (``Ox(fullData,
    data)`` in plotly's widgetbundle.js): the defaults it filled in (nested dicts) and every array
    property it holds as a typed array, as a numpy array sent from Python becomes, which compares
    unequal to the data's copy and comes back as ``{"0": v0, "1": v1, ...}`` (seen in JupyterLab 4
    with Chromium for the live heatmap's ``x``)."""
    delta = {"uid": trace.uid, "visible": True, "legendgrouptitle": {"text": ""},
             "hoverlabel": {"namelength": 15, "font": {"family": "Arial, sans-serif", "size": 13}}}
    for k, v in trace._props.items():
        if isinstance(v, np.ndarray) and v.ndim == 1:
            delta[k] = {str(i): float(x) for i, x in enumerate(v)}
    return delta


@pytest.mark.parametrize("control", CONTROLS)
def test_front_end_trace_deltas_reach_the_live_figure_cleanly(control):
    """The front end answers every live update with a trace delta; plotly's handler must take it
    without an exception (numpy arrays in the traces made it raise "The truth value of an array
    ... is ambiguous" in the kernel on every heatmap update)."""
    p = ControlPanel("ci", "cpu", live_every=1, control=control, **FAST)
    p.button.click()
    assert p.last_error is None, p.last_error
    fw = p.figure
    assert [q for t in fw.data for q in _arrays(t._props)] == []
    fw._js2py_traceDeltas = {"trace_deltas": [_front_end_delta(t) for t in fw.data],
                             "trace_edit_id": fw._last_trace_edit_id}
    assert fw._js2py_traceDeltas is None  # handled
    assert all(t._prop_defaults["hoverlabel"]["namelength"] == 15 for t in fw.data)


def test_the_live_figure_keeps_its_traces_and_a_reload_sees_them(monkeypatch):
    """A figure widget's traces are never added, deleted or moved once it exists (a view that
    missed those messages, e.g. after a browser reload, got "indices must be valid indices for
    gd.data" and drew the loss curve as a heatmap): a different view builds a new widget, and
    the state a reloaded page receives (``_widget_data``) is the figure as drawn."""
    sent = []
    for name in ("_send_addTraces_msg", "_send_deleteTraces_msg", "_send_moveTraces_msg"):
        monkeypatch.setattr(go.FigureWidget, name, lambda self, *a, name=name: sent.append(name))
    p = ControlPanel("ci", "cpu", live_every=1, control="melody", **FAST)
    first = p.figure
    assert [t["type"] for t in first._widget_data] == ["scatter"]
    melody = ["scatter", "heatmap", "scatter"]  # loss | chroma, target
    for control, types in (("melody", melody), ("structure", ["scatter", "heatmap"]),
                           ("intensity", ["scatter"] * 3), ("melody", melody)):
        p.set(control=control)
        p.button.click()
        assert p.last_error is None, p.last_error
        fw = p.figure
        assert [t.type for t in fw.data] == types
        state = fw._widget_data
        assert [t["type"] for t in state] == types and state[0]["y"] == p.last_result.result.trace.loss
        assert p.figure in p.ui.children[3].children  # the one on display
    assert sent == []
    assert first.comm is None  # replaced widgets are closed (at the start of the next run)
    assert fw.comm is not None and all(w.comm is not None for w in p._retired)


def test_dropdowns_show_a_label_for_none_and_labels_fit():
    p = ControlPanel("ci", "cpu", **FAST)
    inst = p.inputs["instrument"]
    assert p.values["instrument"] is None and inst.label == "any (unconditional)" and inst.index == 0
    inst.value = "square"
    assert p.values["instrument"] == "square"
    p.set(instrument=None)
    assert inst.label == "any (unconditional)" and p.values["instrument"] is None
    assert p.resolve()["instrument"] is None
    for name, w in p.inputs.items():  # descriptions take the width they need ("snapshot_every")
        assert w.style.description_width == "initial", name
        assert w.description == name


def test_the_instrument_choices_are_the_models_vocabulary(panel):
    from ditto2_nb.data import INSTRUMENTS, TAG_FIELDS

    # ci models are trained by this code: every class, the GM families included
    assert panel.choices()["instrument"] == (None, *TAG_FIELDS["instrument"])
    # the shipped laptop models (tag_vocab (7, ...)) know the six procedural timbres only, read from
    # their files' metadata without loading them
    laptop = ControlPanel("laptop", "cpu")
    for method in METHODS:
        assert laptop.choices(method)["instrument"] == (None, *INSTRUMENTS)
    assert [v for _, v in laptop.inputs["instrument"].options] == ["", *INSTRUMENTS]
    with pytest.raises(ValueError, match=r"instrument='piano' is not valid; choose one of \[None, 'sine'.*"
                                         r"the DITTO-2 \(CTM\) model of preset 'laptop'"):
        laptop.resolve(instrument="piano")


def test_the_instrument_dropdown_follows_the_method(monkeypatch):
    from ditto2_nb.data import INSTRUMENTS, TAG_FIELDS

    p = ControlPanel("ci", "cpu", **FAST)
    monkeypatch.setattr(p, "instruments",  # as if DITTO's teacher were an older, 7-class one
                        lambda m: INSTRUMENTS if m == "ditto" else TAG_FIELDS["instrument"])
    p.set(method="ditto2-ctm")
    inst = p.inputs["instrument"]
    p.set(instrument="strings")
    assert inst.value == "strings" and "strings" in [v for _, v in inst.options]
    p.inputs["method"].value = "ditto"  # this model does not know "strings": back to unconditional
    assert [v for _, v in inst.options] == ["", *INSTRUMENTS]
    assert inst.value == "" and p.values["instrument"] is None
    p.set(method="ditto2-cm", instrument="brass")  # the method first, whatever the order given
    assert inst.value == "brass" and p.values["instrument"] == "brass"
    p.set(instrument="organ", method="ditto")
    assert inst.value == "organ" and p.values["method"] == "ditto"


def test_the_button_reports_errors_in_the_panel():
    p = ControlPanel("ci", "cpu", **FAST)
    p.inputs["lo_db"].value = -5.0  # above hi_db = -10
    p.button.click()
    assert isinstance(p.last_error, ValueError) and "lo_db" in p.status.value
    assert not p.button.disabled


@pytest.mark.parametrize("overrides, match", [
    (dict(iters=5), r"unknown parameter\(s\) \['iters'\]; valid parameters are .*'iterations'"),
    (dict(control="pitch"), r"control='pitch' is not valid; choose one of \['intensity'"),
    (dict(method="DITTO-2"), r"choose one of \['ditto', 'ditto2-cm', 'ditto2-ctm'\]"),
    (dict(shape="zigzag"), "ramp_up"),
    (dict(instrument="kazoo"), "sine"),
    (dict(iterations=-1), r"iterations=-1 is out of range; allowed: >= 0"),
    (dict(iterations=2.5), "iterations must be an integer"),
    (dict(lr=-0.1), "lr=-0.1 is out of range; allowed: > 0"),
    (dict(lr=float("nan")), "lr=nan is out of range"),
    (dict(refine_last=9), r"refine_last=9 is out of range; allowed: \[0, 3\]"),
    (dict(lo_db=-5.0), "lo_db"),
    (dict(structure="AxB"), "unknown letter"),
    (dict(gap=(0.5, 9.0)), "beyond the clip"),
    (dict(gap=(0.6, 0.2)), "start < end"),
    (dict(overlap=0.0), "overlap must be between one frame"),
    (dict(reference_path="/no/such.wav"), "not an audio file"),
    (dict(seed=-1), "seed"),
])
def test_bad_overrides_are_clear(panel, overrides, match):
    with pytest.raises(ValueError, match=match):
        panel.run(**overrides)


def test_bad_reference_index_and_constructor_arguments(panel):
    with pytest.raises(ValueError, match=r"32 held-out clips \(0..31\)"):
        panel.run(control="melody", reference=32)
    with pytest.raises(ValueError, match="unknown preset"):
        ControlPanel("huge")
    with pytest.raises(ValueError, match="iterations"):
        ControlPanel("ci", iterations=-3)


@pytest.mark.parametrize("method", ["ditto", "ditto2-ctm"])
def test_baseline_is_the_unoptimised_output(panel, method):
    """Before/after: the baseline measures the seed's noise decoded without optimisation, and
    optimising improves on it."""
    kw = dict(control="intensity", method=method, iterations=15, lr=0.1, teacher_steps=4, seed=3)
    before = panel.baseline(**kw)
    after = panel.run(**kw).metrics
    assert set(before) == {"mse_db2"}
    assert after["mse_db2"] < before["mse_db2"]
    assert panel.baseline(**kw) == before  # deterministic


@pytest.mark.parametrize("method", ["ditto", "ditto2-ctm"])
def test_zero_iterations_run_is_the_baseline(panel, method):
    """iterations=0 is allowed wherever iterations are (the limits table; OptimConfig's "decode of
    z0"): the panel runs it, and it measures what the baseline measures."""
    kw = dict(control="intensity", method=method, iterations=0, teacher_steps=4, seed=3)
    res = panel.run(**kw)
    assert res.result.trace.loss == [] and "loss_last_iteration" not in res.metrics
    assert res.metrics["mse_db2"] == pytest.approx(panel.baseline(**kw)["mse_db2"])


def test_text_panel_steers_the_unconditional_student():
    from ditto2_nb.notebook.widgets import TextPanel

    tp = TextPanel("ci", "cpu", live_every=0, **{**FAST, "iterations": 8, "refine_last": 2})
    res = tp.run(prompt="a fast, loud square-wave melody with drums")
    assert not tp.model("ditto2-ctm").cfg.conditional
    assert res.result.trace.loss[-1] < res.result.trace.loss[0]
    assert {"clap_score", "self_score"} <= set(res.metrics) and -1 <= res.metrics["clap_score"] <= 1
    for bad, match in (({"prompt": "  "}, "empty string"), ({"prompt": 3}, "prompt must be one string"),
                       ({"instrument": "organ"}, "unconditional model")):
        with pytest.raises(ValueError, match=match):
            tp.run(**bad)
