"""The trained vocoder (ditto2_nb.audio.neural): output shapes, determinism, the file round trip,
exact resumption, clear errors, that training lowers the loss, and the integrated phase it rests on."""

import math

import pytest
import torch

from ditto2_nb.audio import AudioError, NeuralVocoder, load_vocoder
from ditto2_nb.audio.neural import (
    RECIPES,
    VocoderConfig,
    VocoderNet,
    reproduce_vocoder_command,
    train_vocoder,
)
from ditto2_nb.cli import build_parser, default_out
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.assets import shipped_path
from ditto2_nb.core.config import MelConfig, get_preset

CI = get_preset("ci").mel  # 64 frames: 1.02 s clips


@pytest.fixture(scope="module")
def waves():
    from ditto2_nb.data import generate_clips

    w, _ = generate_clips(6, 0, CI)
    return torch.as_tensor(w)


@pytest.fixture(scope="module")
def trained(waves, tmp_path_factory):
    """A 4-step ci vocoder: (exported file, work folder)."""
    d = tmp_path_factory.mktemp("voc")
    out = train_vocoder("ci", waves, d / "v.safetensors", steps=4, progress=False, work_dir=d / "work")
    return out, d / "work"


def _tensors(path, prefix=None):
    t, _ = ckpt.read(path)
    return ckpt.prefixed(t, prefix) if prefix else t


@pytest.mark.parametrize("frames", [128, 256])  # 2-s and 4-s mels at 16 kHz, hop 256
def test_output_length_and_level(frames):
    torch.manual_seed(0)
    voc = NeuralVocoder(VocoderNet(RECIPES["ci"][0], MelConfig(frames=frames)).eval())
    with torch.inference_mode():
        out = voc(torch.rand(2, 64, frames) * 2 - 1)
        one = voc(torch.rand(64, frames) * 2 - 1)
    assert out.shape == (2, frames * 256) and one.shape == (1, frames * 256)
    assert torch.isfinite(out).all() and out.abs().max() <= voc.ceiling + 1e-6
    assert len(voc.last_gain_db) == 1 and voc.sample_rate == 16000


def test_training_and_output_are_deterministic(waves, trained, tmp_path):
    again = train_vocoder("ci", waves, tmp_path / "v.safetensors", steps=4, progress=False,
                          work_dir=tmp_path / "work")
    a, b = _tensors(trained[0]), _tensors(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    voc = load_vocoder(trained[0])
    mel = torch.rand(2, 64, 64) * 2 - 1
    assert torch.equal(voc(mel), voc(mel))


def test_file_round_trip(trained, waves):
    out, work = trained
    voc = load_vocoder(out)
    assert voc.meta["kind"] == "vocoder" and voc.meta["reproduce"] == reproduce_vocoder_command("ci", 4)
    assert not any(p.requires_grad for p in voc.net.parameters())
    card = out.with_suffix(".md").read_text()
    assert "train-vocoder --preset ci --steps 4" in card and "design" in card
    # the exported EMA (float16) is the training checkpoint's EMA rounded to float16
    ema = ckpt.prefixed(_tensors(work / "vocoder_ci.train.safetensors"), "ema")
    ref = VocoderNet(voc.net.vcfg, voc.net.mel)
    ref.load_state_dict({k: v.half().float() for k, v in ema.items()})
    mel = torch.rand(1, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(voc(mel), NeuralVocoder(ref.eval())(mel), atol=1e-6)


def test_resume_is_exact(waves, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train_vocoder("ci", waves, a / "v.safetensors", steps=2, progress=False, work_dir=a)
    train_vocoder("ci", waves, a / "v.safetensors", steps=4, progress=False, work_dir=a)  # resumes at 2
    train_vocoder("ci", waves, b / "v.safetensors", steps=4, progress=False, work_dir=b)
    ta, tb = (_tensors(d / "vocoder_ci.train.safetensors") for d in (a, b))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    ha, hb = (ckpt.read_metadata(d / "vocoder_ci.train.safetensors")["history"] for d in (a, b))
    assert ha["loss"] == hb["loss"] and len(ha["loss"]) == 4
    with pytest.raises(ckpt.CheckpointError, match="different configuration"):
        train_vocoder("ci", waves[:3], a / "v.safetensors", steps=6, progress=False, work_dir=a)
    with pytest.raises(ckpt.CheckpointError, match="already trained 4 steps"):
        train_vocoder("ci", waves, a / "v.safetensors", steps=3, progress=False, work_dir=a)


def test_bad_input_is_refused_clearly(trained, waves, tmp_path):
    voc = load_vocoder(trained[0])
    with pytest.raises(AudioError, match=r"mel must be \[B, 64, T\], got shape \(1, 80, 64\)"):
        voc(torch.zeros(1, 80, 64))
    bad = torch.zeros(1, 64, 64)
    bad[0, 3, 5] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        voc(bad)
    with pytest.raises(AudioError, match="fewer than one crop"):
        train_vocoder("ci", waves[:, :1000], tmp_path / "x.safetensors", steps=1, progress=False,
                      work_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        train_vocoder("huge", waves, tmp_path / "x.safetensors", steps=1, progress=False)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        load_vocoder(junk)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        load_vocoder(tmp_path / "missing.safetensors")
    other = tmp_path / "teacher.safetensors"
    ckpt.save(other, {"w": torch.zeros(2)}, {"kind": "teacher"})
    with pytest.raises(ckpt.CheckpointError, match="not a vocoder"):
        load_vocoder(other)
    with pytest.raises(ckpt.CheckpointError, match="train-vocoder --preset ci"):
        load_vocoder(preset="ci")  # nothing shipped or cached for ci: the error names the command
    with pytest.raises(ValueError, match="must be odd"):
        VocoderConfig(kernel=4)


def test_training_lowers_the_loss(waves, tmp_path):
    out = train_vocoder("ci", waves[:4], tmp_path / "v.safetensors", steps=300, progress=False,
                        work_dir=tmp_path)
    loss = ckpt.read_metadata(out)["history"]["loss"]
    first, last = sum(loss[:30]) / 30, sum(loss[-30:]) / 30
    assert last < 0.8 * first, (first, last)


def test_integrated_phase_keeps_the_pitch():
    """The design's reason: a frame-to-frame constant phase (what a time-invariant network gives on a
    steady note) can only synthesise multiples of sample_rate / hop = 62.5 Hz; the integrated
    instantaneous frequency reproduces a C4 exactly."""
    cfg = MelConfig(frames=128)
    net = VocoderNet(VocoderConfig(), cfg)
    f, n = 261.63, 1024
    x = 0.5 * torch.sin(2 * math.pi * f * torch.arange(128 * 256) / 16000)[None]
    mag = torch.stft(x, n, 256, window=torch.hann_window(n), return_complex=True).abs()
    dev = ((f * n / 16000 - torch.arange(513.0)) / VocoderConfig().max_deviation).clamp(-0.999, 0.999).atanh()
    dev = dev[None, :, None].expand_as(mag)

    def peak_hz(wave):
        spec = torch.fft.rfft(wave[0] * torch.hann_window(wave.shape[-1]), 1 << 18).abs()
        return spec.argmax().item() * 16000 / (1 << 18)

    integrated = net.wave(torch.polar(mag, net.phase(torch.zeros_like(mag), dev)), 128)
    constant = net.wave(torch.polar(mag, -net.bin_shift[:, None].expand_as(mag)), 128)
    assert abs(peak_hz(integrated) - f) < 0.5
    assert abs(peak_hz(constant) - 250.0) < 0.5  # 80 cents flat


def test_cli_command_parses_and_defaults():
    ap = build_parser()
    a = ap.parse_args(reproduce_vocoder_command("laptop", 1500).split()[3:])
    assert (a.command, a.preset, a.steps) == ("train-vocoder", "laptop", 1500)
    assert default_out(a) == shipped_path("vocoder", "laptop")
    with pytest.raises(SystemExit):
        ap.parse_args(["train-vocoder", "--steps", "0"])


def test_shipped_vocoder_loads_in_one_line():
    path = shipped_path("vocoder", "laptop")
    if not path.exists():
        pytest.skip("no vocoder shipped for the laptop preset")
    voc = load_vocoder()  # the laptop preset's shipped file
    assert voc.meta["kind"] == "vocoder" and voc.meta["steps"] >= 1000
    a = build_parser().parse_args(voc.meta["reproduce"].split()[3:])  # a command the CLI accepts
    assert (a.command, a.preset, a.steps) == ("train-vocoder", "laptop", voc.meta["steps"])
    with torch.inference_mode():
        out = voc(torch.full((1, 64, 128), -1.0))  # silence stays (nearly) silent
    assert out.shape == (1, 128 * 256) and out.abs().max() < 0.05


def test_generated_mels_guard_judges_both_vocoders(trained, waves):
    """benchmarks/vocoder.py (e): teacher samples through each vocoder, re-analysed; the trained
    vocoder's pass needs no clipping and an error within 1.5x its error on true mels."""
    import importlib.util
    from pathlib import Path

    from ditto2_nb.audio import GriffinLimVocoder, wave_to_mel

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "vocoder.py"
    spec = importlib.util.spec_from_file_location("bench_vocoder", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    vocoders = {"griffin_lim": GriffinLimVocoder(CI, n_iter=4), "neural": load_vocoder(trained[0])}
    true_mels = wave_to_mel(waves[:2], CI)
    true_outputs = {name: bench.run_vocoder(v, true_mels)[0] for name, v in vocoders.items()}
    out = bench.generated_mels(vocoders, true_mels, true_outputs, "ci", 2)
    for name in vocoders:
        r = out[name]
        assert r["spectral_convergence"]["n"] == 2 and r["true_mels_spectral_convergence"]["n"] == 2
        ratio = r["spectral_convergence"]["median"] / r["true_mels_spectral_convergence"]["median"]
        assert r["generated_over_true"] == pytest.approx(ratio, rel=1e-3)
        assert r["passes"] == (r["generated_over_true"] <= 1.5 and r["clipped_fraction"]["mean"] == 0)


def test_the_preset_default_follows_the_verdict_beside_the_file(trained, tmp_path, monkeypatch):
    """preset_vocoder: the trained vocoder only when benchmarks/vocoder.py's verdict beside its file
    names it for these very weights; Griffin-Lim (the preset's mel settings) otherwise."""
    import shutil

    from ditto2_nb.audio import GriffinLimVocoder, NeuralVocoder, neural, preset_vocoder

    path = tmp_path / "vocoder_ci.safetensors"
    shutil.copy(trained[0], path)
    monkeypatch.setattr(neural, "vocoder_file", lambda preset: path)
    assert isinstance(preset_vocoder("ci"), GriffinLimVocoder)  # never benchmarked
    neural.write_choice(path, "neural", "benchmarks/results/vocoder_ci.json", "the rule")
    voc = preset_vocoder("ci")
    assert isinstance(voc, NeuralVocoder) and voc.choice.startswith("neural: vocoder_ci.choice.json")
    neural.write_choice(path, "griffin_lim", "benchmarks/results/vocoder_ci.json", "the rule")
    gl = preset_vocoder("ci")
    assert isinstance(gl, GriffinLimVocoder) and gl.cfg == CI and "kept Griffin-Lim" in gl.choice
