"""Checks of T08 (steer a melody): the chroma of a mel (pitch-class templates, log energy, softmax
per frame) and the melody loss (cross-entropy of the target pitch class on voiced frames); and of
T09 (your own melody): reading typed note names and placing the notes on a clip's frames."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...audio.mel import norm_to_power
from ...controls.melody import MelodyControl, chroma, chroma_matrix
from ...core.config import MelConfig
from ...data.labels import Note, _pitch_class, _pitch_per_frame
from .checking import TutorError, _as_tensor, _call, _compare, _gen, _needs_grad, _passed


def _random_mels(g: torch.Generator, cfg: MelConfig, b: int = 3, frames: int = 20) -> torch.Tensor:
    """Mels with a loud bin pattern per example, frame-to-frame variation and some floor bins."""
    base = torch.rand(b, cfg.n_mels, 1, generator=g) * 1.2 - 0.9
    return (base + 0.35 * torch.randn(b, cfg.n_mels, frames, generator=g)).clamp(-1.0, 1.0)


def _random_target(g: torch.Generator, b: int, frames: int) -> torch.Tensor:
    """Pitch classes ``[b, frames]`` with about a quarter of rests (-1), every row partly voiced."""
    y = torch.randint(0, 12, (b, frames), generator=g)
    rest = torch.rand(b, frames, generator=g) < 0.25
    rest[:, 0] = False
    return torch.where(rest, -1, y)


def _energy(mel: torch.Tensor, cfg: MelConfig, values: torch.Tensor | None = None) -> torch.Tensor:
    """``chroma_matrix @ values`` per frame (default values: the mel power)."""
    v = norm_to_power(mel, cfg) if values is None else values
    return torch.einsum("cm,bmt->bct", chroma_matrix(cfg).to(v), v)


def _call_hinted(fn, *args, signature: str):
    """:func:`_call`, with a hint for two errors typical here: a -1 (rest) used as an index, and a
    signature that lost an argument."""
    try:
        return _call(fn, *args)
    except TutorError as e:
        msg = str(e)
        if "out of bounds" in msg or "index -1" in msg:
            msg += (" Hint: a rest is -1, which is no pitch-class index: gather with "
                    "target_pc.clamp_min(0), then mask the rests out of the average.")
        elif "positional argument" in msg:
            msg += f" Hint: keep the signature of the exercise cell, {signature}."
        raise TutorError(msg) from None


def _grad_ok(x: torch.Tensor) -> bool:
    return x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def check_chroma(fn: Callable) -> None:
    """T08: ``fn(mel [B, n_mels, frames], cfg, temperature) -> [B, 12, frames]`` pitch-class
    probabilities per frame, equal to :func:`ditto2_nb.controls.chroma` and differentiable."""
    g = _gen()
    taus = (1.0, float(torch.empty(1).uniform_(0.3, 0.7, generator=g)),
            float(torch.empty(1).uniform_(1.5, 3.0, generator=g)))
    cfgs = (MelConfig(), MelConfig(n_mels=int(torch.randint(40, 97, (1,), generator=g))))
    for cfg, tau in zip((cfgs[0], cfgs[1], cfgs[0]), taus):
        mel = _random_mels(g, cfg)
        want = chroma(mel, cfg, tau)
        e = _energy(mel, cfg)
        logits = torch.log10(e + 1e-10)
        mistakes = [
            ("the softmax runs over the wrong axis: the 12 pitch classes of each frame must sum to 1, "
             "so normalise over dim=1 (the pitch-class axis), not over the frames.",
             torch.softmax(logits / tau, dim=-1)),
            ("divide the log energy by the temperature (logits = log10(E) / temperature); yours looks "
             "multiplied by it.", torch.softmax(logits * tau, dim=1)),
            ("the temperature is missing: divide the log energy by it before the softmax.",
             torch.softmax(logits, dim=1)),
            ("use log10, not the natural log (log10(E) / temperature are the logits).",
             torch.softmax(torch.log(e + 1e-10) / tau, dim=1)),
            ("take the log of the energy before the softmax: the logits are log10(E) / temperature, "
             "not E itself.", torch.softmax(e / tau, dim=1)),
            ("gather the mel *power* into pitch classes (audio.norm_to_power(mel, cfg)), not the "
             "normalised mel values; then take log10.",
             torch.softmax(torch.log10(_energy(mel, cfg, mel).clamp_min(1e-10)) / tau, dim=1)),
            ("the softmax is missing: return probabilities that sum to 1 over the 12 pitch classes.",
             logits / tau),
        ]
        x = mel.clone().requires_grad_(True)
        got = _call_hinted(fn, x, cfg, tau, signature="my_chroma(mel, cfg, temperature=1.0)")
        _compare(got, want, f"my_chroma(mel, cfg, temperature={tau:.3g}) with n_mels={cfg.n_mels}",
                 rtol=1e-4, atol=1e-6, mistakes=mistakes,
                 nonfinite="The log of a negative or zero energy? Convert the mel to power first "
                           "(audio.norm_to_power), and add 1e-10 inside the log.",
                 hint=" The recipe: P = norm_to_power(mel, cfg); E = chroma_matrix(cfg) @ P per frame; "
                      "softmax over dim=1 of log10(E + 1e-10) / temperature.")
        _needs_grad(got, "my_chroma", "the mel")
        (got * torch.arange(12.0)[None, :, None]).sum().backward()
        if not _grad_ok(x):
            raise TutorError("my_chroma is not differentiable: the gradient with respect to the mel is "
                             "missing, zero or NaN.")
    _passed(f"your chroma matches controls.chroma for n_mels = {cfgs[0].n_mels}, {cfgs[1].n_mels} and "
            f"temperatures {', '.join(f'{t:.2g}' for t in taus)}, and gradients reach the mel")


def check_melody_loss(fn: Callable) -> None:
    """T08: ``fn(mel [B, n_mels, frames], target_pc [B, frames], cfg, temperature=1.0) -> [B]``: the
    cross-entropy ``-ln p[y_t, t]`` of the chroma, averaged over the voiced frames (``y_t >= 0``), equal to
    :meth:`ditto2_nb.controls.MelodyControl.loss`."""
    g = _gen()
    cfg = MelConfig()
    for tau in (None, float(torch.empty(1).uniform_(0.4, 2.5, generator=g))):
        b, frames = 3, 24
        mel = _random_mels(g, cfg, b, frames)
        y = _random_target(g, b, frames)
        t = 1.0 if tau is None else tau
        want = MelodyControl(cfg, frames, y, t).loss(mel)
        p = chroma(mel, cfg, t)
        py = p.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, frames]
        voiced = (y >= 0).double()
        nll = -py.log()

        def over_voiced(v, voiced=voiced):
            return (v * voiced).sum(-1) / voiced.sum(-1)

        mistakes = [
            ("use the log-probability: the cross-entropy is -ln p[target], not -p[target].",
             over_voiced(-py)),
            ("use the log-probability, -ln p[target], not 1 - p[target].", over_voiced(1 - py)),
            ("the minus sign is missing: the cross-entropy is -ln p[target] (positive; lower is better).",
             over_voiced(py.log())),
            ("use the natural log (torch.log or torch.log_softmax), not log10, for the cross-entropy.",
             over_voiced(-py.log10())),
            ("average over the voiced frames: divide by their number, do not just sum.",
             (nll * voiced).sum(-1)),
            ("the rests (-1) must be ignored: average over the voiced frames only (target >= 0), "
             "not over all frames.", nll.mean(-1)),
            ("the rests are masked, but divide by the number of *voiced* frames, not by all frames.",
             (nll * voiced).sum(-1) / frames),
            ("the temperature is not used: pass it on to your chroma (logits / temperature).",
             over_voiced(-chroma(mel, cfg, 1.0).gather(1, y.clamp_min(0)[:, None])[:, 0].log())),
        ]
        x = mel.clone().requires_grad_(True)
        args = (x, y.clone(), cfg) if tau is None else (x, y.clone(), cfg, tau)
        got = _call_hinted(fn, *args, signature="my_melody_loss(mel, target_pc, cfg, temperature=1.0)")
        what = f"my_melody_loss(mel, target_pc, cfg{'' if tau is None else f', temperature={tau:.3g}'})"
        _compare(got, want, what, rtol=1e-4, atol=1e-6, mistakes=mistakes,
                 nonfinite="The log of a zero probability (use log_softmax of the logits), or a division "
                           "by a voiced-frame count of zero?",
                 hint=" The loss of example b is the mean over its voiced frames t (target >= 0) of "
                      "-ln chroma[b, target[b, t], t].",
                 shape_hint=" One loss per example: [B].")
        _needs_grad(got, "my_melody_loss", "the mel").sum().backward()
        if not _grad_ok(x):
            raise TutorError("my_melody_loss is not differentiable with respect to the mel (missing, zero "
                             "or NaN gradient).")
    _passed("your melody loss equals MelodyControl(...).loss (cross-entropy on voiced frames, one value "
            "per example) at two temperatures, and is differentiable")


# ----------------------------------------------------------------------------- T09: your own melody

_LETTERS = ("C", "D", "E", "F", "G", "A", "B")


def _random_melody_text(g: torch.Generator, n: int = 9) -> str:
    """Note-name tokens: letters, sharps and flats, octaves 3-6 (some left out: octave 4), lengths
    (some left out: one beat) and rests."""
    tokens = []
    for k in range(n):  # tokens 1-4: no octave, a rest, a sharp, a flat (every rule is exercised)
        u = torch.rand(4, generator=g).tolist()
        length = ("", ":0.5", ":2", ":1.5", ":0.25")[int(u[3] * 5)]
        if k == 2 or (k > 4 and u[0] < 0.15):
            tokens.append("r" + length)
            continue
        letter = _LETTERS[int(u[1] * 7)]
        acc = {3: "#", 4: "b"}.get(k, ("", "#", "b")[int(u[2] * 3)])
        octave = "" if k == 1 or u[0] > 0.85 else str(3 + int(u[0] * 4.7))
        tokens.append(letter + acc + octave + length)
    return " ".join(tokens)


def _rewritten(text: str, token_fn) -> str:
    """The melody with each ``name:beats`` token's name passed through ``token_fn`` (None drops the
    token): how a misreading of the notation reads the same melody."""
    out = []
    for token in text.split():
        name, colon, beats = token.partition(":")
        if (new := token_fn(name)) is not None:
            out.append(new + colon + beats)
    return " ".join(out)


def _read(melody: str, beat_s: float) -> np.ndarray:
    """The library's reading of note names (:func:`ditto2_nb.controls.melody_from_text`'s):
    ``[notes, 3]`` rows of (onset s, duration s, MIDI)."""
    from ...controls.melody import _note_names

    return np.array([tuple(n) for n in _note_names(melody, beat_s)], dtype=np.float64).reshape(-1, 3)


def _swapped_accidentals(name: str) -> str:
    return name.replace("#", "%").replace("b", "#").replace("%", "b")


def _bare_octave(octave: int):
    return lambda name: name if name == "r" or name[-1].isdigit() else name + str(octave)


def check_typed_notes(fn: Callable) -> None:
    """T09: ``fn(text, bpm) -> [(onset_s, duration_s, midi), ...]``: note names read as the library
    reads them (:func:`ditto2_nb.controls.melody_from_text`): C4 = MIDI 60, ``#``/``b`` one semitone
    up/down, octave 4 when none is written, ``:beats`` lengths (one beat by default) of ``60 / bpm``
    seconds each, ``r`` a rest that only advances time."""
    octave = ("the octave numbers are off by one: C4 is middle C, MIDI 60, so MIDI = 12 * (octave + 1) "
              "+ semitone.")
    default = "a note without an octave number is in octave 4 (the one of middle C)."
    g = _gen()
    for _ in range(3):
        text = _random_melody_text(g)
        bpm = float(torch.randint(60, 181, (1,), generator=g))
        beat_s = 60.0 / bpm
        want = _read(text, beat_s)
        out = _call(fn, text, bpm, what=f"my_notes({text!r}, bpm={bpm:g})")
        try:
            got = np.array([tuple(float(v) for v in n) for n in out], dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise TutorError(f"my_notes should return a list of (onset_s, duration_s, midi) triples, got "
                             f"{str(out)[:80]}") from None
        what = f"my_notes({text!r}, bpm={bpm:g})"
        if len(got) != len(want):
            rests = sum(tok.split(":")[0] == "r" for tok in text.split())
            extra = (" Rests ('r') are no notes: they only move the time on." if len(got) == len(want) + rests
                     else "")
            raise TutorError(f"{what} returned {len(got)} notes; the melody has {len(want)}.{extra}")
        mistakes = [  # each misreading read by the library itself, on a rewritten melody or tempo
            (octave, want + [0, 0, 12]), (octave, want - [0, 0, 12]),
            ("sharps and flats are swapped: '#' raises a note by one semitone, 'b' lowers it.",
             _read(_rewritten(text, _swapped_accidentals), beat_s)),
            ("a rest must move the time on by its length, so the next note starts later.",
             _read(_rewritten(text, lambda n: None if n == "r" else n), beat_s)),
            ("the onsets and durations are in beats: convert them to seconds (one beat lasts 60 / bpm s).",
             _read(text, 1.0)),
            ("one beat lasts 60 / bpm seconds, not bpm / 60.", _read(text, bpm / 60.0)),
            (default, _read(_rewritten(text, _bare_octave(3)), beat_s)),
            (default, _read(_rewritten(text, _bare_octave(5)), beat_s)),
        ]
        _compare(torch.from_numpy(got), torch.from_numpy(want), what, rtol=1e-6, atol=1e-6,
                 mistakes=[(m, torch.from_numpy(v)) for m, v in mistakes if v.shape == want.shape],
                 hint=" Each row is (onset in s, duration in s, MIDI); print yours next to the melody.")
    _passed("your note reader agrees with the library's on three random melodies (octaves, sharps and "
            "flats, lengths, rests, tempo)")


def _frame_targets(notes: np.ndarray, cfg: MelConfig, frames: int, *, rest: int = -1,
                   pitch_class: bool = True, start: str = "at_or_after") -> np.ndarray:
    """Typical misplacements of notes on frames, ``[frames]`` (the right one: the library's)."""
    step = cfg.hop_length / cfg.sample_rate
    times = np.arange(frames) * step
    out = np.full(frames, rest, dtype=np.int64)
    for onset, duration, midi in notes:
        if start == "rounded":
            first, end = round(onset / step), round((onset + duration) / step)  # frame indices
            on = (np.arange(frames) >= first) & (np.arange(frames) < end)
        else:
            on = (times >= onset) & (times < onset + duration)
        out[on] = int(midi) % 12 if pitch_class else int(midi)
    return out


def _random_notes(g: torch.Generator, cfg: MelConfig, frames: int) -> np.ndarray:
    """Consecutive notes (some gaps) at onsets off the frame grid, the last ones past the clip's end."""
    step = cfg.hop_length / cfg.sample_rate
    rows, t = [], float(torch.rand(1, generator=g)) * 3 * step
    while t < (frames + 8) * step:
        d = (0.5 + 3 * float(torch.rand(1, generator=g))) * 3.3 * step
        if float(torch.rand(1, generator=g)) < 0.8:
            rows.append((t, d, 55 + int(torch.randint(0, 30, (1,), generator=g))))
        t += d
    return np.array(rows)


def check_melody_target(fn: Callable) -> None:
    """T09: ``fn(notes, cfg, frames) -> [frames]`` integer pitch classes: frame ``t`` (the instant
    ``t * hop_length / sample_rate`` s) takes the pitch class of the note sounding then
    (``onset <= time < onset + duration``), -1 where none does; notes past the clip are ignored.
    As :func:`ditto2_nb.controls.melody_from_text` places a typed melody."""
    g = _gen()
    cfgs = (MelConfig(), MelConfig(sample_rate=22_050, hop_length=256))
    for cfg, frames in zip(cfgs, (int(torch.randint(40, 80, (1,), generator=g)), 64)):
        notes = _random_notes(g, cfg, frames)
        times = np.arange(frames) * cfg.hop_length / cfg.sample_rate
        pitch = _pitch_per_frame([Note(*n[:2], int(n[2])) for n in notes], times)  # the library's placement
        want = _pitch_class(pitch).astype(np.int64)
        what = f"my_melody_target(notes, cfg, frames={frames}) at {cfg.sample_rate} Hz, hop {cfg.hop_length}"
        got = _call(fn, [tuple(n) for n in notes], cfg, frames, what=what)
        got = _as_tensor(got, what)
        if got.is_floating_point() and not torch.equal(got, got.round()):
            raise TutorError(f"{what} should hold whole pitch classes (0-11, -1 = rest), got fractions.")
        mistakes = [
            ("a frame without a note is a rest, -1 (0 would be the pitch class C).",
             _frame_targets(notes, cfg, frames, rest=0)),
            ("the target holds pitch classes, MIDI % 12 (0 = C ... 11 = B), not MIDI numbers.",
             _frame_targets(notes, cfg, frames, pitch_class=False)),
            ("a note sounds on the frames whose instant t * hop_length / sample_rate lies in [onset, "
             "onset + duration): compare times, do not round the onset to the nearest frame.",
             _frame_targets(notes, cfg, frames, start="rounded")),
        ]
        _compare(got.long(), torch.from_numpy(want), what, rtol=0, atol=0.5,
                 mistakes=[(m, torch.from_numpy(v)) for m, v in mistakes],
                 hint=" Frame t is the instant t * cfg.hop_length / cfg.sample_rate seconds.",
                 shape_hint=f" One value per frame: [{frames}].")
    _passed("your target puts every note on the right frames with its pitch class, rests at -1, at two "
            "frame rates")
