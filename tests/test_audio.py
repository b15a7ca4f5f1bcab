"""The mel front-end: shapes, differentiability, round trip through Griffin-Lim, bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch

from ditto2_nb import audio as A
from ditto2_nb.core.config import MelConfig

CFG = MelConfig(frames=128)


def tone(freq, seconds=1.0, sr=16000, amp=0.5):
    t = torch.arange(int(seconds * sr)) / sr
    return amp * torch.sin(2 * torch.pi * freq * t)


def test_shapes_dtypes_and_range():
    wave = tone(440, CFG.seconds)
    mel = A.wave_to_mel(wave, CFG)
    assert mel.shape == (1, CFG.n_mels, CFG.frames) and mel.dtype == torch.float32
    assert mel.min() >= -1 and mel.max() <= 1
    batch = A.wave_to_mel(torch.stack([wave, 0.1 * wave]), CFG)
    assert batch.shape == (2, CFG.n_mels, CFG.frames)
    assert batch[0].mean() > batch[1].mean()  # louder is brighter in the mel


def test_full_scale_sine_is_near_0_db_and_db_roundtrip():
    db = A.norm_to_db(A.wave_to_mel(tone(1000, amp=1.0), CFG), CFG)
    assert -3 < db.max().item() <= 0.5
    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(A.db_to_norm(A.norm_to_db(x, CFG), CFG), x)


def test_tone_lands_in_the_right_mel_bin():
    mel = A.wave_to_mel(tone(2000), CFG)[0]
    fb = A.mel_filterbank(CFG)
    freqs = torch.linspace(0, CFG.sample_rate / 2, CFG.n_fft // 2 + 1)
    expected = fb[(freqs - 2000).abs().argmin()].argmax()
    assert abs(mel.mean(-1).argmax().item() - expected.item()) <= 1


def test_mel_is_differentiable():
    wave = tone(330, CFG.seconds).requires_grad_()
    A.wave_to_mel(wave, CFG).mean().backward()
    assert wave.grad is not None and torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0


def test_resampling_conversion_is_documented_behaviour():
    wave44 = tone(440, 1.0, sr=44100)
    mel = A.wave_to_mel(wave44, CFG, sample_rate=44100)
    ref = A.wave_to_mel(tone(440, 1.0), CFG)
    assert mel.shape == ref.shape
    assert (mel - ref).abs().mean() < 0.05


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(0), "empty"),
    (torch.tensor([0.0, float("nan"), 0.0] * 300), "NaN"),
    (torch.zeros(2, 2, 1000), "average the channels"),
    (torch.zeros(1000, dtype=torch.int16), "floating point"),
    (torch.zeros(100), "fewer than one hop"),
])
def test_bad_waveforms_are_rejected_clearly(bad, match):
    with pytest.raises(A.AudioError, match=match):
        A.wave_to_mel(bad, CFG)


def test_bad_mels_are_rejected_clearly():
    voc = A.GriffinLimVocoder(CFG)
    with pytest.raises(A.AudioError, match=r"\[B, 64, T\]"):
        voc(torch.zeros(1, 32, 10))
    with pytest.raises(A.AudioError, match="NaN"):
        voc(torch.full((1, 64, 10), float("nan")))


def test_griffin_lim_round_trip_on_rendered_music(music_clips):
    """waveform -> mel -> Griffin-Lim -> mel: spectral convergence below 0.25 (measured ~0.1)."""
    voc = A.GriffinLimVocoder(CFG, n_iter=32)
    mel = A.wave_to_mel(music_clips[:4], CFG)
    wave = voc(mel)
    assert wave.shape == (4, CFG.n_samples)
    sc = A.spectral_convergence(mel, A.wave_to_mel(wave, CFG), CFG)
    assert sc < 0.25, sc


def test_file_io_roundtrip_stereo_and_errors(tmp_path):
    stereo = np.stack([tone(440, 0.5, 22050).numpy(), tone(440, 0.5, 22050).numpy()], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 22050)
    wave = A.load_audio(tmp_path / "s.flac", 16000)
    assert wave.ndim == 1 and abs(len(wave) - 8000) <= 1
    out = A.save_audio(tmp_path / "o.wav", wave, 16000)
    assert abs(A.load_audio(out, 16000) - wave).max() < 1e-3
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(A.AudioError, match="cannot read"):
        A.load_audio(tmp_path / "junk.wav", 16000)
    with pytest.raises(A.AudioError, match="no such"):
        A.load_audio(tmp_path / "missing.wav", 16000)
