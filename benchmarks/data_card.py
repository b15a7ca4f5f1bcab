"""The rendered repertoire's data card, and how fast each renderer is.

Usage::

    .venv/bin/python benchmarks/data_card.py --preset laptop              # render (or load) + card
    .venv/bin/python benchmarks/data_card.py --preset laptop --frames 256 # the same with 4-s clips
    .venv/bin/python benchmarks/data_card.py --speed-only                 # renderer speeds only

The card (``benchmarks/results/data_<preset>[_f<frames>].json``) counts clips, pieces, GM
instruments, seconds by split (train / held-out / evaluator, from disjoint pieces), by collection,
instrument, tempo, mode, dynamics and accompaniment; the rendering time of each split (parse,
synthesis, mels; the stats of the build that made the cache); the pieces, groups and melodies
shared across splits (all 0); and, with ``--speed`` (default on), the measured speed of FluidSynth
through pyfluidsynth, of the ``fluidsynth`` command line writing a 16 kHz WAV, and of the additive
fallback, on the same renditions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ditto2_nb.core.config import get_preset
from ditto2_nb.data import repertoire as R

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _renditions(n_pieces: int, seconds: float, sr: int) -> list[tuple[R.Piece, list]]:
    """Fixed renditions (parts) of the first held-out pieces, for timing the renderers alike."""
    out = []
    for piece in R.split_pieces("heldout"):
        if len(out) == n_pieces:
            break
        try:
            score = R.load_score(piece)
        except R.DataError:
            continue
        rng = np.random.default_rng(len(out))
        plan = R._plan(rng, score, seconds, set(), 1)
        parts, pre, _, _ = R._perform(score, plan, seconds)
        out.append((piece, parts, int(round((pre + seconds) * sr)), plan))
    return out


def _write_midi(parts: list, path: Path, reverb: int) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for part in parts:
        inst = pretty_midi.Instrument(program=part.program or 0, is_drum=part.program is None)
        inst.control_changes += [pretty_midi.ControlChange(7, part.volume, 0.0),
                                 pretty_midi.ControlChange(91, reverb, 0.0)]
        for on, du, m, v in part.notes:
            inst.notes.append(pretty_midi.Note(int(v), int(m), float(on), float(on + du)))
        pm.instruments.append(inst)
    pm.write(str(path))


def renderer_speed(n_pieces: int = 12, seconds: float = 4.0, sr: int = 16000) -> dict[str, object]:
    """Seconds of audio rendered per second of wall time, per renderer, on the same renditions."""
    sf = R.find_soundfont() or R.timgm_soundfont_path()
    items = _renditions(n_pieces, seconds, sr)
    audio = sum(n for _, _, n, _ in items) / sr
    result: dict[str, object] = {"renditions": len(items), "audio_s": round(audio, 2),
                                 "soundfont": sf.name if sf else None}
    if sf is not None and R._libfluidsynth():
        t0 = time.perf_counter()
        for _, parts, n, plan in items:  # one synthesiser per piece, as the repertoire does
            synth = R._FluidRenderer(sf, sr)
            synth.render(parts, n, plan.reverb)
            synth.close()
        wall = time.perf_counter() - t0
        result["pyfluidsynth"] = {"wall_s": round(wall, 3), "x_realtime": round(audio / wall, 1),
                                  "note": "a fresh synthesiser per piece (soundfont loaded dynamically)"}
        synth = R._FluidRenderer(sf, sr)
        t0 = time.perf_counter()
        for _, parts, n, plan in items:
            synth.render(parts, n, plan.reverb)
        wall = time.perf_counter() - t0
        synth.close()
        result["pyfluidsynth_one_synth"] = {"wall_s": round(wall, 3), "x_realtime": round(audio / wall, 1),
                                            "note": "synthesis alone (one synthesiser for all)"}
    exe = shutil.which("fluidsynth")
    if sf is not None and exe:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            for i, (_, parts, _, plan) in enumerate(items):
                mid, wav = Path(tmp) / f"{i}.mid", Path(tmp) / f"{i}.wav"
                _write_midi(parts, mid, plan.reverb)
                cmd = [exe, "-ni", "-q", "-g", "0.3", "-r", str(sr), "-F", str(wav), str(sf), str(mid)]
                subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - t0
        result["fluidsynth_cli"] = {"wall_s": round(wall, 3), "x_realtime": round(audio / wall, 1),
                                    "note": "MIDI file written, fluidsynth -F out.wav -r 16000 per rendition"}
    R._additive(items[0][1], items[0][2], sr, 0)  # warm-up: wavetables are built on first use
    t0 = time.perf_counter()
    for _, parts, n, plan in items:
        R._additive(parts, n, sr, plan.seed)
    wall = time.perf_counter() - t0
    result["additive"] = {"wall_s": round(wall, 3), "x_realtime": round(audio / wall, 1)}
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--frames", type=int, default=None, help="clip length in frames (256 = 4 s)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--renderer", default="auto", choices=("auto", "fluidsynth", "additive"))
    ap.add_argument("--no-speed", action="store_true", help="skip the renderer speed comparison")
    ap.add_argument("--speed-only", action="store_true", help="only the renderer speed comparison")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    info = {"machine": machine()}
    if a.speed_only:
        info["speed"] = {f"{s:g}s_windows": renderer_speed(seconds=s) for s in (2.048, 4.096)}
        print(json.dumps(info, indent=1))
        return
    preset = get_preset(a.preset)
    t0 = time.perf_counter()
    _, card = R.render_preset(preset, frames=a.frames, renderer=a.renderer, workers=a.workers, progress=True)
    card["wall_s_this_run"] = round(time.perf_counter() - t0, 1)
    card.update(info)
    mel = preset.mel if a.frames is None else replace(preset.mel, frames=a.frames)
    card["seconds_per_clip"] = {
        s: round(v["rendering"]["wall_s"] / v["clips"], 4) for s, v in card["splits"].items()
        if v["rendering"].get("wall_s")}
    if not a.no_speed:
        card["speed"] = renderer_speed(seconds=mel.seconds)
    name = f"data_{a.preset}" + (f"_f{a.frames}" if a.frames else "") + ".json"
    path = R.write_data_card(card, a.out or RESULTS / name)
    brief = {s: {k: v[k] for k in ("clips", "pieces", "seconds")} | {"instruments": len(v["instruments"])}
             for s, v in card["splits"].items()}
    print(json.dumps({"splits": brief, "shared": card["pieces_shared_across_splits"],
                      "speed": card.get("speed")}, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
