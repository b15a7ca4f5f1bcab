"""Bad input at the public entry points gets a clear error naming the parameter (or file), its
value and what is allowed; nothing is silently wrong (issue: every bad input gets a clear error)."""

import math
import subprocess
import sys
import warnings

import pytest
import torch

from ditto2_nb.audio import GriffinLimVocoder, clipped_fraction, load_audio, save_audio
from ditto2_nb.controls.melody import pitch_classes_from_mel
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.config import MelConfig, NetConfig, to_dict
from ditto2_nb.diffusion import Denoiser, load_denoiser
from ditto2_nb.distill import ConsistencyModel, CTMModel, load_student, student_decode
from ditto2_nb.optimize import OptimConfig, ditto, ditto2

TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3,))


def teacher():
    torch.manual_seed(0)
    t = Denoiser(TINY)
    for p in t.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return t.eval().requires_grad_(False)


def level(mel):
    return mel.mean(dim=(1, 2)) ** 2


Z = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
TAGS = torch.tensor([[1], [2]])
FAST = OptimConfig(iterations=2, snapshot_every=0)


# ----------------------------------------------------------------------------- 1. numbers


@pytest.mark.parametrize("kw, words", [
    (dict(iterations=-1), "iterations=-1"), (dict(lr=float("nan")), "lr=nan"), (dict(lr=-0.1), "lr=-0.1"),
    (dict(iterations=5, refine_last=6), "refine_last=6"), (dict(trust_radius=-1.0), "trust_radius"),
    (dict(iterations=2.5), "iterations must be an integer"), (dict(patience=-2), "patience=-2"),
])
def test_optim_config_ranges(kw, words):
    with pytest.raises((ValueError, TypeError), match=words.replace("(", r"\(")):
        OptimConfig(**kw)


@pytest.mark.parametrize("kw, words", [
    (dict(decode_steps=0), "decode_steps=0"), (dict(gamma=2.0), r"gamma=2.0 .*\[0, 1\]"),
    (dict(sigma_mid=-5.0), r"sigma_mid=-5.0 .*\(0.002, 80\)"), (dict(decode_seed=-1), "seed=-1"),
])
def test_ditto2_decode_settings(kw, words):
    st = CTMModel.from_teacher(teacher()).eval().requires_grad_(False)
    with pytest.raises(ValueError, match=words):
        ditto2(st, level, Z, TAGS, cfg=FAST, **kw)


@pytest.mark.parametrize("kind", [ConsistencyModel, CTMModel])
def test_student_decode_needs_a_step(kind):
    st = kind.from_teacher(teacher()).eval()
    with pytest.raises(ValueError, match="decode steps=0"):  # CTM used to return x_T itself
        student_decode(st, Z * 80, 0, TAGS)


@pytest.mark.parametrize("kw, words", [
    (dict(steps=0), "steps=0"), (dict(w=float("nan")), "w=nan"),
    (dict(sampler="fast"), "unknown sampler 'fast'"),
])
def test_ditto_settings(kw, words):
    with pytest.raises(ValueError, match=words):
        ditto(teacher(), level, Z, TAGS, cfg=FAST, **kw)


# ----------------------------------------------------------------------------- 2. shapes, dtypes


@pytest.mark.parametrize("z, err, words", [
    (torch.randn(1, 32, 16), ValueError, "32 mel bins.*n_mels=8"),
    (torch.randn(1, 8, 15), ValueError, "frames=15.*multiple of 2"),
    (torch.zeros(1, 8, 16, dtype=torch.int64), TypeError, "floating-point"),
    (torch.randn(8, 16), ValueError, r"\[B, n_mels, frames\]"),
])
def test_noise_shape_and_dtype(z, err, words):
    with pytest.raises(err, match=words):
        ditto2(CTMModel.from_teacher(teacher()).eval(), level, z, None, cfg=FAST)


def test_float64_and_float16_noise_are_cast():
    st = CTMModel.from_teacher(teacher()).eval().requires_grad_(False)
    ref = ditto2(st, level, Z[:1], TAGS[:1], cfg=FAST)
    for dtype in (torch.float64, torch.float16):
        r = ditto2(st, level, Z[:1].to(dtype), TAGS[:1], cfg=FAST)
        assert r.x0.dtype == torch.float32 and r.x0.shape == ref.x0.shape


@pytest.mark.parametrize("tags, err, words", [
    (torch.tensor([[1.0], [2.0]]), TypeError, "integer class indices"),
    (torch.tensor([[1], [2], [1]]), ValueError, "batch 3 but the noise has batch 2"),
    (torch.tensor([[7], [1]]), ValueError, "outside the vocabulary"),
    (torch.tensor([[1, 1], [2, 2]]), ValueError, "2 fields; the model expects 1"),
])
def test_tags_checked_against_the_model(tags, err, words):
    with pytest.raises(err, match=words):
        ditto2(CTMModel.from_teacher(teacher()).eval(), level, Z, tags, cfg=FAST)


# ----------------------------------------------------------------------------- 3. checkpoint kinds


def _save_student(path, kind="cm", nan=False, net=None):
    st = (ConsistencyModel if kind == "cm" else CTMModel).from_teacher(teacher())
    tensors = dict(st.state_dict())
    if nan:
        k = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[k] = tensors[k].clone().fill_(float("nan"))
    return ckpt.save(path, tensors, {"kind": f"{kind}_ci", "student": kind, "net": net or to_dict(st.cfg)})


def test_a_student_file_is_not_a_teacher(tmp_path):
    path = _save_student(tmp_path / "cm.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="not a teacher"):
        load_denoiser(path)
    assert isinstance(load_student(path), ConsistencyModel)


def test_nan_weights_are_refused(tmp_path):
    path = _save_student(tmp_path / "nan.safetensors", nan=True)
    with pytest.raises(ckpt.CheckpointError, match="NaN/inf weights"):
        load_student(path)


def test_tampered_sigma_range_is_refused(tmp_path):
    net = to_dict(CTMModel.from_teacher(teacher()).cfg) | {"sigma_max": -5.0}
    path = _save_student(tmp_path / "bad.safetensors", "ctm", net=net)
    with pytest.raises(ckpt.CheckpointError, match="sigma_max"):
        load_student(path)


# ----------------------------------------------------------------------------- 4. the right cause


def test_nan_weights_in_memory_blame_the_weights_not_the_learning_rate():
    t = teacher()
    next(t.parameters()).data.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="before any update.*not the learning rate"):
        ditto(t, level, Z, TAGS, steps=2, cfg=FAST)


def test_cli_checks_paths_before_training(tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    for args, words in ((["--out", str(tmp_path)], "is a directory"),
                        (["--work-dir", str(afile)], "is a file, not a directory"),
                        (["--teacher", str(tmp_path / "none.safetensors")], "no such file")):
        cmd = [sys.executable, "-m", "ditto2_nb.cli", "distill", "--kind", "cm", "--preset", "ci", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and words in res.stderr, res.stderr[-500:]


def test_cli_compress_names_its_bad_arguments(tmp_path):
    afile = tmp_path / "a.safetensors"
    afile.write_text("x")
    for args, words in ((["--source", str(tmp_path / "none.safetensors")], "no such file"),
                        (["--source", str(afile), "--channels", "64,x"], "comma-separated integers"),
                        (["--source", str(afile), "--out", str(tmp_path)], "is a directory"),
                        (["--source", str(afile), "--init", str(tmp_path / "no.safetensors")], "--init"),
                        (["--source", str(afile), "--jacobian-weight", "-1"], "--jacobian-weight must be"),
                        (["--source", str(afile), "--lr", "0"], "--lr must be positive"),
                        (["--source", str(afile), "--init", str(afile), "--from-source"], "not both")):
        channels = [] if "--channels" in args else ["--channels", "8"]
        cmd = [sys.executable, "-m", "ditto2_nb.cli", "compress", "--preset", "ci", *channels, *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and words in res.stderr, res.stderr[-500:]


# ----------------------------------------------------------------------------- 5. silent acceptance


def test_silent_melody_reference_is_refused():
    cfg = MelConfig()
    with pytest.raises(ValueError, match="silent"):
        pitch_classes_from_mel(torch.full((1, cfg.n_mels, cfg.frames), -1.0), cfg)


def test_loud_audio_files_warn_and_clipping_on_save_warns(tmp_path):
    import soundfile as sf

    sf.write(str(tmp_path / "loud.wav"), (10 * torch.sin(torch.arange(16000) * 0.1)).numpy(), 16000,
             subtype="FLOAT")
    with pytest.warns(UserWarning, match="peak amplitude 10"):
        load_audio(tmp_path / "loud.wav", 16000)
    with pytest.warns(UserWarning, match="clipped at"):
        save_audio(tmp_path / "out.wav", 2 * torch.sin(torch.arange(1600) * 0.1), 16000)


# ----------------------------------------------------------------------------- 6. temp files


def test_stale_temps_are_cleaned_and_save_leaves_one_file(tmp_path):
    target = tmp_path / "m.safetensors"
    (tmp_path / "m.safetensors.k1LL3d.tmp").write_bytes(b"")  # what a killed save leaves
    ckpt.save(target, {"w": torch.ones(3)}, {"kind": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    torch.testing.assert_close(ckpt.read(target)[0]["w"], torch.ones(3))


# ----------------------------------------------------------------------------- the vocoder never clips


def test_loud_mel_is_not_clipped_and_quiet_is_untouched():
    cfg = MelConfig()
    voc = GriffinLimVocoder(cfg)
    loud = voc(torch.full((1, cfg.n_mels, cfg.frames), 0.9))
    assert clipped_fraction(loud) < 1e-3 and float(loud.abs().max()) <= voc.ceiling + 1e-6
    assert voc.last_gain_db[0] < -1.0  # it was scaled down, and says by how much
    quiet_mel = torch.full((1, cfg.n_mels, cfg.frames), -0.6)
    quiet = voc(quiet_mel)
    assert voc.last_gain_db == [0.0] and float(quiet.abs().max()) < voc.ceiling
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        assert math.isfinite(clipped_fraction(quiet))


@pytest.mark.parametrize("kw, words", [
    (dict(n=0), "n=0"), (dict(frames=15), "frames=15 must be a multiple of 2"), (dict(steps=0), "steps=0"),
    (dict(w=-1.0), "w=-1.0"), (dict(seed=-3), "seed=-3"), (dict(tags=torch.tensor([[9]])), "vocabulary"),
])
def test_generate_checks_its_arguments(kw, words):
    from ditto2_nb.diffusion import generate

    args = dict(n=1, frames=16, steps=2) | kw
    with pytest.raises(ValueError, match=words):
        generate(teacher(), args.pop("n"), args.pop("frames"), **args)


def test_notebook_knobs_must_be_finite():
    from ditto2_nb.notebook.pipeline import ParameterError, setup

    with pytest.raises(ParameterError, match=r"LR must be a non-negative number \(finite\), got nan"):
        setup("ci", 0, "cpu", "/tmp/ditto2_nb_knobs", LR=float("nan"))
