"""The trained vocoder against Griffin-Lim, on held-out pieces' true mels.

Usage::

    .venv/bin/python benchmarks/vocoder.py                       # laptop: the preset's vocoder file
    .venv/bin/python benchmarks/vocoder.py --vocoder FILE --clips 48 --reps 7

Material: clips of the rendered repertoire's *held-out* split (``ditto2_nb.data.repertoire``: pieces
never in the vocoder's training split, which is split by piece group) with their scores' pitch per
frame: ``all`` = ``--clips`` clips, one per piece first; ``melodic`` = every held-out clip whose
melody plays alone or doubled an octave below, without drums (the pitch judge reads one pitch: with
chords, bass or drums it often reads the accompaniment, and the original audio itself agrees with
the score on only about half of the frames). Both vocoders get the same clips' true mels
(``wave_to_mel`` of the rendered audio) and are judged on:

(a) ``mrstft_other_resolutions``: multi-resolution STFT distance of the output to the original audio
    at resolutions other than the mel's own (n_fft/hop 2048/512, 512/128, 256/64; Griffin-Lim fits
    the mel's 1024/256 by construction): per resolution spectral convergence plus the mean
    absolute difference of natural-log magnitudes, averaged (lower is better); the mel's own
    resolution is reported beside it (``mrstft_mel_resolution``);
(b) ``pitch_accuracy`` (all clips) and ``pitch_accuracy_melodic``: pitch-class accuracy of the output
    against the score on its sounding frames, read by the pitch judge (PESTO,
    ``melody_accuracy(kind="pitch_class")``); the original audio's accuracy is the ceiling
    (``reference``);
(c) ``rtf_batch1`` (2-s clips; ``rtf_batch1_4s``: 4-s mels, two clips joined) and
    ``rtf_batch8_per_clip``: seconds of compute per second of audio, the median of ``--reps`` warm
    runs, the methods interleaved run by run so a slow spell of the machine falls on both;
(d) ``clipped_fraction`` (samples at or beyond 0.999 of full scale in the output), ``peak`` (of the
    output), ``limiter_gain_db`` (the look-ahead limiter's deepest reduction per clip; 0 =
    untouched) and ``peak_before_limiter``; ``level_db_vs_original``: the output's RMS level minus
    the original's (dB);
(e) ``generated_mels``: what the models will hand it. ``--generated`` clips sampled from the
    preset's teacher (Heun 18 steps, CFG w = 2, the held-out clips' tags) have no original audio,
    so each vocoder is judged by how well its audio re-analyses to the mel it was given
    (``spectral_convergence`` of ``wave_to_mel(output)`` against the input; the same measure on
    the true mels is ``true_mels_spectral_convergence``) and by its peaks, limiting and clipping.
    Griffin-Lim fits the mel's own resolution by construction, so this is a guard, not a contest:
    the trained vocoder passes when it clips nothing and its error on generated mels is within 1.5x
    its error on true mels (it has not met something it cannot render).

Per-clip values are summarised as ``{median, iqr, mean, n}``; ``paired`` gives the per-clip
difference (trained minus Griffin-Lim) with a bootstrap 95 % interval of its mean. The trained
vocoder *wins* (a) when that interval lies below 0, and (b) when it lies above 0 on the melodic clips
and not below 0 on all clips. ``default`` names the
trained vocoder only when it wins both and DITTO-2's real-time factor at batch 1 stays at most 0.5
with it (``ditto2_rtf_batch1_estimate``: ``benchmarks/results/speed_<preset>.json``'s figure with
Griffin-Lim's share, from ``profile_<preset>.json``, scaled by the two vocoders' time ratio measured
here run by run); otherwise Griffin-Lim. Timings on a shared machine are noisy: each case also
reports its fastest run (``*_min``) and the load average at the start and end.

Writes ``benchmarks/results/vocoder_<preset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ditto2_nb.audio import GriffinLimVocoder, clipped_fraction, rms_db, spectral_convergence, wave_to_mel
from ditto2_nb.audio.neural import load_vocoder, mrstft_distance, vocoder_file, write_choice
from ditto2_nb.audio.pitch import judge_info, melody_accuracy
from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data.repertoire import render_repertoire, repertoire_sizes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _shown(path: Path) -> str:
    """A path as the results name it: relative to the repository when inside it."""
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)
OTHER_RESOLUTIONS = ((2048, 512), (512, 128), (256, 64))
RTF_LIMIT = 0.5  # DITTO-2's real-time factor at batch 1 the default vocoder must keep


def summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"median": None, "iqr": None, "mean": None, "n": 0}
    q = np.percentile(v, [25, 75])
    return {"median": round(float(np.median(v)), 5), "iqr": [round(float(q[0]), 5), round(float(q[1]), 5)],
            "mean": round(float(v.mean()), 5), "n": int(len(v))}


def paired(a, b, reps: int = 10000, seed: int = 0) -> dict:
    """Per-clip ``a - b``: median, mean and a bootstrap 95 % interval of the mean."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d = d[np.isfinite(d)]
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (reps, len(d)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"median": round(float(np.median(d)), 5), "mean": round(float(d.mean()), 5),
            "ci95": [round(float(lo), 5), round(float(hi), 5)], "n": int(len(d))}


MELODIC = ("none", "octave")  # accompaniments that leave the melody's pitch class alone in the mix


def heldout_clips(preset, n_clips: int) -> dict:
    """The held-out split's clips with sounding frames: ``all`` = ``n_clips`` of them, one per piece
    first (then a second clip of each...), and ``melodic`` = every clip whose melody plays alone or
    doubled an octave below, without drums (where a one-pitch judge reads the score's melody);
    returns ``{"waves" [N, L], "targets" (pitch classes [N, frames]), "pieces", "sets": {name: indices},
    "renderer"}``."""
    p = get_preset(preset)
    held = render_repertoire(p.mel, "heldout", repertoire_sizes(p.data)["heldout"], seed=p.data.seed)
    ok = [i for i, lab in enumerate(held.labels) if (lab.pitch_class >= 0).sum() >= 8]
    by_piece: dict[str, list[int]] = {}
    for i in ok:
        by_piece.setdefault(held.labels[i].source, []).append(i)
    order = [v[r] for r in range(max(map(len, by_piece.values()), default=0)) for v in by_piece.values()
             if len(v) > r]
    if len(order) < n_clips:
        raise SystemExit(f"only {len(order)} held-out clips with sounding frames; ask for fewer --clips")
    melodic = [i for i in ok if held.info[i]["accompaniment"] in MELODIC and not held.labels[i].has_drums]
    used = sorted(set(order[:n_clips]) | set(melodic))
    pos = {i: k for k, i in enumerate(used)}
    return {"waves": torch.as_tensor(held.waves[used]),
            "targets": np.stack([held.labels[i].pitch_class for i in used]).astype(np.int64),
            "pieces": [held.labels[i].source for i in used],
            "sets": {"all": [pos[i] for i in order[:n_clips]], "melodic": [pos[i] for i in melodic]},
            "renderer": held.summary.renderer}


def pooled(acc: dict, idx: list[int]) -> float:
    """Pitch-class accuracy over every sounding frame of the clips ``idx``."""
    n = np.asarray([acc["n_sounding"][i] for i in idx], np.float64)
    a = np.nan_to_num(np.asarray([acc["pitch_class_accuracy"][i] for i in idx], np.float64))
    return round(float((a * n).sum() / n.sum()), 5)


def run_vocoder(vocoder, mels: torch.Tensor, batch: int = 8) -> tuple[torch.Tensor, list[float]]:
    waves, gains = [], []
    with torch.inference_mode():
        for i in range(0, len(mels), batch):
            waves.append(vocoder(mels[i: i + batch]))
            gains += list(vocoder.last_gain_db)
    return torch.cat(waves), gains


def timings(vocoders: dict, mels: torch.Tensor, reps: int) -> dict:
    """Seconds per second of audio: batch 1 (2-s and 4-s mels) and per clip at batch 8."""
    cfg = vocoders["griffin_lim"].cfg
    seconds = mels.shape[-1] * cfg.hop_length / cfg.sample_rate
    cases = {"rtf_batch1": (mels[:1], seconds),
             "rtf_batch1_4s": (torch.cat([mels[:1], mels[1:2]], -1), 2 * seconds),
             "rtf_batch8_per_clip": (mels[:8], 8 * seconds)}
    out = {name: {case: [] for case in cases} for name in vocoders}
    with torch.inference_mode():
        for rep in range(reps + 1):  # the first round warms up
            for case, (x, audio_s) in cases.items():
                for name, voc in vocoders.items():
                    t0 = time.perf_counter()
                    voc(x)
                    if rep:
                        out[name][case].append((time.perf_counter() - t0) / audio_s)
    return out


def ditto2_estimate(preset: str, ratio: float, gl_rtf_here: float) -> dict:
    """DITTO-2's real-time factor at batch 1 with the trained vocoder instead of Griffin-Lim:
    ``speed_<preset>.json``'s figure (Griffin-Lim included) with Griffin-Lim's share of it
    (``profile_<preset>.json``'s batch-1 vocoder time; this run's Griffin-Lim time if absent)
    scaled by ``ratio``, the trained vocoder's time over Griffin-Lim's measured here run by run
    (paired, so a busy machine slows both alike)."""
    path = RESULTS / f"speed_{preset}.json"
    if not path.is_file() or json.loads(path.read_text()).get("rtf_batch1") is None:
        return {"estimate": None, "note": f"{path.name} with rtf_batch1 not found: run benchmarks/speed.py"}
    speed = json.loads(path.read_text())
    base, share, source = speed["rtf_batch1"], gl_rtf_here, "Griffin-Lim's RTF measured in this run"
    prof = RESULTS / f"profile_{preset}.json"
    if prof.is_file():
        runs = [r for r in json.loads(prof.read_text()).get("runs", []) if r.get("batch") == 1]
        if runs and "vocoder" in runs[0].get("parts_s", {}):
            share = runs[0]["parts_s"]["vocoder"] / (runs[0]["seconds"] / runs[0]["rtf_per_clip"])
            source = f"{prof.name}: Griffin-Lim's seconds in DITTO-2's batch-1 run per second of audio"
    return {"estimate": round(base + share * (ratio - 1.0), 4), "with_griffin_lim": base,
            "griffin_lim_share": round(share, 4), "share_from": source,
            "neural_over_griffin_lim_time": round(ratio, 4), "measured_on": speed.get("machine"),
            "note": "speed benchmark's DITTO-2 RTF at batch 1 with Griffin-Lim's share scaled by the "
                    "paired time ratio measured here"}


def generated_mels(vocoders: dict, true_mels: torch.Tensor, true_outputs: dict, preset: str, n: int) -> dict:
    """(e): each vocoder on ``n`` teacher samples, and its outputs ``true_outputs[name]`` already made
    from the first ``n`` true mels: re-analysis error, peaks, limiting, clipping; the trained
    vocoder's pass/fail."""
    from ditto2_nb.data import heldout_data
    from ditto2_nb.diffusion import generate, load_teacher

    p = get_preset(preset)
    teacher = load_teacher(preset)
    tags = heldout_data(p).tags()[:n] if teacher.cfg.conditional else None
    mels = generate(teacher, n, true_mels.shape[-1], steps=18, tags=tags, w=2.0, seed=5000)
    cfg = p.mel
    out = {"n": n, "sampler": "teacher, heun 18 steps, w = 2, held-out tags", "seed": 5000,
           "teacher": teacher.meta.get("training_data", teacher.meta.get("kind"))}
    for name, voc in vocoders.items():
        wave, gains = run_vocoder(voc, mels)
        wave_true = true_outputs[name][:n]
        sc = [spectral_convergence(m[None], wave_to_mel(w[None], cfg), cfg) for m, w in zip(mels, wave)]
        sc_true = [spectral_convergence(m[None], wave_to_mel(w[None], cfg), cfg)
                   for m, w in zip(true_mels[:n], wave_true)]
        out[name] = {"spectral_convergence": summary(sc), "true_mels_spectral_convergence": summary(sc_true),
                     "clipped_fraction": summary([clipped_fraction(x) for x in wave]),
                     "peak": summary(wave.abs().amax(-1).tolist()), "limiter_gain_db": summary(gains),
                     "limited_clips": round(float(np.mean([g < 0 for g in gains])), 4)}
        ratio = float(np.median(sc) / np.median(sc_true))
        out[name]["generated_over_true"] = round(ratio, 4)
        out[name]["passes"] = bool(ratio <= 1.5 and max(clipped_fraction(x) for x in wave) == 0)
        print(name, "generated mels:", out[name]["generated_over_true"], out[name]["passes"], flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--vocoder", default=None, help="the trained vocoder file (default: the preset's)")
    ap.add_argument("--clips", type=int, default=48, help="held-out clips (>= 32 for the verdict)")
    ap.add_argument("--reps", type=int, default=15, help="warm timing runs per case")
    ap.add_argument("--generated", type=int, default=32, help="teacher samples for (e) (0: skip)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    p = get_preset(a.preset)
    cfg = p.mel
    path = Path(a.vocoder) if a.vocoder else vocoder_file(p.name)
    vocoders = {"griffin_lim": GriffinLimVocoder(cfg, n_iter=32), "neural": load_vocoder(path)}
    if vocoders["neural"].cfg != cfg:
        raise SystemExit(f"{path} was trained for another mel configuration than preset {p.name!r}'s")
    data = heldout_clips(p.name, a.clips)
    waves, targets, pieces, sets = data["waves"], data["targets"], data["pieces"], data["sets"]
    mels = wave_to_mel(waves, cfg)
    n_all, n_mel = len(sets["all"]), len(sets["melodic"])
    print(f"{n_all} held-out clips from {len({pieces[i] for i in sets['all']})} pieces, {n_mel} melodic "
          f"({data['renderer']})", flush=True)

    original = melody_accuracy(waves, cfg.sample_rate, targets, cfg, kind="pitch_class")
    methods, per_clip, outputs = {}, {}, {}
    for name, voc in vocoders.items():
        out, gains = run_vocoder(voc, mels)
        outputs[name] = out
        acc = melody_accuracy(out, cfg.sample_rate, targets, cfg, kind="pitch_class")
        values = {
            "mrstft_other_resolutions": mrstft_distance(waves, out, OTHER_RESOLUTIONS, reduce=False).tolist(),
            "mrstft_mel_resolution": mrstft_distance(waves, out, ((cfg.n_fft, cfg.hop_length),),
                                                     reduce=False).tolist(),
            "pitch_accuracy": acc["pitch_class_accuracy"],
            "unvoiced_on_sounding": acc["unvoiced_on_sounding"],
            "clipped_fraction": [clipped_fraction(x) for x in out],
            "peak": out.abs().amax(-1).tolist(),
            "limiter_gain_db": gains,
            "level_db_vs_original": [rms_db(y) - rms_db(x) for x, y in zip(waves, out)],
        }
        values["peak_before_limiter"] = [voc.ceiling * 10 ** (-g / 20) if g < 0 else pk
                                         for g, pk in zip(gains, values["peak"])]
        on = {k: [v[i] for i in sets["all"]] for k, v in values.items()}
        methods[name] = {k: summary(v) for k, v in on.items()}
        methods[name]["pitch_accuracy_pooled"] = pooled(acc, sets["all"])
        melodic = [acc["pitch_class_accuracy"][i] for i in sets["melodic"]]
        methods[name]["pitch_accuracy_melodic"] = summary(melodic)
        methods[name]["pitch_accuracy_melodic_pooled"] = pooled(acc, sets["melodic"])
        methods[name]["limited_clips"] = round(float(np.mean([g < 0 for g in on["limiter_gain_db"]])), 4)
        per_clip[name] = {"mrstft_other_resolutions": on["mrstft_other_resolutions"],
                          "pitch_accuracy": on["pitch_accuracy"],
                          "pitch_accuracy_melodic": melodic}
        print(name, {k: methods[name][k]["median"] for k in ("mrstft_other_resolutions", "pitch_accuracy",
                                                            "pitch_accuracy_melodic")}, flush=True)

    generated = generated_mels(vocoders, mels, outputs, p.name, a.generated) if a.generated else None
    times = timings(vocoders, mels, a.reps)
    for name in vocoders:
        for case, values in times[name].items():
            methods[name][case] = summary(values)
            methods[name][case + "_min"] = round(min(values), 5)  # the least disturbed run
    ratios = [n / g for n, g in zip(times["neural"]["rtf_batch1"], times["griffin_lim"]["rtf_batch1"])]
    neural_meta = vocoders["neural"].meta
    methods["neural"] |= {"file": _shown(path), "sha256": ckpt.sha256(path),
                          "parameters": neural_meta.get("parameters"), "steps": neural_meta.get("steps"),
                          "train_seconds": neural_meta.get("train_seconds"),
                          "trained_on": neural_meta.get("machine"), "design": neural_meta.get("design"),
                          "reproduce": neural_meta.get("reproduce")}
    methods["griffin_lim"] |= {"n_iter": 32, "momentum": 0.99}

    d = {k: paired(per_clip["neural"][k], per_clip["griffin_lim"][k])
         for k in ("mrstft_other_resolutions", "pitch_accuracy", "pitch_accuracy_melodic")}
    est = ditto2_estimate(p.name, float(np.median(ratios)), methods["griffin_lim"]["rtf_batch1"]["median"])
    wins_a = d["mrstft_other_resolutions"]["ci95"][1] < 0
    wins_b = d["pitch_accuracy_melodic"]["ci95"][0] > 0 and d["pitch_accuracy"]["ci95"][1] >= 0
    fast = est["estimate"] is not None and est["estimate"] <= RTF_LIMIT
    enough = n_all >= 32 and n_mel >= 32
    guard = generated is None or generated["neural"]["passes"]
    result = {
        "preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "default": "neural" if (wins_a and wins_b and fast and enough and guard) else "griffin_lim",
        "verdict": {"wins_mrstft_other_resolutions": wins_a, "wins_pitch_accuracy": wins_b,
                    "passes_generated_mels": generated["neural"]["passes"] if generated else None,
                    "ditto2_rtf_batch1_estimate": est, "ditto2_within_rtf_limit": fast,
                    "rtf_limit": RTF_LIMIT, "enough_clips": enough,
                    "rule": "(a) won when the paired bootstrap 95% interval of the per-clip difference lies "
                            "below 0; (b) won when it lies above 0 on the melodic clips (where a one-pitch "
                            "judge reads the score's melody) and not below 0 on all clips; default = neural "
                            "when it wins (a) and (b), passes (e) on generated mels, the DITTO-2 estimate "
                            "<= rtf_limit and both sets have >= 32 clips"},
        "generated_mels": generated,
        "paired_neural_minus_griffin_lim": d,
        "methods": methods,
        "reference": {"original_pitch_accuracy": summary([original["pitch_class_accuracy"][i]
                                                          for i in sets["all"]]),
                      "original_pitch_accuracy_melodic": summary([original["pitch_class_accuracy"][i]
                                                                  for i in sets["melodic"]]),
                      "original_peak": summary([waves[i].abs().max().item() for i in sets["all"]]),
                      "judge": judge_info()},
        "clips": {"all": n_all, "all_pieces": len({pieces[i] for i in sets["all"]}), "melodic": n_mel,
                  "melodic_pieces": len({pieces[i] for i in sets["melodic"]}), "renderer": data["renderer"],
                  "split": "repertoire heldout", "seconds_each": round(cfg.seconds, 4),
                  "melodic_means": f"accompaniment in {list(MELODIC)} and no drums",
                  "piece_ids": sorted(set(pieces))},
        "protocol": {"other_resolutions": [list(r) for r in OTHER_RESOLUTIONS],
                     "mel_resolution": [cfg.n_fft, cfg.hop_length], "reps": a.reps,
                     "pitch": "melody_accuracy(kind='pitch_class') by PESTO, per clip; *_pooled: over all "
                              "sounding frames",
                     "timing_input": "the first held-out mels (2.05 s; two joined for 4.1 s); torch's "
                                     "default threads"},
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    out = Path(a.out) if a.out else RESULTS / f"vocoder_{p.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if a.out is None:  # the verdict beside the vocoder file: the library's default follows it
        write_choice(path, result["default"], _shown(out), result["verdict"]["rule"])
    print(json.dumps({k: result[k] for k in ("default", "verdict")}, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
