"""A melody typed by hand (note names or ABC) becomes the per-frame target melody control takes."""

from __future__ import annotations

import numpy as np
import pytest

from ditto2_nb.controls import melody_control, melody_from_audio, melody_from_text
from ditto2_nb.core.config import MelConfig

CFG = MelConfig(frames=256)  # 4.1 s at 16 ms per frame
FRAME_S = CFG.hop_length / CFG.sample_rate


def _frame(t_s: float) -> int:
    return int(np.ceil(t_s / FRAME_S - 1e-9))


def test_note_names_land_on_the_right_frames_with_rests():
    m = melody_from_text("C4 E4 r G4:2", CFG, bpm=120)  # beats of 0.5 s
    assert [n.midi for n in m.notes] == [60, 64, 67] and m.dropped == 0
    assert [(n.onset, n.duration) for n in m.notes] == [(0.0, 0.5), (0.5, 0.5), (1.5, 1.0)]
    pc = m.pitch_class
    assert (pc[: _frame(0.5)] == 0).all() and (pc[_frame(0.5): _frame(1.0)] == 4).all()
    assert (pc[_frame(1.0): _frame(1.5)] == -1).all()  # the rest
    assert (pc[_frame(1.5): _frame(2.5)] == 7).all() and (pc[_frame(2.5):] == -1).all()  # after the end
    assert m.midi[_frame(1.5)] == 67 and pc.shape == (256,) and pc.dtype == np.int64


def test_accidentals_default_octave_and_commas():
    m = melody_from_text("C#4, Bb3, F, e5:0.5", CFG)
    assert [n.midi for n in m.notes] == [61, 58, 65, 76]


def test_abc_matches_the_same_tune_as_note_names():
    abc = melody_from_text("L:1/4\nK:G\nG A B c | d2 z d |", CFG, bpm=150)
    names = melody_from_text("G4 A4 B4 C5 D5:2 r D5", CFG, bpm=150)
    np.testing.assert_array_equal(abc.pitch_class, names.pitch_class)
    assert abc.notes == names.notes


def test_notes_past_the_clip_are_dropped_and_counted():
    m = melody_from_text(" ".join(["C4"] * 12), CFG, bpm=120)  # 6 s of notes, a 4.1-s clip
    assert len(m.notes) == 9 and m.dropped == 3  # onsets 0, 0.5, ..., 4.0 fit
    assert (m.pitch_class == 0).all()


def test_it_feeds_melody_control():
    m = melody_from_text("E4 D4 C4 D4 E4 E4 E4:2", CFG)
    control = melody_control(m.pitch_class, CFG)
    assert control.target.shape[-1] == CFG.frames


@pytest.mark.parametrize("text, message", [
    ("", "non-empty"), ("C4 H4", "token 2 'H4' is not a note"), ("C4:0", "positive number of beats"),
    ("C4:x", "positive number of beats"), ("r r", "no notes"), ("G#9", "outside MIDI"),
    ("K:C\n| C D E [", "could not be parsed"),
])
def test_bad_melodies_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        melody_from_text(text, CFG)


def test_bad_tempo_and_frames_are_named():
    with pytest.raises(ValueError, match="bpm=10"):
        melody_from_text("C4", CFG, bpm=10)
    with pytest.raises(ValueError, match="frames=0"):
        melody_from_text("C4", CFG, frames=0)


# ----------------------------------------------------------------------------- a melody from audio


def _played(melody, cfg, seconds: float, sr: int = 16000) -> np.ndarray:
    """Harmonic tones (three partials) playing a typed melody's notes, ``[seconds * sr]``."""
    t = np.arange(int(seconds * sr)) / sr
    wave = np.zeros_like(t)
    for onset, duration, midi in melody.notes:
        f, on = 440.0 * 2 ** ((midi - 69) / 12), (t >= onset) & (t < onset + duration)
        wave[on] += 0.3 * sum(np.sin(2 * np.pi * k * f * t[on]) / k for k in (1, 2, 3))
    return wave.astype(np.float32)


def test_a_played_melody_is_read_back_by_the_pitch_judge():
    cfg = MelConfig(frames=128)
    typed = melody_from_text("C5 E5 G5:0.5 r:0.5 A4:1.5", cfg, bpm=120)  # 0-2 s
    heard = melody_from_audio(_played(typed, cfg, 2.0), 16000, cfg)
    sounding = typed.pitch_class >= 0
    assert (heard.pitch_class[sounding] == typed.pitch_class[sounding]).mean() >= 0.9
    assert (heard.pitch_class[~sounding] < 0).mean() >= 0.9  # the rest stays a rest
    assert [n.midi for n in heard.notes] == [n.midi for n in typed.notes]
    assert heard.pitch_class.shape == heard.midi.shape == (128,) and heard.dropped == 0
    for n in heard.notes:  # notes and per-frame classes agree
        first = round(n.onset / (cfg.hop_length / cfg.sample_rate))
        assert heard.pitch_class[first] == n.midi % 12
    # a shorter recording: the frames after its end are rests; another rate is resampled
    short = melody_from_audio(_played(typed, cfg, 1.0, sr=22050), 22050, cfg)
    assert (short.pitch_class[70:] == -1).all() and len(short.notes) == 2
    # a minimum run length longer than every note: nothing is a note
    assert not melody_from_audio(_played(typed, cfg, 2.0), 16000, cfg, min_note_frames=64).notes


@pytest.mark.parametrize("kwargs, match", [
    ({"wave": np.zeros((2, 16000))}, r"reads one clip: give wave \[L\] or \[1, L\]"),
    ({"frames": 0}, r"frames=0 must be at least 1"),
    ({"min_note_frames": 0}, r"min_note_frames=0 must be at least 1"),
])
def test_melody_from_audio_refuses_bad_input(kwargs, match):
    args = {"wave": np.zeros(16000, dtype=np.float32), "sample_rate": 16000, "cfg": MelConfig(), **kwargs}
    with pytest.raises(ValueError, match=match):
        melody_from_audio(**args)
