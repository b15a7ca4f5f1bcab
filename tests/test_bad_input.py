"""Bad input at the public entry points gets a clear error naming the parameter (or file), its
value and what is allowed; nothing is silently wrong (issue: every bad input gets a clear error)."""

import math
import subprocess
import sys
import warnings

import pytest
import torch

from ditto2_nb.audio import (
    AudioError,
    GriffinLimVocoder,
    clipped_fraction,
    load_audio,
    save_audio,
    wave_to_mel,
)
from ditto2_nb.clap import load_miniclap
from ditto2_nb.controls.melody import pitch_classes_from_mel
from ditto2_nb.core import assets
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.config import PRESETS, DataConfig, MelConfig, NetConfig, TrainConfig, to_dict
from ditto2_nb.core.validate import LIMITS
from ditto2_nb.data import generate_clips, procedural_dataset, synthesize_clip
from ditto2_nb.diffusion import Denoiser, load_denoiser, load_teacher
from ditto2_nb.distill import ConsistencyModel, CTMModel, load_distilled, load_student, student_decode
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
                        (["--source", str(afile), "--jacobian-weight", "-1"], "--jacobian-weight=-1.0"),
                        (["--source", str(afile), "--lr", "0"], "--lr=0.0 is out of range; allowed: > 0"),
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


def test_silent_structure_reference_is_refused():
    """The self-similarity of silence is all ones: no structure to follow; the error names the example."""
    from ditto2_nb.controls import structure_from_reference

    cfg = MelConfig()
    mel = torch.full((2, cfg.n_mels, cfg.frames), -1.0)
    mel[0, 5:9] = 0.3
    with pytest.raises(ValueError, match=r"reference_mel example\(s\) \[1\] are silent"):
        structure_from_reference(mel, cfg)
    assert structure_from_reference(mel[:1], cfg).target.shape[0] == 1


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

    with pytest.raises(ParameterError, match=r"LR=nan is out of range; allowed: > 0"):
        setup("ci", 0, "cpu", "/tmp/ditto2_nb_knobs", LR=float("nan"))



# ----------------------------------------------------------------------------- 7. one set of limits


def test_iterations_zero_is_the_unoptimised_decode_everywhere(tmp_path):
    """One limit, iterations >= 0 (0 = the method's decode of z0, the panels' own baseline): the
    library, the panel and the notebook parameters accept 0 and refuse -1 with the same words."""
    from ditto2_nb.notebook.pipeline import ParameterError, setup
    from ditto2_nb.notebook.widgets import ControlPanel

    assert OptimConfig(iterations=0).iterations == 0
    panel = ControlPanel("ci", "cpu")
    assert panel.resolve(iterations=0)["iterations"] == 0  # the panel refused 0
    setup("ci", 0, "cpu", str(tmp_path), ITERATIONS=0)
    for call, err in ((lambda: OptimConfig(iterations=-1), ValueError),
                      (lambda: panel.resolve(iterations=-1), ValueError),
                      (lambda: setup("ci", 0, "cpu", str(tmp_path), ITERATIONS=-1), ParameterError)):
        with pytest.raises(err, match=r"(?i)iterations=-1 is out of range; allowed: >= 0"):
            call()


def test_decode_steps_zero_is_refused_by_the_notebook_parameters_too(tmp_path):
    from ditto2_nb.notebook.pipeline import ParameterError, setup
    from ditto2_nb.notebook.widgets import ControlPanel

    with pytest.raises(ParameterError, match=r"DECODE_STEPS=0 is out of range; allowed: >= 1"):
        setup("ci", 0, "cpu", str(tmp_path), DECODE_STEPS=0)  # was accepted; the decode then refused it
    with pytest.raises(ValueError, match=r"decode_steps=0 is out of range; allowed: >= 1"):
        ControlPanel("ci", "cpu").resolve(decode_steps=0)
    st = CTMModel.from_teacher(teacher()).eval().requires_grad_(False)
    with pytest.raises(ValueError, match="decode_steps=0"):
        ditto2(st, level, Z, TAGS, cfg=FAST, decode_steps=0)


@pytest.mark.parametrize("name, value, words", [
    ("ITERATIONS", 2.5, "ITERATIONS must be an integer"), ("LR", 0.0, "LR=0.0 is out of range"),
    ("REFINE_LAST", -1, "REFINE_LAST=-1"), ("STEPS", 0, "STEPS=0"), ("W", -1.0, "W=-1.0"),
])
def test_notebook_parameters_follow_the_limits_table(name, value, words, tmp_path):
    """LR=0 and ITERATIONS=2.5 passed the old 'finite and non-negative' check; OptimConfig refuses both."""
    from ditto2_nb.notebook.pipeline import ParameterError, setup

    with pytest.raises(ParameterError, match=words):
        setup("ci", 0, "cpu", str(tmp_path), **{name: value})


def _optim(name):
    return lambda v: OptimConfig(**{name: v, "iterations": 5} if name == "refine_last" else {name: v})


def _student():
    return CTMModel.from_teacher(teacher()).eval().requires_grad_(False)


# Each library entry point at a parameter's bounds (their own checks live in ditto2_nb/optimize and
# diffusion): the table is tested against the code it describes.
AT_BOUND = {
    **{f: _optim(f) for f in ("iterations", "lr", "snapshot_every", "patience", "min_improvement",
                              "reg_weight", "refine_last", "trust_radius")},
    "decode_steps": lambda v: ditto2(_student(), level, Z, TAGS, cfg=FAST, decode_steps=v),
    "steps": lambda v: ditto(teacher(), level, Z, TAGS, cfg=FAST, steps=v),
    "w": lambda v: ditto(teacher(), level, Z, TAGS, cfg=FAST, steps=1, w=v),
    "seed": lambda v: ditto2(_student(), level, Z, TAGS, cfg=FAST, decode_seed=v),
}


@pytest.mark.parametrize("name", sorted(AT_BOUND))
def test_the_limits_table_is_what_the_library_checks(name):
    lim = LIMITS[name]
    below = lim.lo - 1 if lim.kind is int else lim.lo - 0.5
    with pytest.raises(ValueError, match=f"({name}|{name.replace('_', ' ')})="):
        AT_BOUND[name](below)
    if lim.lo_open:
        with pytest.raises(ValueError):
            AT_BOUND[name](lim.kind(lim.lo))
    else:
        AT_BOUND[name](lim.kind(lim.lo))  # the table's bound itself is accepted
    if lim.kind is int:
        with pytest.raises(TypeError, match="must be an integer"):
            AT_BOUND[name](lim.lo + 0.5)


def test_panel_sliders_start_at_the_table_bounds():
    from ditto2_nb.notebook.widgets import ControlPanel
    from ditto2_nb.notebook.widgets.params import PANEL_LIMITS

    panel = ControlPanel("ci", "cpu")
    panel.ui  # noqa: B018 - builds the widgets
    for name, limit in PANEL_LIMITS.items():
        if name != "lr":  # a log slider: its bound is an exponent (lr > 0 has no lowest value)
            assert panel.inputs[name].min == LIMITS[limit].lo, name
    assert panel.inputs["seed"].max == LIMITS["seed"].hi


@pytest.mark.parametrize("argv, words", [
    (["train-teacher", "--steps", "0"], "--steps=0 is out of range; allowed: >= 1"),
    (["train-teacher", "--steps", "2.5"], "--steps must be an integer >= 1, got '2.5'"),
    (["distill", "--kind", "cm", "--snapshots", "-1"], "--snapshots=-1 is out of range; allowed: >= 0"),
    (["compress", "--source", "x", "--channels", "64,2"], "--channels[1]=2 is out of range; allowed: >= 4"),
    (["compress", "--source", "x", "--channels", "8", "--lr", "nan"], "--lr=nan is out of range"),
    (["compress", "--source", "x", "--channels", "8", "--blocks", "-1"], "--blocks=-1 is out of range"),
])
def test_cli_arguments_follow_the_limits_table(argv, words, capsys):
    from ditto2_nb.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


# ----------------------------------------------------------------------------- 8. audio


def test_loud_waveform_in_memory_is_refused():
    wave = torch.sin(torch.arange(16384) * 0.1)
    wave_to_mel(1.5 * wave, MelConfig())  # overshoot just above full scale: accepted
    with pytest.raises(AudioError, match=r"peak amplitude 10 is far outside \[-1, 1\].*peak <= 2"):
        wave_to_mel(10 * wave, MelConfig())  # its mels were clamped at db_max without a word


def test_loud_audio_file_is_scaled_to_full_scale_and_says_so(tmp_path):
    import soundfile as sf

    sf.write(str(tmp_path / "loud.wav"), (10 * torch.sin(torch.arange(16000) * 0.1)).numpy(), 16000,
             subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"loud.wav: peak amplitude 10 .*scaled by -20.0 dB to peak 1.0"):
        wave = load_audio(tmp_path / "loud.wav", 16000)
    assert float(wave.abs().max()) == pytest.approx(1.0, abs=1e-3)


def test_truncated_audio_file_is_an_error_naming_it(tmp_path):
    import soundfile as sf

    from ditto2_nb.data.folder import load_audio_folder

    sf.write(str(tmp_path / "whole.wav"), 0.5 * torch.sin(torch.arange(16000) * 0.1).numpy(), 16000)
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(AudioError, match=r"cut.wav is truncated"):
        load_audio(tmp_path / "cut.wav", 16000)  # read half the samples without a word
    _, _, summary = load_audio_folder(tmp_path, MelConfig(frames=16))  # a folder skips it and says so
    assert summary.skipped["cut.wav"][0] == "unreadable" and "truncated" in summary.skipped["cut.wav"][1]


@pytest.mark.parametrize("call", [
    lambda p: load_audio(p, 16000.5),
    lambda p: wave_to_mel(torch.zeros(1, 4096), MelConfig(), sample_rate=22050.5),
    lambda p: MelConfig(sample_rate=16000.5),
])
def test_non_integer_sample_rate_is_named(call, tmp_path):
    import soundfile as sf

    sf.write(str(tmp_path / "a.wav"), 0.5 * torch.sin(torch.arange(1600) * 0.1).numpy(), 8000)
    with pytest.raises(ValueError, match=r"sample_rate must be an integer, got (16000|22050)\.5"):
        call(tmp_path / "a.wav")  # torchaudio's "Frequencies must be of integer type", or accepted


# ----------------------------------------------------------------------------- 9. data, seeds, metrics


@pytest.mark.parametrize("call, words", [
    (lambda: procedural_dataset(MelConfig(frames=16), 0, use_cache=False),
     "procedural_dataset n=0 is out of range; allowed: >= 1"),
    (lambda: DataConfig(n_train=0), "DataConfig.n_train=0 is out of range"),
    (lambda: DataConfig(n_heldout=0), "DataConfig.n_heldout=0"),
])
def test_a_dataset_of_zero_clips_is_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.parametrize("call", [
    lambda: synthesize_clip(-1, MelConfig(frames=16)),
    lambda: generate_clips(2, -1, MelConfig(frames=16)),
    lambda: procedural_dataset(MelConfig(frames=16), 2, -1, use_cache=False),
    lambda: DataConfig(seed=-1),
    lambda: TrainConfig(seed=-1),
])
def test_negative_seed_is_named(call):
    with pytest.raises(ValueError, match=r"seed=-1 is out of range"):  # was "expected non-negative integer"
        call()


def test_numpy_and_torch_scalars_are_recorded_as_numbers(tmp_path):
    import numpy as np

    from ditto2_nb.notebook.pipeline import read_metrics, record, setup

    ctx = setup("ci", 0, "cpu", str(tmp_path))
    record("f32", np.float32(1.5), ctx)  # was: "Object of type float32 is not JSON serializable"
    record("i64", np.int64(3), ctx)
    record("t", torch.tensor(0.25), ctx)
    record("arr", np.array([1.0, 2.0]), ctx)
    assert read_metrics(tmp_path) == {"f32": 1.5, "i64": 3, "t": 0.25, "arr": [1.0, 2.0]}
    with pytest.raises(TypeError, match=r"record\('obj', \.\.\.\): cannot store a object"):
        record("obj", object(), ctx)


# ----------------------------------------------------------------------------- 10. stored configs


@pytest.mark.parametrize("field, value, words", [
    ("emb_dim", -3, r"NetConfig.emb_dim=-3 is out of range"),  # was a deep torch error
    ("attn_heads", 3, r"NetConfig.attn_heads=3 must divide .*channels\[-1\]=16"),  # was loaded silently
    ("dropout", 5.0, r"NetConfig.dropout=5.0 is out of range; allowed: \[0, 1\)"),  # nn.Dropout's own error
    ("channels", [8, "x"], r"NetConfig.channels\[1\] must be an integer"),
])
@pytest.mark.parametrize("loader", ["teacher", "student"])
def test_an_edited_stored_config_is_a_checkpoint_error_naming_file_and_field(tmp_path, field, value, words,
                                                                             loader):
    if loader == "teacher":
        path = ckpt.save(tmp_path / "edited.safetensors", dict(teacher().state_dict()),
                         {"kind": "teacher_ci", "net": to_dict(TINY) | {field: value}})
        load = load_denoiser
    else:
        path = _save_student(tmp_path / "edited.safetensors", "ctm",
                             net=to_dict(CTMModel.from_teacher(teacher()).cfg) | {field: value})
        load = load_student
    with pytest.raises(ckpt.CheckpointError, match=f"edited.safetensors.*{words}"):
        load(path)


def test_an_edited_miniclap_config_is_a_checkpoint_error(tmp_path):
    from ditto2_nb.clap import load_clap_file

    tensors, meta = ckpt.read(assets.shipped_path("miniclap", "laptop"))
    meta["mel"]["sample_rate"] = 16000.5
    path = ckpt.save(tmp_path / "clap.safetensors", tensors, meta)
    with pytest.raises(ckpt.CheckpointError, match=r"clap.safetensors.*sample_rate must be an integer"):
        load_clap_file(path)


# ----------------------------------------------------------------------------- 11. paths before training


def _no_training(*a, **k):
    raise AssertionError("training started before the output path was checked")


@pytest.mark.parametrize("argv, blocked, words", [
    (["train-teacher", "--preset", "ci", "--steps", "1"], "ASSETS", "the default output (give --out"),
    (["train-teacher", "--preset", "ci", "--steps", "1"], "DITTO2_CACHE", "the default work folder (set"),
    (["train-clap", "--preset", "ci", "--steps", "1"], "ASSETS", "the default output"),
    (["distill", "--kind", "ctm", "--preset", "ci", "--steps", "1"], "DITTO2_CACHE", "the default work"),
])
def test_cli_checks_the_default_paths_before_training(tmp_path, monkeypatch, capsys, argv, blocked, words):
    """Without --out / --work-dir the defaults (the assets folder, $DITTO2_CACHE/runs) were first
    written after the whole training run."""
    from ditto2_nb import cli
    from ditto2_nb.clap import training as clap_training
    from ditto2_nb.diffusion import teacher as teacher_module
    from ditto2_nb.distill import train as distill_train

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("DITTO2_CACHE", str(tmp_path / "cache"))
    if blocked == "ASSETS":
        monkeypatch.setattr(assets, "ASSETS", blocker / "assets")
    else:
        monkeypatch.setenv("DITTO2_CACHE", str(blocker / "cache"))
    for module, fn in ((teacher_module, "train_teacher"), (distill_train, "train_student"),
                       (clap_training, "train_clap")):
        monkeypatch.setattr(module, fn, _no_training)
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err and "a_file is a file, not a directory" in err, err


# ----------------------------------------------------------------------------- 12. advice that runs


def test_every_suggested_training_command_parses(tmp_path, monkeypatch):
    """reproduce_command / reproduce_clap_command for every preset and kind, the commands in the
    missing-model errors and in the shipped model cards: each is parsed by the CLI's own parser."""
    import re
    import shlex

    from ditto2_nb.clap.training import reproduce_clap_command
    from ditto2_nb.cli import build_parser

    cards = sorted(assets.ASSETS.glob("*.md"))
    commands = [c for card in cards for c in re.findall(r"reproduce: `([^`]*)`", card.read_text())]
    assert len(commands) >= 7  # every shipped model
    for preset in PRESETS:
        for kind in assets.MODEL_KINDS:
            for steps in (None, 1, 300):
                commands += [assets.reproduce_command(kind, preset, True, steps),
                             assets.reproduce_command(kind, preset, False, steps),
                             assets.reproduce_command(kind, preset, False, steps, from_conditional=True)]
        commands += [reproduce_clap_command(preset, evaluator, 50) for evaluator in (False, True)]
    monkeypatch.setattr(assets, "ASSETS", tmp_path / "none")
    monkeypatch.setenv("DITTO2_CACHE", str(tmp_path / "cache"))
    for kind in assets.MODEL_KINDS:
        with pytest.raises(ckpt.CheckpointError) as e:
            assets.resolve_model_file(kind, "laptop", False, assets.reproduce_command(kind, "laptop"))
        commands.append(re.search(r"`([^`]*)`", str(e.value)).group(1))
    parser = build_parser()
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "ditto2_nb.cli"], command
        a = parser.parse_args(words[3:])  # argparse exits (SystemExit 2) on a command it refuses
        assert a.command in ("train-teacher", "distill", "train-clap", "compress", "train-vocoder"), command


@pytest.mark.parametrize("call, words", [
    (lambda: load_teacher("huge"), r"unknown preset 'huge'; choose one of \['ci'"),
    (lambda: load_distilled("dm", "laptop"), r"unknown model kind 'dm'; choose one of"),
    (lambda: load_distilled("cm", "huge"), r"unknown preset 'huge'"),
    (lambda: load_miniclap("huge"), r"unknown preset 'huge'"),
])
def test_loaders_name_an_unknown_preset_or_kind_instead_of_a_refused_command(call, words):
    """They said 'Train it with `python -m ditto2_nb.cli train-teacher --preset huge`', which the CLI
    refuses."""
    with pytest.raises(ValueError, match=words):
        call()
