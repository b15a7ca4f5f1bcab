"""Teacher quality and speed: FD (mel-stats) vs floor and ceiling, tag accuracy, timings.

    python benchmarks/eval_teacher.py [--preset laptop] [--n 128] [--steps 20]

Writes benchmarks/results/teacher_<preset>.json (read by docs/results.md and notebook 03).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ditto2_nb.core import metrics
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import TAG_FIELDS, heldout_data, tag_vocab, tags_tensor, training_data
from ditto2_nb.diffusion import generate, load_denoiser, load_teacher

OUT = Path(__file__).parent / "results"


@torch.no_grad()
def evaluate(model, preset: str, n: int, steps: int, ws=(1.0, 2.0, 3.0), seed: int = 1) -> dict:
    p = get_preset(preset)
    train, held = training_data(p), heldout_data(p)
    n = min(n, len(held))
    held_tags = tags_tensor(held.labels)[:n]
    ref = train.mels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]]
    res = {"preset": preset, "n": n, "sampler": f"heun {steps} steps",
           "machine": machine(), "embedder": "mel-stats"}
    t0 = time.perf_counter()
    res["fd_uncond"] = metrics.fd_report(
        generate(model, n, p.mel.frames, steps=steps, seed=seed), held.mels, ref).as_dict()
    res["sample_seconds_per_clip"] = (time.perf_counter() - t0) / n
    if model.cfg.conditional:
        clf = metrics.train_attribute_classifier(train.mels, tags_tensor(train.labels),
                                                 tag_vocab(), steps=600)
        res["tag_fields"] = list(TAG_FIELDS)
        res["chance"] = [1 / (v - 1) for v in tag_vocab()]  # uniform over the vocabulary's classes
        # the majority class's share of the held-out tags: what always guessing it scores (the
        # repertoire uses 9 of the 14 instrument classes, unevenly)
        res["chance_majority"] = [round(float(torch.bincount(c).max() / len(c)), 4) for c in held_tags.T]
        res["acc_real_heldout"] = metrics.attribute_accuracy(clf, held.mels[:n], held_tags)
        for w in ws:
            x = generate(model, n, p.mel.frames, steps=steps, tags=held_tags, w=w, seed=seed)
            res[f"fd_cond_w{w:g}"] = metrics.fd_report(x, held.mels, ref).as_dict()
            res[f"acc_cond_w{w:g}"] = metrics.attribute_accuracy(clf, x, held_tags)
    return res


def speed(model, frames: int) -> dict:
    out = {}
    for b in (1, 16):
        x = torch.randn(b, model.cfg.n_mels, frames)
        with torch.no_grad():
            out[f"ms_per_eval_b{b}"] = 1000 * metrics.time_call(lambda x=x: model(x, 1.0), repeats=7)
    meta = getattr(model, "meta", {})
    if "train_seconds" in meta:
        tr = meta["train"]
        out["train_seconds"] = meta["train_seconds"]
        out["train_samples_per_s"] = tr["steps"] * tr["batch_size"] / meta["train_seconds"]
    out["peak_rss_mb"] = metrics.peak_rss_mb()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--model", default=None, help="model file (default: the shipped teacher)")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args(argv)
    model = load_denoiser(a.model) if a.model else load_teacher(a.preset)
    torch.manual_seed(0)
    res = evaluate(model, a.preset, a.n, a.steps) | speed(model, get_preset(a.preset).mel.frames)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"teacher_{a.preset}.json"
    path.write_text(json.dumps(res, indent=1))
    json.dump(res, sys.stdout, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
