"""Text control of an unconditional model: does CLAP optimisation match the conditional model?

    python benchmarks/eval_text.py [--preset laptop] [--prompts 16] [--iterations 70]

Prompts: ``--prompts`` held-out clips, each described twice, with a data-template caption (the
wording the conditional model's tags stand for) and with an unseen free-text paraphrase (words
and sentence frames MiniCLAP never saw in training). For every prompt, four ways to make a clip:

* random unconditional samples (the unconditional teacher, Heun 20 steps, and its CTM student at
  2 steps from the same noise the optimisation starts from; the prompt is ignored);
* the conditional teacher with CFG (w = 2, Heun 20 steps) given the clip's *tags*: a perfect
  text-to-tag parser, the conditional model's best case;
* the conditional CTM student (2 steps) with the same tags;
* the unconditional CTM student steered by DITTO-2 with the MiniCLAP loss (1 - cosine on the mel,
  no vocoder inside the loop), R = 10 refinement iterations, 2-step decode.

Scores come from the independent evaluator scorer (other seed and architecture, never a loss) on
the *re-analysed audio*: CLAP score (cosine), and per-attribute zero-shot agreement with the
prompt's clip labels (instrument, tempo, mode, drums, dynamics). Also the mel-stats FD (normalised)
of each method's outputs and the time per clip. Writes benchmarks/results/text_<preset>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ditto2_nb import clap, metrics
from ditto2_nb.audio import GriffinLimVocoder, wave_to_mel
from ditto2_nb.config import get_preset
from ditto2_nb.data import caption
from ditto2_nb.distill import load_distilled, student_decode
from ditto2_nb.optimize import OptimConfig, ditto2
from ditto2_nb.samplers import generate
from ditto2_nb.teacher import heldout_data, load_teacher, machine, tags_tensor, training_data

OUT = Path(__file__).parent / "results"


def prompts_for(labels, seed: int = 0) -> tuple[list[str], list[str]]:
    """A data-template caption and an unseen paraphrase of each clip."""
    unseen = [clap.clap_caption(lab, np.random.default_rng([seed, i]), "unseen")[0]
              for i, lab in enumerate(labels)]
    return [caption(lab) for lab in labels], unseen


def scores(evaluator, mels: torch.Tensor, prompts: list[str], labels, vocoder, cfg) -> dict:
    """Evaluator's CLAP score on re-analysed audio, and attribute agreement with the labels."""
    wave = vocoder(mels)
    heard = wave_to_mel(wave, cfg)[..., : mels.shape[-1]]
    s = evaluator.measure(wave, prompts)
    agree = clap.zero_shot_accuracy(evaluator, heard, labels)
    return {"clap_score": float(s.mean()), "clap_score_per_prompt": [float(v) for v in s],
            "attribute_agreement": agree, "attribute_agreement_mean": float(np.mean(list(agree.values())))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--prompts", type=int, default=16, help="held-out clips (x2 wordings)")
    ap.add_argument("--iterations", type=int, default=70)
    ap.add_argument("--lr", type=float, default=0.05)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    p = get_preset(a.preset)
    cfg = p.mel
    held = heldout_data(p)
    labels = list(held.labels[: a.prompts])
    template, unseen = prompts_for(labels)
    prompts, labels2 = template + unseen, labels + labels
    tags = tags_tensor(labels2)
    n = len(prompts)
    scorer, evaluator = clap.load_miniclap(a.preset), clap.load_miniclap(a.preset, evaluator=True)
    teacher_c, teacher_u = load_teacher(a.preset), load_teacher(a.preset, conditional=False)
    ctm_c, ctm_u = load_distilled("ctm", a.preset), load_distilled("ctm", a.preset, conditional=False)
    vocoder = GriffinLimVocoder(cfg)
    z0 = torch.randn(n, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(0))
    control = clap.clap_control(scorer, prompts, cfg, evaluator=evaluator)
    opt = OptimConfig(iterations=a.iterations, lr=a.lr, snapshot_every=0, refine_last=min(10, a.iterations))

    def timed(fn):
        t0 = time.perf_counter()
        with torch.set_grad_enabled(True):
            x = fn()
        return x.detach(), (time.perf_counter() - t0) / n

    methods = {
        "unconditional teacher, random (Heun 20)": lambda: generate(teacher_u, n, cfg.frames, steps=20,
                                                                    seed=1),
        "unconditional CTM, random (2 steps)": lambda: student_decode(ctm_u, z0 * ctm_u.sigma_max, 2),
        "conditional teacher + tags, CFG w=2 (Heun 20)": lambda: generate(
            teacher_c, n, cfg.frames, steps=20, tags=tags, w=p.distill.w, seed=1),
        "conditional CTM + tags (2 steps)": lambda: student_decode(ctm_c, z0 * ctm_c.sigma_max, 2, tags),
        "unconditional CTM + MiniCLAP, DITTO-2 (R=10)": lambda: ditto2(ctm_u, control.loss, z0, None,
                                                                      cfg=opt).x0,
    }
    train = training_data(p)
    ref = train.mels[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]]
    rows = []
    for name, fn in methods.items():
        x, sec = timed(fn)
        with torch.no_grad():
            row = {"method": name, "seconds_per_clip": sec,
                   "fd": metrics.fd_report(x, held.mels, ref).as_dict()}
            for part, sl in (("template", slice(0, n // 2)), ("unseen", slice(n // 2, n))):
                row[part] = scores(evaluator, x[sl], prompts[sl], labels2[sl], vocoder, cfg)
            row["self_score"] = float(scorer.score(x, prompts).mean())
        rows.append(row)
        print(f"{name}: CLAP {row['template']['clap_score']:.3f} / {row['unseen']['clap_score']:.3f} "
              f"(template / unseen), attributes {row['template']['attribute_agreement_mean']:.2f} / "
              f"{row['unseen']['attribute_agreement_mean']:.2f}, FD {row['fd']['fd_norm']:.3f}, "
              f"{sec:.2f} s/clip", flush=True)
    res = {"preset": a.preset, "machine": machine(), "prompts": n, "iterations": a.iterations,
           "scorer": scorer.name, "evaluator": evaluator.name, "embedder": "mel-stats",
           "examples": {"template": template[:3], "unseen": unseen[:3]}, "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / f"text_{a.preset}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
