"""plotly figure builders. Each returns a ``go.Figure`` (never calls ``.show()``).

Mels are ``[n_mels, frames]`` (or ``[B, n_mels, frames]`` for grids) normalised to [-1, 1]; time
axes are in seconds when a :class:`~ditto2_nb.core.config.MelConfig` is given, else in frames.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..core.config import MelConfig

_MEL_COLORS = "Viridis"


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _time_axis(frames: int, cfg: MelConfig | None) -> np.ndarray:
    step = cfg.hop_length / cfg.sample_rate if cfg else 1.0
    return np.arange(frames) * step


def mel_heatmap(mel, title: str = "", cfg: MelConfig | None = None, height: int = 260) -> go.Figure:
    """One mel spectrogram ``[n_mels, frames]``."""
    m = _np(mel)
    fig = go.Figure(go.Heatmap(z=m, x=_time_axis(m.shape[-1], cfg), colorscale=_MEL_COLORS,
                               zmin=-1, zmax=1, colorbar=dict(title="norm. dB")))
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=40, b=40),
                      xaxis_title="seconds" if cfg else "frame", yaxis_title="mel bin")
    return fig


def mel_grid(mels, titles: list[str] | None = None, cols: int = 4, cfg: MelConfig | None = None,
             title: str = "", row_height: int = 170) -> go.Figure:
    """A grid of mels ``[B, n_mels, frames]`` with one shared colour scale; time (seconds, or frames
    without ``cfg``) along the bottom row, mel bin up the first column."""
    m = _np(mels)
    rows = (len(m) + cols - 1) // cols
    titles = titles or [f"#{i}" for i in range(len(m))]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t[:60] for t in titles],
                        horizontal_spacing=0.03, vertical_spacing=0.12 / max(rows, 1) + 0.04)
    x = _time_axis(m.shape[-1], cfg)
    for i, mel in enumerate(m):
        fig.add_trace(go.Heatmap(z=mel, x=x, colorscale=_MEL_COLORS, zmin=-1, zmax=1,
                                 showscale=i == 0, colorbar=dict(title="norm. dB")),
                      row=i // cols + 1, col=i % cols + 1)
    for i in range(len(m)):
        r, c = i // cols + 1, i % cols + 1
        last_in_column = i + cols >= len(m)
        fig.update_xaxes(title_text=("seconds" if cfg else "frame") if last_in_column else None,
                         row=r, col=c)
        fig.update_yaxes(title_text="mel bin" if c == 1 else None, row=r, col=c)
    fig.update_layout(title=title, height=row_height * rows + 80,
                      margin=dict(l=50, r=20, t=60, b=40))
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
    """Step through a sequence of mels ``[steps, n_mels, frames]`` with a slider (e.g. a denoising
    trajectory)."""
    m = _np(mels)
    x = _time_axis(m.shape[-1], cfg)
    fig = go.Figure(go.Heatmap(z=m[0], x=x, colorscale=_MEL_COLORS, zmin=-1, zmax=1))
    fig.frames = [go.Frame(data=[go.Heatmap(z=mel, x=x)], name=str(i)) for i, mel in enumerate(m)]
    steps = [dict(method="animate", label=lab,
                  args=[[str(i)], dict(mode="immediate", frame=dict(duration=0, redraw=True))])
             for i, lab in enumerate(labels)]
    fig.update_layout(title=title, height=330, xaxis_title="seconds" if cfg else "frame",
                      yaxis_title="mel bin", sliders=[dict(steps=steps, active=0,
                                                               currentvalue=dict(prefix=""))])
    return fig


# ============================================================================ noise optimisation

_PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")


def loss_trajectories(traces: dict, x: str = "iteration", title: str = "control loss",
                      log_y: bool = True) -> go.Figure:
    """Control loss of several optimisation runs ``{name: Trace}`` on one shared axis.

    ``x="iteration"`` compares progress per step; ``x="seconds"`` (cumulative wall time) compares
    cost, where DITTO-2's cheap iterations show. Iterations that backpropagated through the
    multi-step decode (decode-aware refinement) are marked with dots.
    """
    if x not in ("iteration", "seconds"):
        raise ValueError(f"x must be 'iteration' or 'seconds', got {x!r}")
    fig = go.Figure()
    for i, (name, tr) in enumerate(traces.items()):
        xs = np.arange(len(tr.loss)) if x == "iteration" else np.asarray(tr.seconds)
        refined = [bool(d) for d in (tr.through_decode or [False] * len(tr.loss))]
        fig.add_trace(go.Scatter(x=xs, y=tr.loss, name=name, mode="lines+markers",
                                 line=dict(color=_PALETTE[i % len(_PALETTE)]),
                                 marker=dict(size=[6 if r else 0 for r in refined])))
    fig.update_layout(title=title, height=330, xaxis_title="seconds" if x == "seconds" else "iteration",
                      yaxis_title="loss", yaxis_type="log" if log_y else "linear")
    return fig


def _rows(x) -> np.ndarray:
    """``[T]`` or ``[B, T]`` -> float ``[B, T]``."""
    a = _np(x).astype(float)
    return a[None] if a.ndim == 1 else a


def feature_vs_target(feature, target, cfg: MelConfig | None = None, names: list[str] | None = None,
                      title: str = "feature vs target", yaxis: str = "dB") -> go.Figure:
    """Per-frame feature curves ``[T]`` / ``[B, T]`` (solid) against their target(s) (dashed).

    ``target`` is ``[T]``, ``[1, T]`` (shared) or ``[B, T]`` (one per curve), e.g. an intensity
    curve in dB. Trace order: every feature, then every target.
    """
    f, y = _rows(feature), _rows(target)
    if f.shape[-1] != y.shape[-1]:
        raise ValueError(f"feature has {f.shape[-1]} frames but the target {y.shape[-1]}")
    names = names or ([f"#{i}" for i in range(len(f))] if len(f) > 1 else ["achieved"])
    t = _time_axis(f.shape[-1], cfg)
    fig = go.Figure()
    for i, row in enumerate(f):
        fig.add_trace(go.Scatter(x=t, y=row, name=names[i], mode="lines",
                                 line=dict(color=_PALETTE[i % len(_PALETTE)])))
    for i, row in enumerate(y):
        fig.add_trace(go.Scatter(x=t, y=row, name="target" if len(y) == 1 else f"target {names[i]}",
                                 mode="lines", line=dict(color="black" if len(y) == 1 else
                                                          _PALETTE[i % len(_PALETTE)], dash="dash")))
    fig.update_layout(title=title, height=320, xaxis_title="seconds" if cfg else "frame",
                      yaxis_title=yaxis)
    return fig


PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def chroma_vs_target(chroma, target, cfg: MelConfig | None = None,
                     title: str = "chroma vs target melody") -> go.Figure:
    """Chroma ``[12, T]`` as a heatmap with the target pitch class per frame ``[T]`` (-1 = rest,
    not drawn) overlaid as white dots. Two traces: the heatmap, then the target."""
    c, y = _np(chroma), _np(target).astype(float).reshape(-1)
    if c.shape != (12, y.shape[-1]):
        raise ValueError(f"chroma must be [12, T] with T = {y.shape[-1]} target frames, got {c.shape}")
    t = _time_axis(c.shape[-1], cfg)
    fig = go.Figure(go.Heatmap(z=c, x=t, y=list(PITCH_CLASSES), colorscale="Magma", zmin=0,
                               colorbar=dict(title="p")))
    labels = [PITCH_CLASSES[int(v)] if v >= 0 else None for v in y]
    fig.add_trace(go.Scatter(x=t, y=labels, mode="markers", name="target",
                             marker=dict(color="white", size=5, line=dict(color="black", width=1))))
    fig.update_layout(title=title, height=320, xaxis_title="seconds" if cfg else "frame",
                      yaxis_title="pitch class", showlegend=False)
    return fig


def ssm_pair(achieved, target, title: str = "self-similarity: achieved vs target",
             triangle: bool = False) -> go.Figure:
    """Achieved and target self-similarity matrices ``[S, S]`` side by side (two heatmaps).

    ``triangle=True`` packs both into one heatmap: achieved above the diagonal (and on it),
    target below (SSMs are symmetric, so nothing is lost).
    """
    a, y = _np(achieved), _np(target)
    if a.shape != y.shape or a.ndim != 2:
        raise ValueError(f"achieved {a.shape} and target {y.shape} must both be [S, S]")
    style = dict(colorscale="Blues", zmin=0, zmax=1)
    if triangle:
        fig = go.Figure(go.Heatmap(z=np.triu(a) + np.tril(y, -1), **style))
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(title=title + " (upper: achieved, lower: target)", height=340)
        return fig
    fig = make_subplots(rows=1, cols=2, subplot_titles=["achieved", "target"])
    fig.add_trace(go.Heatmap(z=a, **style), row=1, col=1)
    fig.add_trace(go.Heatmap(z=y, showscale=False, **style), row=1, col=2)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=340)
    return fig


def _snapshots(trace, example: int):
    """(iterations, z ``[K, D]``, mels ``[K, M, T]``) of one example of a trace's snapshots."""
    if not trace.snapshots:
        raise ValueError("the trace has no snapshots; run with OptimConfig(snapshot_every=N > 0)")
    its = [s[0] for s in trace.snapshots]
    z = np.stack([_np(s[1][example]).reshape(-1) for s in trace.snapshots])
    mels = np.stack([_np(s[2][example]) for s in trace.snapshots])
    return its, z, mels


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows ``[K, D]`` on their first two principal axes: (``[K, 2]``, explained variance
    ratio ``[2]``). Missing components (K < 3) are zero."""
    centred = x - x.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords, var = np.zeros((len(x), 2)), np.zeros(2)
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    total = (s**2).sum()
    var[:k] = (s[:k] ** 2) / total if total > 0 else 0.0
    return coords, var


def latent_evolution(trace, example: int = 0, title: str = "latent evolution of x_T") -> go.Figure:
    """How the optimised noise moves: left, the PCA path of the flattened z over the snapshot
    iterations (2-D); right, ``|z| / sqrt(D)`` per snapshot (1 = the norm of a typical Gaussian
    draw, dotted). Two traces: the path, then the norm."""
    its, z, _ = _snapshots(trace, example)
    coords, var = pca_2d(z)
    norm = np.linalg.norm(z, axis=1) / np.sqrt(z.shape[1])
    fig = make_subplots(rows=1, cols=2, subplot_titles=["PCA path of z", "|z| / sqrt(D)"])
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="lines+markers+text", name="z path",
                             text=[str(i) for i in its], textposition="top center",
                             marker=dict(color=its, colorscale="Viridis", size=8)), row=1, col=1)
    fig.add_trace(go.Scatter(x=its, y=norm, mode="lines+markers", name="|z| / sqrt(D)"), row=1, col=2)
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", row=1, col=2)
    fig.update_xaxes(title_text=f"PC1 ({var[0]:.0%})", row=1, col=1)
    fig.update_yaxes(title_text=f"PC2 ({var[1]:.0%})", row=1, col=1)
    fig.update_xaxes(title_text="iteration", row=1, col=2)
    fig.update_layout(title=title, height=340, showlegend=False)
    return fig


def decoded_slider(trace, example: int = 0, cfg: MelConfig | None = None,
                   title: str = "output at each snapshot") -> go.Figure:
    """The output mel at every snapshot iteration, with a slider (one frame per snapshot).

    The output is what the loss saw at that iteration: the full sampler for DITTO, the 1-step
    jump for DITTO-2 (the multi-step decode during refinement iterations).
    """
    its, _, mels = _snapshots(trace, example)
    return mel_slider(mels, [f"iteration {i}" for i in its], title=title, cfg=cfg)
