"""The fit loop (exact resume, EMA, DDP) and checkpoint files (atomic, clear errors)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.config import NetConfig, TrainConfig
from ditto2_nb.core.train import fit
from ditto2_nb.diffusion import Denoiser, edm_loss

TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3,))
TAGS = torch.randint(1, 3, (32, 1), generator=torch.Generator().manual_seed(1))
# structured toy "mels": one of two smooth patterns (chosen by the tag) plus a little noise
_t = torch.linspace(0, 6.28, 16)
_patterns = torch.stack([torch.sin(_t * k)[None].repeat(8, 1) * 0.8 for k in (1, 3)])
DATA = _patterns[TAGS[:, 0] - 1] + 0.05 * torch.randn(32, 8, 16, generator=torch.Generator().manual_seed(0))


def loss_fn(model, gen, step):
    idx = torch.randint(len(DATA), (8,), generator=gen)
    return edm_loss(model, DATA[idx], TAGS[idx], gen, p_uncond=0.2)


def make_model():
    torch.manual_seed(0)
    return Denoiser(TINY)


CFG = TrainConfig(steps=6, batch_size=8, lr=1e-3, warmup=2, ckpt_every=3, ema_decay=0.5)


class Interrupt(Exception):
    pass


def test_resume_is_exact(tmp_path):
    ema_full, hist_full = fit(make_model(), loss_fn, CFG, tmp_path / "a.safetensors", meta={"x": 1},
                              progress=False)

    def stop(step, ema):
        if step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(make_model(), loss_fn, CFG, tmp_path / "b.safetensors", meta={"x": 1},
            after_step=stop, progress=False)
    assert ckpt.read_metadata(tmp_path / "b.safetensors")["step"] == 3
    ema_res, hist_res = fit(make_model(), loss_fn, CFG, tmp_path / "b.safetensors",
                            meta={"x": 1}, progress=False)
    assert hist_res.loss == pytest.approx(hist_full.loss, abs=1e-6)  # history kept to 6 decimals
    for a, b in zip(ema_full.model.parameters(), ema_res.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_reduces_loss(tmp_path):
    def held_loss(model):  # the same sigmas and noise before and after
        with torch.no_grad():
            return edm_loss(model, DATA.repeat(8, 1, 1), TAGS.repeat(8, 1),
                            torch.Generator().manual_seed(123)).item()

    model = make_model()
    before = held_loss(model)
    cfg = TrainConfig(steps=80, batch_size=8, lr=2e-3, warmup=5, ckpt_every=1000, ema_decay=0.9)
    ema, _ = fit(model, loss_fn, cfg, None, meta={}, progress=False)
    assert held_loss(ema.model) < 0.85 * before  # measured: 1.08 -> 0.79


def test_resume_refuses_other_config(tmp_path):
    fit(make_model(), loss_fn, CFG, tmp_path / "c.safetensors", meta={"x": 1}, progress=False)
    with pytest.raises(ckpt.CheckpointError, match="different configuration"):
        fit(make_model(), loss_fn, CFG, tmp_path / "c.safetensors", meta={"x": 2}, progress=False)


def test_nan_loss_is_reported(tmp_path):
    def bad(model, gen, step):
        return model(DATA[:2], 1.0).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(make_model(), bad, CFG, None, meta={}, progress=False)


def test_save_is_atomic_and_roundtrips(tmp_path):
    path = ckpt.save(tmp_path / "m.safetensors", {"w": torch.ones(3)}, {"cfg": {"a": [1, 2]}})
    tensors, meta = ckpt.read(path)
    assert meta["cfg"] == {"a": [1, 2]} and tensors["w"].tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.read(bad)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.read(tmp_path / "nope.safetensors")
    truncated = tmp_path / "trunc.safetensors"
    ckpt.save(truncated, {"w": torch.ones(1000)}, {})
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.read(truncated)


def test_mismatched_weights_give_clear_error(tmp_path):
    model = make_model()
    state = {k: v for k, v in model.state_dict().items() if "inp" not in k}
    with pytest.raises(ckpt.CheckpointError, match="does not match"):
        ckpt.load_state(model, state, "x.safetensors")


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch, torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_train_checkpoints import make_model, loss_fn
    from ditto2_nb.core.config import TrainConfig
    from ditto2_nb.core.train import fit
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup=1, ckpt_every=2)
    ema, hist = fit(make_model(), loss_fn, cfg, {ckpt!r}, meta={{}}, progress=False)
    flat = torch.cat([p.flatten() for p in ema.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks diverged"
    print("rank", dist.get_rank(), "ok", hist.loss[-1])
    dist.destroy_process_group()
""")


def test_ddp_two_processes_on_cpu(tmp_path):
    script = tmp_path / "ddp.py"
    path = tmp_path / "ddp.safetensors"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(path)))
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", str(script)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ok") == 2
    assert ckpt.read_metadata(path)["step"] == 4
