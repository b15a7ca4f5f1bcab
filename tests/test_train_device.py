"""Training on a device: ``fit(..., device=...)`` and every trainer's ``device`` / ``--device``.

Here on the CPU: a CPU run is deterministic and the same whichever way the CPU is named (and, on a
machine without CUDA, the default ``auto``); a "meta" device receives the model and the extra
modules; bad device names are refused naming the parameter. The CUDA run is benchmarks/gpu_check.py.
"""

from __future__ import annotations

import types

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ditto2_nb import cli
from ditto2_nb.core.config import NetConfig, TrainConfig
from ditto2_nb.core.train import fit, training_device
from ditto2_nb.diffusion import Denoiser, edm_loss
from ditto2_nb.diffusion.teacher import train_teacher

NO_CUDA = not torch.cuda.is_available()
TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3,))
DATA = torch.randn(16, 8, 16, generator=torch.Generator().manual_seed(0))
TAGS = torch.randint(0, 3, (16, 1), generator=torch.Generator().manual_seed(1))
CFG = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup=1, ckpt_every=3, ema_decay=0.5)


def make_model():
    torch.manual_seed(0)
    return Denoiser(TINY)


def loss_fn(model, gen, step):
    idx = torch.randint(len(DATA), (4,), generator=gen)
    return edm_loss(model, DATA[idx], TAGS[idx], gen, p_uncond=0.2)


def _teacher(tmp_path, name: str, **kw) -> dict[str, torch.Tensor]:
    out = train_teacher("ci", tmp_path / f"{name}.safetensors", steps=3, progress=False,
                        work_dir=tmp_path / name, **kw)
    return load_file(out)


def test_ci_teacher_on_the_cpu_is_deterministic_and_the_default_without_cuda(tmp_path):
    a = _teacher(tmp_path, "a", device="cpu")
    b = _teacher(tmp_path, "b", device=torch.device("cpu"))
    runs = [b] + ([_teacher(tmp_path, "auto")] if NO_CUDA else [])  # the default: "auto"
    for other in runs:
        assert a.keys() == other.keys()
        for k in a:
            assert torch.equal(a[k], other[k]), k
    floats = [v for v in a.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 and v.device.type == "cpu" for v in floats)


def test_fit_with_a_device_object_equals_the_plain_cpu_run():
    ema_a, hist_a = fit(make_model(), loss_fn, CFG, None, meta={}, progress=False, device="cpu")
    ema_b, hist_b = fit(make_model(), loss_fn, CFG, None, meta={}, progress=False,
                        device=torch.device("cpu"))
    assert hist_a.loss == hist_b.loss
    for p, q in zip(ema_a.model.parameters(), ema_b.model.parameters()):
        assert torch.equal(p, q)


class Reached(Exception):
    pass


def test_fit_moves_the_model_and_the_extra_modules_to_the_device():
    """A fake device ("meta": shapes without data) is accepted; the loss sees the model there."""
    model, target = make_model(), nn.Linear(2, 2)
    seen = {}

    def loss(net, gen, step):
        seen["model"] = {p.device.type for p in net.parameters()}
        seen["target"] = {p.device.type for p in target.parameters()}
        raise Reached

    with pytest.raises(Reached):
        fit(model, loss, CFG, None, meta={}, extra={"target": target}, progress=False, device="meta")
    assert seen == {"model": {"meta"}, "target": {"meta"}}
    assert training_device("meta") == torch.device("meta")
    assert training_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", ""])
def test_an_unknown_device_is_refused_naming_the_parameter(bad, tmp_path):
    with pytest.raises(ValueError, match=r"device=.*not a device torch knows"):
        fit(make_model(), loss_fn, CFG, None, meta={}, progress=False, device=bad)
    with pytest.raises(ValueError, match=r"^device="):  # before any data or training
        train_teacher("ci", tmp_path / "t.safetensors", steps=1, progress=False, work_dir=tmp_path,
                      device=bad)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        training_device("cuda")
    with pytest.raises(ValueError, match="--device='cuda:0': torch sees no CUDA GPU"):
        training_device("cuda:0", "--device")


def test_cli_device_flag_is_checked_and_defaults_to_auto(capsys):
    ap = cli.build_parser()
    commands = {"train-teacher": [], "distill": ["--kind", "ctm"], "train-clap": [],
                "compress": ["--source", "s.safetensors", "--channels", "8,16"], "train-vocoder": []}
    for command, args in commands.items():
        assert ap.parse_args([command, *args]).device == "auto"
        assert ap.parse_args([command, *args, "--device", "cpu"]).device == "cpu"
        with pytest.raises(SystemExit):
            ap.parse_args([command, *args, "--device", "gpu"])
        assert "--device='gpu' is not a device torch knows" in capsys.readouterr().err


def test_cli_passes_the_device_to_every_trainer(tmp_path, monkeypatch):
    """Each training command hands ``--device`` to its trainer (the trainers replaced by stubs)."""
    import ditto2_nb.audio.neural as neural
    import ditto2_nb.clap.training as clap_training
    import ditto2_nb.data as data
    import ditto2_nb.data.repertoire as repertoire
    import ditto2_nb.diffusion.teacher as teacher
    import ditto2_nb.distill.compress as compress
    import ditto2_nb.distill.train as distill

    got = {}

    def stub(name):
        def trainer(*args, **kw):
            got[name] = kw.get("device")
            return tmp_path / f"{name}.safetensors"
        return trainer

    monkeypatch.setattr(teacher, "train_teacher", stub("teacher"))
    monkeypatch.setattr(distill, "train_student", stub("distill"))
    monkeypatch.setattr(clap_training, "train_clap", stub("clap"))
    monkeypatch.setattr(compress, "compress_student", stub("compress"))
    monkeypatch.setattr(neural, "train_vocoder", stub("vocoder"))
    rendered = types.SimpleNamespace(waves=torch.zeros(1, 8).numpy(),
                                     summary=types.SimpleNamespace(renderer="stub", n_rendered=1))
    monkeypatch.setattr(repertoire, "render_repertoire", lambda *a, **k: rendered)
    monkeypatch.setattr(data, "generate_clips", lambda *a, **k: (torch.zeros(1, 8).numpy(), []))
    source = tmp_path / "source.safetensors"
    source.write_bytes(b"")
    common = ["--preset", "ci", "--work-dir", str(tmp_path / "work"), "--device", "cpu", "--no-progress"]
    for command, args in {"train-teacher": [], "distill": ["--kind", "ctm"], "train-clap": [],
                          "compress": ["--source", str(source), "--channels", "8,16"],
                          "train-vocoder": []}.items():
        cli.main([command, *args, *common, "--out", str(tmp_path / f"{command}.safetensors")])
    assert got == dict.fromkeys(("teacher", "distill", "clap", "compress", "vocoder"), "cpu")


# ----------------------------------------------------------------------------- on a CUDA machine


def _first_loss_and_weights(path) -> tuple[float, dict[str, torch.Tensor]]:
    from ditto2_nb.core import checkpoints as ckpt

    tensors, meta = ckpt.read(path)
    return meta["history"]["loss"][0], tensors


REFERENCE, DEVICE = "cpu", "cuda"  # (set both to "cpu" to try the test's logic without a GPU)


@pytest.mark.skipif(NO_CUDA and DEVICE == "cuda", reason="needs a CUDA GPU (the gpu_check machine)")
def test_every_trainer_trains_on_cuda_from_the_cpu_runs_draws(tmp_path):
    """Each trainer for two steps on "cuda" and on "cpu" (ci preset): the exported files are CPU
    float16 and finite either way, and the first step's loss agrees (the same batch and noise,
    drawn on the CPU generator; only the kernels differ)."""
    import json

    import numpy as np

    from ditto2_nb.audio.neural import train_vocoder
    from ditto2_nb.clap.training import train_clap
    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.distill.compress import compress_student
    from ditto2_nb.distill.students import decode_file
    from ditto2_nb.distill.train import train_student

    noise = np.random.default_rng(0).standard_normal((6, 16 * 256 * 2))
    waves = 0.1 * torch.from_numpy(noise.astype(np.float32))

    def runs(device, folder):
        w = tmp_path / folder
        kw = {"progress": False, "work_dir": w, "device": device}
        teacher = train_teacher("ci", w / "teacher.safetensors", steps=2, **kw)
        out = {"teacher": teacher}
        for kind in ("ctm", "cm"):
            out[kind] = train_student(kind, "ci", w / f"{kind}.safetensors", teacher_path=teacher, steps=2,
                                      **kw)
        out["clap_evaluator"] = train_clap("ci", True, w / "clap.safetensors", steps=2, **kw)
        out["vocoder"] = train_vocoder("ci", waves, w / "vocoder.safetensors", steps=2, **kw)
        decode_file(out["ctm"]).write_text(json.dumps({"weights_sha256": ckpt.sha256(out["ctm"]),
                                                       "decode": {"sigma_mid": 1.0}}))
        out["compress"] = compress_student(out["ctm"], (16, 24, 32), 1, w / "small.safetensors", preset="ci",
                                           steps=2, batch_size=4, jacobian_weight=0.5, **kw)
        return out

    cpu, cuda = runs(REFERENCE, "reference"), runs(DEVICE, "device")
    for name in cpu:
        loss_cpu, _ = _first_loss_and_weights(cpu[name])
        loss_cuda, weights = _first_loss_and_weights(cuda[name])
        assert loss_cuda == pytest.approx(loss_cpu, rel=2e-2), name
        for k, v in weights.items():
            assert v.device.type == "cpu", (name, k)
            assert not v.is_floating_point() or v.dtype == torch.float16, (name, k)
            assert torch.isfinite(v.float()).all(), (name, k)


@pytest.mark.skipif(NO_CUDA and DEVICE == "cuda", reason="needs a CUDA GPU")
def test_resume_on_cuda_restores_the_optimiser_onto_the_gpu(tmp_path):
    """Interrupted and resumed on CUDA: the same losses and weights as an uninterrupted CUDA run
    (to float tolerance: GPU kernels need not be bitwise reproducible)."""
    def loss(model, gen, step):
        idx = torch.randint(len(DATA), (4,), generator=gen)
        return edm_loss(model, DATA[idx].to(DEVICE), TAGS[idx].to(DEVICE), gen, p_uncond=0.2)

    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup=2, ckpt_every=3, ema_decay=0.5)
    full, hist_full = fit(make_model(), loss, cfg, tmp_path / "a.safetensors", meta={}, progress=False,
                          device=DEVICE)

    def stop(step, ema):
        if step == 4:
            raise Reached

    with pytest.raises(Reached):
        fit(make_model(), loss, cfg, tmp_path / "b.safetensors", meta={}, after_step=stop, progress=False,
            device=DEVICE)
    res, hist_res = fit(make_model(), loss, cfg, tmp_path / "b.safetensors", meta={}, progress=False,
                        device=DEVICE)
    assert hist_res.loss == pytest.approx(hist_full.loss, rel=1e-4)
    for p, q in zip(full.model.parameters(), res.model.parameters()):
        assert p.device.type == DEVICE
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
