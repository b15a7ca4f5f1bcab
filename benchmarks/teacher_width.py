"""Is the teacher's first level too narrow for 128 mels? The same teacher at two first-level widths.

Usage::

    .venv/bin/python benchmarks/teacher_width.py --preset laptop4s --steps 1000

The UNet convolves over time with the mel bins as channels, and its first level maps the
``n_mels`` bins to ``channels[0]`` channels and back. With 64 mels and 96 channels that level is
wider than its input; with 128 mels it is narrower, so per frame it cannot carry one value per
bin: at low noise, where the denoiser must return the input minus its per-bin noise
(``D = c_skip x + c_out F``, ``c_skip -> 1``), it cannot cancel noise it cannot represent, and
samples keep a frame-to-frame jitter that real mels do not have. The 12,000-step laptop4s teacher
shows exactly that (Heun 20, w = 2: a mean absolute step between neighbouring frames 7x the real
clips', against 2.4x for the 64-mel laptop teacher).

The test: two *unconditional* teachers, identical but for ``channels[0]`` (the preset's, and a
width above ``n_mels``), trained for the same steps, batch and seed on the preset's data, judged on
held-out pieces:

* ``noise_left``: mean square error of ``D(x + sigma n; sigma)`` against ``x`` divided by
  ``sigma^2`` (1 = nothing removed, 0 = perfect), the same noise for both;
* the samples (Heun, ``--heun`` steps): mean absolute difference between neighbouring frames and
  between neighbouring bins, each divided by the real clips' (1 = as smooth as real), the
  fraction at the floor, and the normalised Frechet distance (mel-stats);
* seconds per training step (the same machine, one after the other).

Rule, fixed before the run: the wider net is adopted when it leaves at least 20 % less noise at
sigma = 0.02 and 0.1 *and* its samples' frame jitter ratio is at least 20 % lower, at no more than
2.5x the step time; otherwise the preset keeps its width.

Writes ``benchmarks/results/teacher_width_<preset>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch

from ditto2_nb.core import metrics
from ditto2_nb.core.assets import cache_dir, machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, training_data
from ditto2_nb.diffusion import generate, load_denoiser
from ditto2_nb.diffusion.teacher import train_teacher

RESULTS = Path(__file__).resolve().parent / "results"
SIGMAS = (0.02, 0.1, 0.3, 1.0, 3.0)


@torch.no_grad()
def noise_left(model, mels: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Per noise level: MSE(D(x + sigma n), x) / sigma^2, the same noise ``n`` for every model."""
    noise = torch.randn(mels.shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    for s in SIGMAS:
        den = torch.cat([model(mels[i: i + 16] + s * noise[i: i + 16], s) for i in range(0, len(mels), 16)])
        out[f"{s:g}"] = round(float((den - mels).square().mean()) / s**2, 5)
    return out


def roughness(x: torch.Tensor) -> dict[str, float]:
    """Mean absolute step between neighbouring frames and between neighbouring bins; floor share."""
    x = x.float()
    return {"frame_step": float((x[..., 1:] - x[..., :-1]).abs().mean()),
            "bin_step": float((x[:, 1:] - x[:, :-1]).abs().mean()),
            "at_floor": float((x <= -0.9).float().mean())}


def adopt(narrow: dict, wide: dict) -> tuple[bool, str]:
    """The rule of the module docstring: (adopt the wider net, why)."""
    less = {s: 1 - wide["noise_left"][s] / narrow["noise_left"][s] for s in ("0.02", "0.1")}
    smoother = 1 - wide["samples"]["frame_step_ratio"] / narrow["samples"]["frame_step_ratio"]
    slower = wide["seconds_per_step"] / narrow["seconds_per_step"]
    ok = min(less.values()) >= 0.2 and smoother >= 0.2 and slower <= 2.5
    return ok, (f"noise left {less['0.02']:.0%} / {less['0.1']:.0%} lower at sigma 0.02 / 0.1, frame jitter "
                f"ratio {smoother:.0%} lower, {slower:.2f}x the step time")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop4s")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--wide", type=int, default=160, help="the wider first-level width")
    ap.add_argument("--n", type=int, default=48, help="held-out clips for the metrics and samples")
    ap.add_argument("--heun", type=int, default=18)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    train, held = training_data(p), heldout_data(p)
    n = min(a.n, len(held))
    real = roughness(held.mels[:n])
    ref = train.mels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]]
    load_start = os.getloadavg()
    widths = {"preset": p.net.channels, "wide": (a.wide,) + tuple(p.net.channels[1:])}
    results = {}
    for name, channels in widths.items():
        q = dataclasses.replace(p, net=dataclasses.replace(p.net, channels=channels))
        work = cache_dir() / "runs" / f"teacher_width_{p.name}_{channels[0]}"
        path = work / "teacher_uncond.safetensors"
        if not path.exists():
            train_teacher(q, path, conditional=False, steps=a.steps, work_dir=work, progress=False)
        model = load_denoiser(path)
        samples = generate(model, n, p.mel.frames, steps=a.heun, seed=1)
        rough = roughness(samples)
        results[name] = {
            "channels": list(channels), "parameters": model.meta.get("parameters"),
            "seconds_per_step": round(float(model.meta["train_seconds"]) / a.steps, 4),
            "noise_left": noise_left(model, held.mels[:n]),
            "samples": {**{k: round(v, 4) for k, v in rough.items()},
                        "frame_step_ratio": round(rough["frame_step"] / real["frame_step"], 3),
                        "bin_step_ratio": round(rough["bin_step"] / real["bin_step"], 3),
                        "fd": metrics.fd_report(samples, held.mels, ref).as_dict()}}
        print(name, json.dumps(results[name]), flush=True)
    ok, why = adopt(results["preset"], results["wide"])
    result = {"preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
              "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
              "steps": a.steps, "batch_size": p.train.batch_size, "model": "unconditional teacher",
              "mel": {"frames": p.mel.frames, "n_mels": p.mel.n_mels}, "data": p.data.source,
              "n_heldout": n, "sampler": f"heun {a.heun} steps",
              "real": {k: round(v, 4) for k, v in real.items()}, "candidates": results,
              "rule": "adopt the wider net when it leaves >= 20% less noise at sigma 0.02 and 0.1 and its "
                      "samples' frame jitter ratio is >= 20% lower, at <= 2.5x the step time",
              "adopt_wide": ok, "why": why}
    out = Path(a.out) if a.out else RESULTS / f"teacher_width_{p.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("adopt the wide net:", ok, "-", why)
    print("wrote", out)
    return result


if __name__ == "__main__":
    main()
