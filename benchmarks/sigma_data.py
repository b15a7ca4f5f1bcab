"""Which sigma_data for the teacher on the rendered repertoire: 0.5 (EDM's) against the data's RMS.

Usage::

    .venv/bin/python benchmarks/sigma_data.py --steps 1200          # laptop preset's data and net

EDM's preconditioning assumes the clean data has standard deviation ``sigma_data`` about zero. Our
normalised log-mels are not centred (on the rendered repertoire most bins sit near the -1 floor),
so two readings of "the data's scale" compete: EDM's default 0.5, and the root mean square of the
training mels (the scale of ``x`` itself, which is what the preconditioning multiplies). Each
candidate trains the preset's *unconditional* teacher for the same steps, batch and seed (the same
CPU minutes: the network is identical), and is judged on held-out pieces by

* ``denoising_mse``: the mean square error of ``D(x + sigma n; sigma)`` against ``x`` at fixed noise
  levels, in data units, with the same noise for every candidate: comparable across sigma_data
  (unlike the training loss, whose weighting depends on it);
* ``fd``: normalised Frechet distance (mel-stats embedder; 0 = the real-data floor, 1 = the
  average-spectrum ceiling) of Heun samples against held-out clips.

Centring the data (sigma_data = the standard deviation after subtracting the mean) would also need
an offset inside the preconditioning; it is not tried here.
Writes ``benchmarks/results/sigma_data_<preset>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from ditto2_nb.core import metrics
from ditto2_nb.core.assets import cache_dir, machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, training_data
from ditto2_nb.diffusion import generate, load_denoiser
from ditto2_nb.diffusion.teacher import train_teacher

RESULTS = Path(__file__).resolve().parent / "results"
SIGMAS = (0.02, 0.1, 0.3, 1.0, 3.0, 10.0)


@torch.no_grad()
def denoising_mse(model, mels: torch.Tensor, seed: int = 0) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(mels.shape, generator=gen)
    out = {}
    for s in SIGMAS:
        den = torch.cat([model(mels[i: i + 32] + s * noise[i: i + 32], s) for i in range(0, len(mels), 32)])
        out[f"{s:g}"] = round(float((den - mels).square().mean()), 6)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--n", type=int, default=96, help="held-out clips for the metrics and samples")
    ap.add_argument("--heun", type=int, default=18, help="Heun steps for the FD samples")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    train, held = training_data(p), heldout_data(p)
    rms = float(train.mels.square().mean().sqrt())
    stats = {"mean": round(float(train.mels.mean()), 4), "std": round(float(train.mels.std()), 4),
             "rms": round(rms, 4), "at_floor": round(float((train.mels <= -0.99).float().mean()), 4)}
    print("training mels", stats, flush=True)
    n = min(a.n, len(held))
    ref = train.mels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]]
    candidates = {"0.5": 0.5, "rms": round(rms, 3)}
    load_start = os.getloadavg()
    results = {}
    for name, sd in candidates.items():
        q = dataclasses.replace(p, net=dataclasses.replace(p.net, sigma_data=sd))
        work = cache_dir() / "runs" / f"sigma_data_{p.name}_{name}"
        path = work / "teacher_uncond.safetensors"
        t0 = time.perf_counter()
        if not path.exists():
            train_teacher(q, path, conditional=False, steps=a.steps, work_dir=work, progress=False)
        model = load_denoiser(path)
        torch.manual_seed(0)
        samples = generate(model, n, p.mel.frames, steps=a.heun, seed=1)
        results[name] = {"sigma_data": sd, "train_seconds": model.meta.get("train_seconds"),
                         "wall_seconds_here": round(time.perf_counter() - t0, 1),
                         "denoising_mse": denoising_mse(model, held.mels[:n]),
                         "fd": metrics.fd_report(samples, held.mels, ref).as_dict()}
        print(name, results[name], flush=True)
    result = {"preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
              "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
              "steps": a.steps, "batch_size": p.train.batch_size, "model": "unconditional teacher",
              "mel": {"frames": p.mel.frames, "n_mels": p.mel.n_mels}, "data": p.data.source,
              "training_mels": stats, "n_heldout": n, "sampler": f"heun {a.heun} steps",
              "candidates": results,
              "rule": "lower denoising MSE at most noise levels and lower normalised FD wins; "
                      "a tie keeps 0.5"}
    path = Path(a.out) if a.out else RESULTS / f"sigma_data_{p.name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
