"""Solutions to T09 (your own melody).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T09_your_melody.ipynb``; the lines above the first section only make this file importable on its own.
"""

import numpy as np

SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


# %% ex-notes
SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def my_notes(text, bpm):
    """Note names -> [(onset_s, duration_s, midi)]: C4 = 60, so MIDI = 12 * (octave + 1) + semitone."""
    beat_s, t, notes = 60.0 / bpm, 0.0, []
    for token in text.split():
        name, _, beats = token.partition(":")
        length = (float(beats) if beats else 1.0) * beat_s
        if name != "r":
            accidental = {"#": 1, "b": -1}.get(name[1:2], 0)
            octave = int(name[1 + (accidental != 0):] or 4)
            notes.append((t, length, 12 * (octave + 1) + SEMITONE[name[0]] + accidental))
        t += length  # a rest only moves the time on
    return notes

# %% ex-target
def my_melody_target(notes, cfg, frames):
    """Pitch class of the note sounding at each frame's instant, -1 where none does: [frames]."""
    times = np.arange(frames) * cfg.hop_length / cfg.sample_rate
    target = np.full(frames, -1, dtype=np.int64)
    for onset, duration, midi in notes:
        target[(times >= onset) & (times < onset + duration)] = int(midi) % 12
    return target
