"""The rendered repertoire's synthesisers: FluidSynth with a General MIDI soundfont, and the
additive fallback; what identifies them in a cache key.

Rendering
    FluidSynth through pyfluidsynth (one synthesiser per piece, FluidR3_GM's samples loaded as
    presets are selected: 180-350x real time for the synthesis at 16 kHz, ~100-150x with the
    synthesiser's start per piece; the ``fluidsynth`` command line writing a WAV per rendition
    measured 7-13x, so it is not used; see ``benchmarks/data_card.py``) with FluidR3_GM
    (``fluid-soundfont-gm``; ``$DITTO2_SOUNDFONT`` overrides the path), falling back to pretty_midi's
    TimGM6mb and then to the additive synthesiser of the procedural data (each GM program played
    with its nearest procedural timbre's wavetable, ``TAG_TIMBRE``), each fallback announced with a
    warning. Event times are exact to FluidSynth's 64-sample block (4 ms at 16 kHz).
    :func:`_renderer_key` is the renderer's part of a build's cache key (renderer, soundfont
    SHA-256, library versions).

Which renderer a build uses (and the announced fallbacks) is
:func:`~ditto2_nb.data.repertoire.resolve_renderer`'s choice.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .arranging import _GM_DRUMS, TAG_TIMBRE, _Part
from .corpus import _version
from .summaries import DataError
from .synthesis import _drum_samples, _render_voices

_SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                         "/usr/share/sounds/sf2/FluidR3_GM2-2.sf2",
                         "/opt/homebrew/share/soundfonts/FluidR3_GM.sf2",
                         "/usr/local/share/soundfonts/FluidR3_GM.sf2")


def find_soundfont() -> Path | None:
    """FluidR3_GM: ``$DITTO2_SOUNDFONT`` if set, else the usual system paths (Debian's
    ``fluid-soundfont-gm``, Homebrew); ``None`` when absent."""
    env = os.environ.get("DITTO2_SOUNDFONT")
    for p in ([env] if env else []) + list(_SOUNDFONT_CANDIDATES):
        if Path(p).is_file():
            return Path(p)
    return None


def _libfluidsynth() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, OSError: both mean "not available"
        return False
    return True


@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def soundfont_id(path: Path | None) -> dict[str, Any] | None:
    """``{"name", "sha256", "bytes"}`` of a soundfont (the cache key's part), or None."""
    if path is None:
        return None
    st = Path(path).stat()
    return {"name": Path(path).name, "sha256": _file_sha256(str(path), st.st_size, st.st_mtime_ns),
            "bytes": st.st_size}


def _fluidsynth_version() -> str | None:
    try:
        import ctypes

        import fluidsynth

        a, b, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        fluidsynth.fluid_version(ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
        return f"{a.value}.{b.value}.{c.value}"
    except Exception:  # noqa: BLE001
        return None


def _renderer_key(renderer: str, soundfont: Path | None) -> dict[str, Any]:
    key: dict[str, Any] = {"renderer": renderer, "numpy": _version("numpy")}
    if renderer == "fluidsynth":
        key.update(soundfont=soundfont_id(soundfont), libfluidsynth=_fluidsynth_version(),
                   pyfluidsynth=_version("pyfluidsynth"))
    return key


class _FluidRenderer:
    """One FluidSynth per piece (a fresh synthesiser makes each piece's audio independent of the
    others); renditions of the piece follow each other on it in a fixed order."""

    def __init__(self, soundfont: Path, sr: int):
        import fluidsynth

        self.sr = sr
        # dynamic sample loading: a preset's samples load when it is selected (~0.02 s per synth
        # instead of ~0.1-0.2 s to load all of FluidR3_GM)
        self.fs = fluidsynth.Synth(gain=0.3, samplerate=float(sr), channels=16,
                                   **{"synth.dynamic-sample-loading": 1})
        self.sfid = self.fs.sfload(str(soundfont))
        if self.sfid < 0:
            raise DataError(f"FluidSynth could not load the soundfont {soundfont}")

    def render(self, parts: list[_Part], n: int, reverb: int,
               volume_scale: float = 1.0) -> tuple[np.ndarray, bool]:
        fs, sr = self.fs, self.sr
        fs.system_reset()
        events = []
        chan = 0
        for part in parts:
            if part.program is None:
                ch = 9
                fs.program_select(9, self.sfid, 128, 0)
            else:
                ch = chan if chan < 9 else chan + 1
                chan += 1
                if ch > 15:
                    continue
                fs.program_select(ch, self.sfid, 0, int(part.program))
            fs.cc(ch, 7, int(round(part.volume * volume_scale)))
            fs.cc(ch, 91, int(reverb))
            fs.cc(ch, 93, 0)
            for on, du, m, v in part.notes:
                s0 = int(round(on * sr))
                s1 = max(int(round((on + du) * sr)), s0 + 1)
                if 0 <= m <= 127:
                    events.append((s0, 1, ch, int(m), int(v)))
                    events.append((s1, 0, ch, int(m), 0))
        events.sort()
        chunks, pos = [], 0
        for s, on, ch, m, v in events:
            s = min(s, n)
            if s > pos:
                chunks.append(fs.get_samples(s - pos))
                pos = s
            if on:
                fs.noteon(ch, m, v)
            else:
                fs.noteoff(ch, m)
        if n > pos:
            chunks.append(fs.get_samples(n - pos))
        pcm = np.concatenate(chunks).reshape(-1, 2)
        clipped = bool(np.abs(pcm).max() >= 32767) if len(pcm) else False
        wave = pcm.astype(np.float32).mean(axis=1) / 32768.0
        fs.system_reset()
        fs.get_samples(int(0.25 * sr))  # let the effects ring out before the next rendition
        return wave, clipped

    def close(self) -> None:
        self.fs.delete()


def _additive(parts: list[_Part], n: int, sr: int, seed: int) -> np.ndarray:
    """The additive fallback: each GM program with its nearest procedural timbre's wavetable and
    envelope (``TAG_TIMBRE``), the chords as a pad, the bass as the procedural bass, drums as the
    procedural drum samples."""
    out = np.zeros(n, np.float32)
    rng = np.random.default_rng(seed)
    drums = None
    for part in parts:
        if not len(part.notes):
            continue
        gain = 0.36 * (part.volume / 110.0) ** 2
        if part.program is None:
            drums = drums or _drum_samples(rng, sr)
            name = {v: k for k, v in _GM_DRUMS.items()}
            for on, _, key, v in part.notes:
                s = drums[name[int(key)]]
                p = int(round(on * sr))
                seg = s[: max(n - p, 0)]
                out[p: p + len(seg)] += gain * (v / 127.0) * seg
            continue
        timbre = {"chords": "pad", "bass": "bass"}.get(part.role, TAG_TIMBRE.get(part.program, "organ"))
        on, du, m, v = (part.notes[:, i] for i in range(4))
        out += _render_voices(on, du, m[None], (gain * v / 127.0)[None], timbre, sr, n)
    return out
