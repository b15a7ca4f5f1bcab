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
    dev = next(model.parameters()).device  # fit's device (CUDA where there is one)
    return edm_loss(model, DATA[idx].to(dev), TAGS[idx].to(dev), gen, p_uncond=0.2)


def make_model():
    torch.manual_seed(0)
    return Denoiser(TINY)


CFG = TrainConfig(steps=6, batch_size=8, lr=1e-3, warmup=2, ckpt_every=3, ema_decay=0.5)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_resume_is_exact(tmp_path, device):
    ema_full, hist_full = fit(make_model(), loss_fn, CFG, tmp_path / "a.safetensors", meta={"x": 1},
                              progress=False, device=device)

    def stop(step, ema):
        if step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(make_model(), loss_fn, CFG, tmp_path / "b.safetensors", meta={"x": 1},
            after_step=stop, progress=False, device=device)
    assert ckpt.read_metadata(tmp_path / "b.safetensors")["step"] == 3
    ema_res, hist_res = fit(make_model(), loss_fn, CFG, tmp_path / "b.safetensors",
                            meta={"x": 1}, progress=False, device=device)
    assert hist_res.loss == pytest.approx(hist_full.loss, abs=1e-6)  # history kept to 6 decimals
    for a, b in zip(ema_full.model.parameters(), ema_res.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_reduces_loss(tmp_path):
    def held_loss(model):  # the same sigmas and noise before and after
        dev = next(model.parameters()).device
        with torch.no_grad():
            return edm_loss(model, DATA.repeat(8, 1, 1).to(dev), TAGS.repeat(8, 1).to(dev),
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
        fit(make_model(), bad, CFG, None, meta={}, progress=False, device="cpu")


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
    from ditto2_nb.core.train import fit, leave_process_group
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup=1, ckpt_every=2)
    ema, hist = fit(make_model(), loss_fn, cfg, {ckpt!r}, meta={{}}, progress=False, device="cpu")
    flat = torch.cat([p.flatten() for p in ema.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks diverged"
    print("rank", dist.get_rank(), "ok", hist.loss[-1])
    leave_process_group()
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


DISTILL_DDP_SCRIPT = textwrap.dedent("""
    import copy, sys, torch, torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_train_checkpoints import TINY, TAGS, DATA
    from ditto2_nb.core.config import DistillConfig, TrainConfig
    from ditto2_nb.core.train import _dist_setup, fit, leave_process_group, unwrap
    from ditto2_nb.diffusion import Denoiser, edm_loss
    from ditto2_nb.distill import CTMModel, ConsistencyModel, cd_loss, ctm_terms, dsm_loss
    rank, world = _dist_setup()
    torch.manual_seed(0)
    teacher = Denoiser(TINY).eval().requires_grad_(False)
    dcfg = DistillConfig(n_grid=8, k_max=2, w=1.5)
    gen = lambda: torch.Generator().manual_seed(7 + rank)
    x0, tags = DATA[:6], TAGS[:6]
    for kind in ("cm", "ctm"):
        student = (ConsistencyModel if kind == "cm" else CTMModel).from_teacher(teacher)
        target = copy.deepcopy(student).requires_grad_(False)
        net = torch.nn.parallel.DistributedDataParallel(student)
        assert unwrap(net) is student
        if kind == "cm":  # the losses see the same student through the wrapper as without it
            a, b = (cd_loss(m, target, teacher, x0, tags, gen(), dcfg) for m in (net, student))
        else:
            ta, tb = (ctm_terms(m, target, teacher, x0, tags, gen(), dcfg) for m in (net, student))
            assert abs(ta["dsm_scale"] - tb["dsm_scale"]) < 1e-6 * tb["dsm_scale"], (ta, tb)
            a, b = ta["loss"], tb["loss"]
            da, db = (dsm_loss(m, x0, tags, gen(), teacher, dcfg) for m in (net, student))
            assert torch.equal(da, db), (da, db)
        assert torch.equal(a.detach(), b.detach()), (kind, a, b)
        del net  # no DDP reducer may outlive the process group (a crash at exit otherwise)

        def loss_fn(model, g, step, kind=kind, target=target):
            idx = torch.randint(len(DATA), (4,), generator=g)
            if kind == "cm":
                return cd_loss(model, target, teacher, DATA[idx], TAGS[idx], g, dcfg)
            t = ctm_terms(model, target, teacher, DATA[idx], TAGS[idx], g, dcfg)
            return t["loss"], {{"dsm_share": t["dsm_share"]}}

        cfg = TrainConfig(steps=2, batch_size=4, lr=1e-3, warmup=1, ckpt_every=2)
        ema, hist = fit(student, loss_fn, cfg, None, meta={{}}, progress=False, device="cpu")
        flat = torch.cat([p.flatten() for p in student.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        assert torch.equal(gathered[0], gathered[1]), kind + ": ranks diverged"
    print("rank", rank, "ok")
    leave_process_group()
""")


def _torchrun(args, port, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
         *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_ddp_distillation_losses_see_the_module_inside_the_wrapper(tmp_path):
    """The CM/CTM/DSM losses called with the DDP wrapper equal the same losses on the bare
    student (same draws), and a 2-process fit of each keeps the ranks' students identical."""
    script = tmp_path / "ddp_distill.py"
    script.write_text(DISTILL_DDP_SCRIPT.format(tests=str(Path(__file__).parent)))
    res = _torchrun([str(script)], 29519)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("ok") == 2


@pytest.mark.slow
def test_every_trainer_runs_data_parallel_from_the_cli(tmp_path):
    """docs/models.md's `torchrun --nproc_per_node N -m ditto2_nb.cli ...` for the teacher, both
    students and MiniCLAP (ci preset, gloo on CPU) exit 0 and write their model."""
    env = {"DITTO2_CACHE": str(tmp_path / "cache")}
    runs = {"teacher": ["train-teacher"], "ctm": ["distill", "--kind", "ctm", "--snapshots", "0"],
            "cm": ["distill", "--kind", "cm", "--snapshots", "0"], "clap": ["train-clap"]}
    for i, (name, args) in enumerate(runs.items()):
        out = tmp_path / f"{name}.safetensors"
        res = _torchrun(["-m", "ditto2_nb.cli", *args, "--preset", "ci", "--steps", "2", "--out", str(out),
                         "--work-dir", str(tmp_path / "work"), "--no-progress", "--device", "cpu"],
                        29521 + i, env)
        assert res.returncode == 0, f"{name}: {res.stderr[-3000:]}"
        assert ckpt.read_metadata(out)
