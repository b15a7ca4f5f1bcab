"""plotly figure builders. Each returns a ``go.Figure`` (never calls ``.show()``).

Mels are ``[M, T]`` (or ``[B, M, T]`` for grids) normalised to [-1, 1]; time axes are in seconds
when a :class:`~ditto2_nb.config.MelConfig` is given, else in frames.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .config import MelConfig

_MEL_COLORS = "Viridis"


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _time_axis(frames: int, cfg: MelConfig | None) -> np.ndarray:
    step = cfg.hop_length / cfg.sample_rate if cfg else 1.0
    return np.arange(frames) * step


def mel_heatmap(mel, title: str = "", cfg: MelConfig | None = None, height: int = 260) -> go.Figure:
    """One mel spectrogram ``[M, T]``."""
    m = _np(mel)
    fig = go.Figure(go.Heatmap(z=m, x=_time_axis(m.shape[-1], cfg), colorscale=_MEL_COLORS,
                               zmin=-1, zmax=1, colorbar=dict(title="norm. dB")))
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=40, b=40),
                      xaxis_title="seconds" if cfg else "frame", yaxis_title="mel bin")
    return fig


def mel_grid(mels, titles: list[str] | None = None, cols: int = 4, cfg: MelConfig | None = None,
             title: str = "", row_height: int = 170) -> go.Figure:
    """A grid of mels ``[B, M, T]`` with one shared colour scale."""
    m = _np(mels)
    rows = (len(m) + cols - 1) // cols
    titles = titles or [f"#{i}" for i in range(len(m))]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t[:60] for t in titles],
                        horizontal_spacing=0.03, vertical_spacing=0.12 / max(rows, 1) + 0.04)
    x = _time_axis(m.shape[-1], cfg)
    for i, mel in enumerate(m):
        fig.add_trace(go.Heatmap(z=mel, x=x, colorscale=_MEL_COLORS, zmin=-1, zmax=1,
                                 showscale=i == 0), row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(title=title, height=row_height * rows + 60,
                      margin=dict(l=30, r=20, t=60, b=30))
    fig.update_annotations(font_size=10)
    return fig


def smooth(values, window: int = 25) -> np.ndarray:
    """Trailing moving average (same length; the first points average what exists)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_curve(histories: dict[str, dict], title: str = "training loss", window: int = 25,
               log_y: bool = True, x: str = "step") -> go.Figure:
    """Raw (faint) and smoothed loss per step for one or more histories ``{name: {step, loss}}``."""
    fig = go.Figure()
    for name, h in histories.items():
        xs = h[x]
        fig.add_trace(go.Scatter(x=xs, y=h["loss"], mode="lines", opacity=0.25,
                                 name=f"{name} (raw)", showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=smooth(h["loss"], window), mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title="loss", height=320,
                      yaxis_type="log" if log_y else "linear")
    return fig


def lines(x, ys: dict[str, list], title: str = "", xaxis: str = "", yaxis: str = "",
          log_x: bool = False, log_y: bool = False, markers: bool = True) -> go.Figure:
    """Several named curves over a shared x."""
    fig = go.Figure()
    for name, y in ys.items():
        fig.add_trace(go.Scatter(x=_np(x), y=_np(y), name=name,
                                 mode="lines+markers" if markers else "lines"))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=340,
                      xaxis_type="log" if log_x else "linear",
                      yaxis_type="log" if log_y else "linear")
    return fig


def mel_slider(mels, labels: list[str], title: str = "", cfg: MelConfig | None = None) -> go.Figure:
    """Step through a sequence of mels ``[S, M, T]`` with a slider (e.g. a denoising trajectory)."""
    m = _np(mels)
    x = _time_axis(m.shape[-1], cfg)
    fig = go.Figure(go.Heatmap(z=m[0], x=x, colorscale=_MEL_COLORS, zmin=-1, zmax=1))
    fig.frames = [go.Frame(data=[go.Heatmap(z=mel, x=x)], name=str(i)) for i, mel in enumerate(m)]
    steps = [dict(method="animate", label=lab,
                  args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
             for i, lab in enumerate(labels)]
    fig.update_layout(title=title, height=330, sliders=[dict(steps=steps, active=0,
                                                               currentvalue=dict(prefix=""))])
    return fig
