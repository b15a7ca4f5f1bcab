"""Figure builders for the noise-optimisation chapters: trace counts, frames, axes, bad input."""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from ditto2_nb.core.config import MelConfig
from ditto2_nb.notebook.plots import (
    chroma_vs_target,
    decoded_slider,
    feature_vs_target,
    latent_evolution,
    loss_trajectories,
    pca_2d,
    ssm_pair,
)
from ditto2_nb.optimize import Trace

CFG = MelConfig(n_mels=8, frames=16)


def fake_trace(iterations=6, snapshot_every=2, batch=2, refine_last=0) -> Trace:
    """A trace whose z moves along a straight line and grows in norm."""
    g = torch.Generator().manual_seed(0)
    z0, step = torch.randn(batch, 8, 16, generator=g), torch.randn(batch, 8, 16, generator=g)
    tr = Trace()
    for it in range(iterations):
        tr.loss.append(1.0 / (it + 1))
        tr.seconds.append(0.1 * (it + 1))
        tr.through_decode.append(it >= iterations - refine_last)
        if it % snapshot_every == 0 or it == iterations - 1:
            tr.snapshots.append((it, z0 + it * step, torch.full((batch, 8, 16), it / iterations)))
    return tr


def test_loss_trajectories_share_an_axis():
    a, b = fake_trace(), fake_trace(iterations=4, refine_last=2)
    fig = loss_trajectories({"DITTO": a, "DITTO-2": b}, x="seconds")
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "seconds"
    np.testing.assert_allclose(fig.data[1].x, b.seconds)
    assert list(fig.data[1].marker.size) == [0, 0, 6, 6]  # refinement iterations are marked
    by_it = loss_trajectories({"a": a}, log_y=False)
    assert list(by_it.data[0].x) == list(range(6)) and by_it.layout.yaxis.type == "linear"
    with pytest.raises(ValueError, match="iteration"):
        loss_trajectories({"a": a}, x="steps")


def test_feature_vs_target_counts_curves_and_targets():
    t = torch.linspace(-30, -10, 16)
    assert len(feature_vs_target(t, t).data) == 2
    fig = feature_vs_target(torch.stack([t, t + 1]), t, CFG, names=["decoded", "surrogate"])
    assert [d.name for d in fig.data] == ["decoded", "surrogate", "target"]
    assert fig.data[2].line.dash == "dash"
    assert fig.data[0].x[1] == pytest.approx(CFG.hop_length / CFG.sample_rate)  # seconds
    assert len(feature_vs_target(torch.stack([t, t]), torch.stack([t, t])).data) == 4
    with pytest.raises(ValueError, match="frames"):
        feature_vs_target(t, t[:-1])


def test_chroma_vs_target_overlays_the_melody():
    chroma = torch.softmax(torch.randn(12, 16), 0)
    target = torch.tensor([0] * 4 + [-1] * 4 + [7] * 8)
    fig = chroma_vs_target(chroma, target, CFG)
    assert [d.type for d in fig.data] == ["heatmap", "scatter"]
    assert fig.data[1].y[0] == "C" and fig.data[1].y[4] is None and fig.data[1].y[-1] == "G"
    with pytest.raises(ValueError, match="12, T"):
        chroma_vs_target(chroma[:, :8], target)


def test_ssm_pair_side_by_side_and_packed():
    a, y = torch.rand(5, 5), torch.eye(5)
    fig = ssm_pair(a, y)
    assert [d.type for d in fig.data] == ["heatmap", "heatmap"]
    packed = ssm_pair(a, y, triangle=True).data[0].z
    assert len(ssm_pair(a, y, triangle=True).data) == 1
    assert packed[0][3] == pytest.approx(float(a[0, 3])) and packed[3][0] == 0.0
    with pytest.raises(ValueError, match="S, S"):
        ssm_pair(a, torch.eye(4))


def test_latent_evolution_path_and_norm():
    tr = fake_trace()
    fig = latent_evolution(tr, example=1)
    assert len(fig.data) == 2
    its = [s[0] for s in tr.snapshots]
    assert list(fig.data[0].text) == [str(i) for i in its] and list(fig.data[1].x) == its
    norms = [float(s[1][1].norm() / s[1][1].numel() ** 0.5) for s in tr.snapshots]
    np.testing.assert_allclose(fig.data[1].y, norms, rtol=1e-5)
    assert "PC1 (100%)" in fig.layout.xaxis.title.text  # a straight path is one component
    with pytest.raises(ValueError, match="snapshot_every"):
        latent_evolution(Trace(loss=[1.0]))


def test_pca_2d_handles_a_single_snapshot():
    coords, var = pca_2d(np.ones((1, 10)))
    assert coords.shape == (1, 2) and not coords.any() and not var.any()


def test_decoded_slider_has_one_frame_per_snapshot():
    tr = fake_trace()
    fig = decoded_slider(tr, cfg=CFG)
    assert len(fig.frames) == len(tr.snapshots) == 4
    assert [s.label for s in fig.layout.sliders[0].steps] == ["iteration 0", "iteration 2",
                                                               "iteration 4", "iteration 5"]
    np.testing.assert_allclose(fig.frames[-1].data[0].z, np.full((8, 16), 5 / 6), rtol=1e-6)


def test_mel_grid_labels_its_axes():
    """Time along the bottom of each column, mel bin up the first column, one colour bar."""
    from ditto2_nb.notebook.plots import mel_grid

    fig = mel_grid(torch.zeros(5, 8, 16), cols=3, cfg=CFG)
    layout = fig.layout
    axes = {name: layout[name] for name in layout if name.startswith(("xaxis", "yaxis"))}
    x_titled = sorted(n for n, a in axes.items() if n.startswith("x") and a.title.text == "seconds")
    y_titled = sorted(n for n, a in axes.items() if n.startswith("y") and a.title.text == "mel bin")
    # 5 panels in a 2 x 3 grid: panels 3, 4 end columns 1 and 2, panel 2 ends column 3
    assert x_titled == ["xaxis3", "xaxis4", "xaxis5"], x_titled
    assert y_titled == ["yaxis", "yaxis4"], y_titled
    assert sum(bool(t.showscale) for t in fig.data) == 1
    assert mel_grid(torch.zeros(2, 8, 16)).layout.xaxis.title.text == "frame"
