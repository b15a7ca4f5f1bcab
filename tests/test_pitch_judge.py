"""The pretrained pitch judge (ditto2_nb.audio.pitch): tones of known pitch, silence and noise,
frame alignment, a rendered held-out tune against its score, scoring, bad input, no downloads."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from ditto2_nb.audio import pitch
from ditto2_nb.audio.mel import AudioError
from ditto2_nb.audio.pitch import judge_info, judge_pitch, melody_accuracy, pitch_scores
from ditto2_nb.core.config import MelConfig

pytest.importorskip("pesto", reason="the pitch judge needs pesto-pitch (pip install pesto-pitch)")

CFG = MelConfig()  # 16 kHz, hop 256, 128 frames
SR = CFG.sample_rate
INNER = slice(3, -3)  # away from the zero-padded ends


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(midi: float, harmonic: bool, n: int = CFG.n_samples, sr: int = SR) -> np.ndarray:
    t = np.arange(n) / sr
    f = _hz(midi)
    ks = range(1, 7) if harmonic else (1,)
    w = sum(0.6 ** (k - 1) * np.sin(2 * np.pi * k * f * t) for k in ks if k * f < sr / 2 - 100)
    return (0.5 * w / np.abs(w).max()).astype(np.float32)


def _noise(kind: str, n: int = CFG.n_samples) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    if kind == "pink":  # 1/f power
        x = np.fft.irfft(np.fft.rfft(x) / np.sqrt(np.arange(n // 2 + 1) + 1.0), n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


# ----------------------------------------------------------------------------- tones and noise

TONES = (45, 55, 60, 67, 74, 84)  # 45 = A2, an octave and a third below middle C


@pytest.mark.parametrize("harmonic", [False, True], ids=["sine", "harmonic"])
def test_tones_of_known_pitch(harmonic):
    waves = np.stack([_tone(m, harmonic) for m in TONES])
    track = judge_pitch(waves, SR)
    assert track.midi.shape == track.confidence.shape == track.aperiodicity.shape == (len(TONES), CFG.frames)
    assert track.midi.dtype == np.float32
    for m, row in zip(TONES, track.midi[:, INNER]):
        voiced = np.isfinite(row)
        assert voiced.mean() >= 0.95, (m, voiced.mean())
        assert abs(float(np.median(row[voiced])) - m) < 0.5, (m, np.median(row[voiced]))
    scores = pitch_scores(track.midi[:, INNER], np.repeat(np.array(TONES)[:, None], CFG.frames - 6, 1))
    assert scores["exact_accuracy"] >= 0.95 and scores["octave_error_rate"] == 0.0


def test_silence_and_noise_are_unvoiced():
    waves = np.stack([np.zeros(CFG.n_samples, np.float32), _noise("white"), _noise("pink"),
                      1e-5 * _tone(69, True)])  # the last: a tone at -106 dBFS, below the level gate
    track = judge_pitch(waves, SR)
    unvoiced = np.isnan(track.midi).mean(1)
    assert unvoiced[0] == 1.0 and unvoiced[3] == 1.0, unvoiced
    assert unvoiced[1] >= 0.95 and unvoiced[2] >= 0.95, unvoiced
    assert (track.aperiodicity[1:3, INNER] > 0.6).mean() >= 0.95  # noise is aperiodic at any pitch


def test_frames_align_with_the_mel_and_other_rates_are_resampled():
    onset = 1.0  # s: silence, then A4
    def clip(sr):
        n = round(CFG.seconds * sr)
        w = _tone(69, True, n, sr)
        w[: round(onset * sr)] = 0.0
        return w

    a = judge_pitch(clip(SR), SR).midi[0]
    b = judge_pitch(clip(22_050), 22_050).midi[0]
    assert a.shape == b.shape == (CFG.frames,)  # [L] -> [1, frames], at the mel's frames
    first = int(np.argmax(np.isfinite(a)))
    assert abs(first - onset * SR / CFG.hop_length) <= 3  # frame t is centred on sample t * hop
    assert np.nanmedian(b) == pytest.approx(69, abs=0.3)


def test_deterministic():
    w = np.stack([_tone(62, True), _noise("white")])
    one, two = judge_pitch(w, SR), judge_pitch(torch.from_numpy(w), SR)
    for x, y in zip(one, two):
        assert np.array_equal(x, y, equal_nan=True)


def test_level_does_not_change_the_reading():
    loud, quiet = _tone(64, True), 0.01 * _tone(64, True)  # -40 dB: PESTO's confidence would drop
    a, b = judge_pitch(np.stack([loud, quiet]), SR).midi
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    assert np.nanmedian(a) == pytest.approx(np.nanmedian(b), abs=0.05)


# ----------------------------------------------------------------------------- a rendered tune


def test_a_rendered_held_out_tune_reaches_0_9():
    """The last Essen folk song of music21's list (held out: training takes the first ones),
    rendered as the corpus dataset renders it, against its score."""
    from ditto2_nb.data import corpus
    from ditto2_nb.data.summaries import RenderSummary

    piece = corpus.corpus_pieces("folk")[-1]
    pm, tonic, mode = corpus._piece_to_midi(piece)
    renderer = "fluidsynth" if corpus.fluidsynth_available() else "additive"
    wave, desc = corpus._render_pm(pm, renderer, SR)
    clips, labels = corpus._cut_piece(wave, pm, piece, "folk tune", desc, tonic, mode, CFG, -60.0,
                                      RenderSummary("folk", renderer))
    waves = np.stack(clips[:4])
    target = np.stack([lab.pitch for lab in labels[:4]])
    per = melody_accuracy(waves, SR, target)
    assert len(per["pitch_class_accuracy"]) == len(waves)
    pooled = pitch_scores(judge_pitch(waves, SR).midi, target)
    assert pooled["pitch_class_accuracy"] >= 0.9, pooled
    assert pooled["exact_accuracy"] >= 0.9, pooled
    pcs = np.where(target > 0, target % 12, -1)  # the melody control's target works too
    by_pc = melody_accuracy(waves, SR, pcs, kind="pitch_class")
    assert by_pc["pitch_class_accuracy"] == pytest.approx(per["pitch_class_accuracy"])
    assert "exact_accuracy" not in by_pc


# ----------------------------------------------------------------------------- scoring


def test_scores_count_octave_errors_unvoiced_frames_and_rests():
    target = np.array([60, 60, 60, 60, 62, 62, 0, 0])
    track = np.array([60.2, 72.0, 48.1, np.nan, 61.0, 62.4, 70.0, np.nan])
    s = pitch_scores(track, target)
    assert s["n_sounding"] == 6 and s["n_rests"] == 2
    assert s["exact_accuracy"] == pytest.approx(2 / 6)  # 60.2, 62.4
    assert s["octave_error_rate"] == pytest.approx(2 / 6)  # 72, 48.1
    assert s["pitch_class_accuracy"] == pytest.approx(4 / 6)
    assert s["unvoiced_on_sounding"] == pytest.approx(1 / 6)
    assert s["false_voicing_on_rests"] == pytest.approx(1 / 2)
    pc = pitch_scores(track, np.where(target > 0, target % 12, -1), kind="pitch_class")
    assert pc["pitch_class_accuracy"] == pytest.approx(4 / 6) and "octave_error_rate" not in pc
    assert np.isnan(pitch_scores(track[:6], target[:6])["false_voicing_on_rests"])  # no rests


def test_note_scores_count_each_note_once_whatever_its_length():
    from ditto2_nb.audio import note_scores
    from ditto2_nb.core.config import MelConfig

    cfg = MelConfig()  # 16 ms frames
    step = cfg.hop_length / cfg.sample_rate
    # a long C (frames 0-39), a short D (40-43), a short E (44-47), past the track: skipped
    notes = [(0.0, 40 * step, 60), (40 * step, 4 * step, 62), (44 * step, 4 * step, 64), (10.0, 1.0, 65)]
    track = np.full(48, np.nan)
    track[:40] = 72.3  # C, an octave up: its pitch class is heard
    track[40:43] = 61.0  # C#, then a silent frame: D is missed
    track[44:47] = 64.2  # E on 3 of 4 frames (more than half)
    s = note_scores(track, notes, cfg)
    assert s == {"note_accuracy": pytest.approx(2 / 3), "n_notes": 3}
    # per frame, the long C weighs 40 frames: 43 of 48 sounding frames right (0.896), 2 of 3 notes
    per_frame = pitch_scores(track, np.r_[np.full(40, 60), np.full(4, 62), np.full(4, 64)])
    assert per_frame["pitch_class_accuracy"] == pytest.approx(43 / 48)
    assert np.isnan(note_scores(track, [], cfg)["note_accuracy"])
    with pytest.raises(ValueError, match=r"one pitch track \[frames\]"):
        note_scores(track[None], notes, cfg)


def test_melody_accuracy_adds_the_notes_when_given():
    t = np.arange(SR) / SR
    tone = 0.3 * sum(np.sin(2 * np.pi * k * 440.0 * t) / k for k in (1, 2, 3))  # A4 for 1 s
    per = melody_accuracy(np.stack([tone, tone]), SR, np.full(len(tone) // 256, 69),
                          notes=[(0.1, 0.5, 69), (0.6, 0.3, 70)])
    assert per["note_accuracy"] == [0.5, 0.5] and per["n_notes"] == [2, 2]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"judge": "yin"}, r"judge='yin'.*crepe-tiny.*pesto"),
    ({"sample_rate": 0}, r"sample_rate=0 is out of range"),
    ({"sample_rate": 16000.5}, r"sample_rate must be an integer"),
    ({"threshold": 1.5}, r"threshold=1.5 is out of range; allowed: \[0, 1\]"),
    ({"silence_db": 6.0}, r"silence_db=6.0 is out of range"),
    ({"max_aperiodicity": 0.0}, r"max_aperiodicity=0.0 is out of range"),
    ({"cfg": "laptop"}, r"cfg must be a MelConfig"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = {"sample_rate": SR, **kwargs}
    with pytest.raises(ValueError, match=match):
        judge_pitch(_tone(60, True, 4096), **args)


@pytest.mark.parametrize("wave, match", [
    (np.zeros((1, 2, 4096), np.float32), r"\[L\] or \[B, L\]"),
    (np.zeros(4096, np.int16), r"floating point"),
    (np.full(4096, np.nan, np.float32), r"NaN"),
    (np.full(4096, 100.0, np.float32), r"peak amplitude 100 .*allowed: peak <= 2"),
    (np.zeros(100, np.float32), r"100 samples .* fewer than one hop \(256\)"),
])
def test_bad_waves_are_refused(wave, match):
    with pytest.raises(AudioError, match=match):
        judge_pitch(wave, SR)


@pytest.mark.parametrize("target, kind, match", [
    (np.full(10, 60), "midi", r"10 frames but the audio gives 16"),
    (np.full((3, 16), 60), "midi", r"3 rows but the audio has 2 examples"),
    (np.full(16, 60.5), "midi", r"whole numbers"),
    (np.full(16, 130), "midi", r"\[130\] outside MIDI 1..127 or 0 = rest"),
    (np.full(16, 12), "pitch_class", r"\[12\] outside 0..11 or -1 = rest"),
    (np.full(16, 60), "hz", r"kind='hz'; choose one of"),
    (np.array(["C4"] * 16), "midi", r"integer pitches"),
])
def test_bad_targets_are_refused(target, kind, match):
    waves = np.stack([_tone(60, True, 16 * 256), _tone(62, True, 16 * 256)])
    with pytest.raises(ValueError, match=match):
        melody_accuracy(waves, SR, target, kind=kind)


def test_a_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesto", None)  # import pesto now fails
    with pytest.raises(ImportError, match="pip install pesto-pitch"):
        judge_info("pesto")


# ----------------------------------------------------------------------------- no downloads


def test_weights_ship_in_the_package_and_nothing_is_fetched(monkeypatch):
    info = judge_info()
    assert info["package"] == "pesto-pitch" and info["model"] == "mir-1k_g7"
    assert 0 < info["weights_bytes"] < 1_000_000

    def refuse(*args, **kwargs):
        raise AssertionError(f"the pitch judge opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pitch._pesto_model.cache_clear()  # load the weights again, offline
    track = judge_pitch(_tone(69, True, 8192), SR)
    assert np.nanmedian(track.midi) == pytest.approx(69, abs=0.3)


def test_importing_the_package_does_not_load_a_tracker():
    code = ("import ditto2_nb, sys; "
            "print(sorted(m for m in ('pesto', 'torchcrepe', 'omegaconf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_crepe_candidate_reads_a_tone():
    pytest.importorskip("torchcrepe")
    track = judge_pitch(_tone(57, True), SR, judge="crepe-tiny")
    assert np.nanmedian(track.midi[0, INNER]) == pytest.approx(57, abs=0.3)
    assert np.isfinite(track.midi[0, INNER]).mean() >= 0.95
