"""Distillation: quality vs network evaluations, and trajectory consistency, in one run.

    python benchmarks/eval_distill.py [--preset laptop] [--n 128]

* FD (mel-stats) to held-out data vs NFE for the teacher (Heun/Euler, CFG w counted as 2 NFE per
  denoiser call), CM (1, 2, 4, 8 steps) and CTM (1, 2, 4, 8 steps; gamma 0 and 1);
* trajectory consistency: for the same x_T, the M-step decode vs the 1-step jump (M = 2 with several
  intermediate sigmas, M = 4): mel MSE, intensity MSE (dB^2), top-1 chroma agreement;
* the same consistency for every training snapshot (consistency vs distillation time);
  ``--snapshots-only ctm`` measures only that, for a longer run's snapshots.

Writes benchmarks/results/distill_<preset>.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ditto2_nb.core import metrics
from ditto2_nb.core.assets import cache_dir, machine, shipped_path
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, tags_tensor, training_data
from ditto2_nb.diffusion import generate, load_teacher, nfe_per_sample
from ditto2_nb.distill import load_student, student_decode, trajectory_gap

OUT = Path(__file__).parent / "results"


def student_path(kind: str, preset: str) -> Path:
    p = shipped_path(kind, preset)
    return p if p.exists() else cache_dir() / f"{kind}_{preset}.safetensors"


@torch.no_grad()
def fd_vs_nfe(preset: str, n: int, w: float, seed: int = 1) -> list[dict]:
    p = get_preset(preset)
    train, held = training_data(p), heldout_data(p)
    n = min(n, len(held))
    tags = tags_tensor(held.labels[:n])
    ref = train.mels[:n]
    teacher = load_teacher(preset)
    rows = []

    def add(model, sampler, steps, nfe, x):
        rep = metrics.fd_report(x, held.mels, ref)
        rows.append({"model": model, "sampler": sampler, "steps": steps, "nfe": nfe,
                     "fd": rep.model, "fd_norm": rep.normalised})

    for sampler in ("heun", "euler"):
        for steps in (1, 2, 4, 8, 16, 32):
            x = generate(teacher, n, p.mel.frames, steps=steps, sampler=sampler, tags=tags, w=w,
                         seed=seed)
            add("teacher", sampler, steps, 2 * nfe_per_sample(sampler, steps), x)
    x_T = torch.randn(n, p.mel.n_mels, p.mel.frames, generator=torch.Generator().manual_seed(seed))
    for kind in ("cm", "ctm"):
        model = load_student(student_path(kind, preset))
        for gamma in ((0.0,) if kind == "cm" else (0.0, 1.0)):
            for steps in (1, 2, 4, 8):
                x = student_decode(model, x_T * model.sigma_max, steps, tags, gamma=gamma)
                add(kind, f"gamma={gamma:g}" if kind == "ctm" else "multistep", steps, steps, x)
    return rows


def consistency(model, preset: str, n: int = 32, seed: int = 2) -> list[dict]:
    p = get_preset(preset)
    tags = tags_tensor(heldout_data(p).labels[:n])
    x_T = model.sigma_max * torch.randn(n, p.mel.n_mels, p.mel.frames,
                                        generator=torch.Generator().manual_seed(seed))
    variants = [(2, {"sigma_mid": s}) for s in (0.3, 1.0, 2.5, 5.0)] + [(4, {})]
    gammas = (0.0,) if model.meta["student"] == "cm" else (0.0, 1.0)
    rows = []
    for gamma in gammas:
        for steps, kw in variants:
            kw = dict(kw, gamma=gamma) if model.meta["student"] == "ctm" else kw
            rows.append({"steps": steps, **kw, **trajectory_gap(model, x_T, p.mel, steps, tags, **kw)})
    return rows


def snapshots_consistency(kind: str, preset: str) -> list[dict]:
    folder = cache_dir() / "runs" / f"{kind}_{preset}_snapshots"
    p = get_preset(preset)
    tags = tags_tensor(heldout_data(p).labels[:16])
    x_T = p.net.sigma_max * torch.randn(16, p.mel.n_mels, p.mel.frames,
                                        generator=torch.Generator().manual_seed(2))
    gamma = {"gamma": 0.0} if kind == "ctm" else {}
    rows = []
    for path in sorted(folder.glob("step*.safetensors")):
        m = load_student(path)
        gap = trajectory_gap(m, x_T, p.mel, 2, tags, sigma_mid=2.5, **gamma)  # M = 2 via 2.5
        low = trajectory_gap(m, x_T, p.mel, 2, tags, sigma_mid=0.1, **gamma)  # via 0.1
        rows.append({"steps_trained": m.meta["steps"], "seconds": m.meta["train_seconds"], **gap,
                     "intensity_mse_db2_sigma0.1": low["intensity_mse_db2"]})
    return rows


def markdown(res: dict) -> str:
    lines = [f"FD (mel-stats) vs NFE, preset `{res['preset']}`, {res['n']} clips, "
             f"{res['machine']}", "", "| model | sampler | steps | NFE | FD | normalised FD |",
             "|---|---|---|---|---|---|"]
    for r in res["fd_vs_nfe"]:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['nfe']} | "
                     f"{r['fd']:.2f} | {r['fd_norm']:.3f} |")
    for kind in ("cm", "ctm"):
        lines += ["", f"Trajectory consistency of {kind} (M-step decode vs 1-step jump)", "",
                  "| M | intermediate sigma | gamma | mel MSE | intensity MSE (dB^2) | chroma agr. |",
                  "|---|---|---|---|---|---|"]
        for r in res[f"consistency_{kind}"]:
            lines.append(f"| {r['steps']} | {r.get('sigma_mid', 'Karras')} | "
                         f"{r.get('gamma', '-')} | {r['mel_mse']:.4f} | "
                         f"{r['intensity_mse_db2']:.2f} | {r['chroma_agreement']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--snapshots-only", choices=["cm", "ctm"], default=None,
                    help="only the consistency of a run's snapshots (a longer or running distillation): "
                         "printed and written to distill_snapshots_<kind>_<preset>.json")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    if a.snapshots_only:
        rows = snapshots_consistency(a.snapshots_only, a.preset)
        for r in rows:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
        OUT.mkdir(exist_ok=True)
        (OUT / f"distill_snapshots_{a.snapshots_only}_{a.preset}.json").write_text(json.dumps(
            {"preset": a.preset, "kind": a.snapshots_only, "machine": machine(),
             "folder": f"<cache>/runs/{a.snapshots_only}_{a.preset}_snapshots", "snapshots": rows}, indent=1))
        return
    w = get_preset(a.preset).distill.w
    res = {"preset": a.preset, "n": a.n, "cfg_w": w, "machine": machine(),
           "embedder": "mel-stats", "fd_vs_nfe": fd_vs_nfe(a.preset, a.n, w)}
    for kind in ("cm", "ctm"):
        model = load_student(student_path(kind, a.preset))
        res[f"consistency_{kind}"] = consistency(model, a.preset)
        res[f"train_seconds_{kind}"] = model.meta.get("train_seconds")
        res[f"snapshots_{kind}"] = snapshots_consistency(kind, a.preset)
    res["peak_rss_mb"] = metrics.peak_rss_mb()
    OUT.mkdir(exist_ok=True)
    (OUT / f"distill_{a.preset}.json").write_text(json.dumps(res, indent=1))
    (OUT / f"distill_{a.preset}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
