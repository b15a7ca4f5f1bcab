"""How many mel bins a 4-second clip needs: 64 against 128, by the numbers the choice rests on.

Usage::

    .venv/bin/python benchmarks/mel_resolution.py            # laptop preset at 256 frames

At 16 kHz with 64 mels over 0-8 kHz a bin between middle C and 1 kHz is 1.1 to 2.4 semitones wide,
wider than the semitone a melody lives on; 128 bins halve that. What it costs and buys, on the
rendered repertoire's *held-out* pieces (the same clips for both):

* ``score_from_mel``: the melody control's own reading of the true mel (``pitch_classes_from_mel``,
  the target DITTO-2 steers towards, from the same chroma the loss uses) against the score's
  pitch class, on the score's sounding frames where the rule calls the frame voiced
  (``accuracy_on_voiced``), how many sounding frames it calls voiced (``voiced_recall``) and how
  many it reads correctly (``correct_of_sounding``, a rest counting as wrong): the ceiling of melody
  control at this resolution;
* ``griffin_lim_pitch``: the pitch judge (PESTO) on Griffin-Lim's audio (32 iterations) from the
  true mel, against the score: how much pitch the mel keeps for a vocoder that knows nothing of music;
* ``unet``: the preset's teacher network at ``[n_mels, 256]``, batch 32: parameters, and the forward
  plus backward time of one training step (median of warm runs, the two sizes interleaved).

``melodic`` clips are those whose melody plays alone or doubled an octave below, without drums
(where a one-pitch reading can follow the score); ``all`` adds chords, bass and drums.
Writes ``benchmarks/results/mel_resolution_<preset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder, wave_to_mel
from ditto2_nb.audio.pitch import judge_info, melody_accuracy
from ditto2_nb.controls.melody import pitch_classes_from_mel
from ditto2_nb.core import metrics
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data.repertoire import render_repertoire, repertoire_sizes
from ditto2_nb.diffusion.networks import UNet1d

RESULTS = Path(__file__).resolve().parent / "results"
MELODIC = ("none", "octave")


def summary(values) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    q = np.percentile(v, [25, 50, 75])
    return {"median": round(float(q[1]), 5), "iqr": [round(float(q[0]), 5), round(float(q[2]), 5)],
            "mean": round(float(v.mean()), 5), "n": int(len(v))}


def score_reading(mels: torch.Tensor, targets: np.ndarray, cfg) -> dict:
    """The control's pitch classes from the true mel against the score, per clip."""
    read = pitch_classes_from_mel(mels, cfg).numpy()
    acc, recall, correct = [], [], []
    for r, t in zip(read, targets):
        sounding = t >= 0
        voiced = sounding & (r >= 0)
        recall.append(voiced.sum() / max(sounding.sum(), 1))
        correct.append(float((r[sounding] == t[sounding]).mean()))
        acc.append(float((r[voiced] == t[voiced]).mean()) if voiced.any() else float("nan"))
    return {"accuracy_on_voiced": acc, "voiced_recall": recall, "correct_of_sounding": correct}


def unet_time(net_cfg, frames: int, batch: int, reps: int) -> dict:
    """Forward + backward of the denoiser's loss on random input, median of ``reps`` warm runs."""
    torch.manual_seed(0)
    net = UNet1d(net_cfg)
    x = torch.randn(batch, net_cfg.n_mels, frames)
    sigma = torch.rand(batch) * 3 + 0.01
    tags = torch.zeros(batch, len(net_cfg.tag_vocab), dtype=torch.long) if net_cfg.tag_vocab else None

    def step():
        net.zero_grad(set_to_none=True)
        out = net(x, sigma, tags) if tags is not None else net(x, sigma)
        out.square().mean().backward()

    return {"params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
            "fwd_bwd_s": round(metrics.time_call(step, repeats=reps), 4)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--mels", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    base = replace(p.mel, frames=a.frames)
    load_start = os.getloadavg()
    held = render_repertoire(base, "heldout", repertoire_sizes(p.data)["heldout"], seed=p.data.seed)
    keep = [i for i, lab in enumerate(held.labels) if (lab.pitch_class >= 0).sum() >= 8]
    melodic = [k for k, i in enumerate(keep)
               if held.info[i]["accompaniment"] in MELODIC and not held.labels[i].has_drums]
    waves = torch.as_tensor(held.waves[keep])
    targets = np.stack([held.labels[i].pitch_class for i in keep]).astype(np.int64)
    print(f"{len(keep)} held-out clips ({len(melodic)} melodic), {held.summary.renderer}", flush=True)

    out: dict = {}
    for n in a.mels:
        cfg = replace(base, n_mels=n)
        mels = wave_to_mel(waves, cfg)
        reading = score_reading(mels, targets, cfg)
        gl = GriffinLimVocoder(cfg, n_iter=32)
        with torch.inference_mode():
            audio = torch.cat([gl(mels[i: i + 16]) for i in range(0, len(mels), 16)])
        judged = melody_accuracy(audio, cfg.sample_rate, targets, cfg, kind="pitch_class")
        res = {"bin_width_semitones_262_1000hz": bin_widths(cfg)}
        for name, idx in (("all", range(len(keep))), ("melodic", melodic)):
            res[name] = {
                "score_from_mel_accuracy_on_voiced": summary([reading["accuracy_on_voiced"][i] for i in idx]),
                "score_from_mel_voiced_recall": summary([reading["voiced_recall"][i] for i in idx]),
                "score_from_mel_correct_of_sounding": summary([reading["correct_of_sounding"][i]
                                                               for i in idx]),
                "griffin_lim_pitch_accuracy": summary([judged["pitch_class_accuracy"][i] for i in idx]),
            }
        out[str(n)] = res
        print(n, {k: {m: v["median"] for m, v in res[k].items()} for k in ("all", "melodic")}, flush=True)

    timing = {str(n): [] for n in a.mels}
    for _ in range(2):  # interleaved so a slow spell falls on both sizes
        for n in a.mels:
            timing[str(n)].append(unet_time(replace(p.net, n_mels=n), a.frames, a.batch, a.reps))
    for n in a.mels:
        best = min(timing[str(n)], key=lambda r: r["fwd_bwd_s"])
        out[str(n)]["unet"] = {**best, "batch": a.batch, "frames": a.frames}

    result = {
        "preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "clip_seconds": round(base.seconds, 3), "clips": {"all": len(keep), "melodic": len(melodic)},
        "renderer": held.summary.renderer, "judge": judge_info(),
        "by_n_mels": out,
        "method": {"score_from_mel": "pitch_classes_from_mel (the melody control's target rule) vs the "
                                     "score's pitch class on sounding frames the rule calls voiced",
                   "griffin_lim_pitch": "melody_accuracy(kind='pitch_class') by the pitch judge on "
                                        "Griffin-Lim (32 iterations) of the true mel",
                   "unet": "teacher UNet of the preset with n_mels channels, fwd+bwd of a mean-square loss, "
                           "best of two interleaved rounds of median-of-reps"},
    }
    path = Path(a.out) if a.out else RESULTS / f"mel_resolution_{p.name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", path)
    return result


def bin_widths(cfg) -> list[float]:
    """Widths in semitones of the mel bins whose centres lie between middle C and 1 kHz."""
    from ditto2_nb.controls.melody import mel_centre_hz
    hz = mel_centre_hz(cfg).numpy()
    inside = hz[(hz >= 261.6) & (hz <= 1000)]
    w = 12 * np.log2(inside[1:] / inside[:-1])
    return [round(float(w.min()), 2), round(float(w.max()), 2)]


if __name__ == "__main__":
    main()
