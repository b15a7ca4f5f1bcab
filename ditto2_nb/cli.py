"""Command-line entry points that reproduce the shipped checkpoints.

    python -m ditto2_nb.cli train-teacher --preset laptop            # conditional teacher
    python -m ditto2_nb.cli train-teacher --preset laptop --uncond --from-conditional  # unconditional
    python -m ditto2_nb.cli distill --kind cm --preset laptop        # CM student of the teacher
    python -m ditto2_nb.cli distill --kind ctm --preset laptop       # CTM student
    python -m ditto2_nb.cli train-clap --preset laptop [--evaluator] # MiniCLAP text-audio scorer
    python -m ditto2_nb.cli compress --source ctm.safetensors --channels 64,96,128 --blocks 1
                                     # a narrower CTM student distilled from a trained one

Training resumes from its checkpoint in ``$DITTO2_CACHE/runs`` (default ``~/.cache/ditto2_nb``)
when interrupted; with ``torchrun --nproc_per_node N -m ditto2_nb.cli ...`` it runs data-parallel.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .core.checkpoints import CheckpointError
from .core.config import PRESETS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ditto2_nb.cli", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-teacher", help="train (or resume) an EDM teacher")
    t.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    t.add_argument("--uncond", action="store_true", help="unconditional-only model")
    t.add_argument("--from-conditional", action="store_true",
                   help="with --uncond: start from the conditional teacher, tags dropped")
    t.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    t.add_argument("--out", default=None, help="exported file (default: ditto2_nb/assets/...)")
    t.add_argument("--work-dir", default=None, help="where the resumable checkpoint lives")
    t.add_argument("--no-progress", action="store_true")
    d = sub.add_parser("distill", help="distil a CM or CTM student from the preset's teacher")
    d.add_argument("--kind", required=True, choices=["cm", "ctm"])
    d.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    d.add_argument("--uncond", action="store_true", help="distil the unconditional teacher")
    d.add_argument("--from-conditional", action="store_true",
                   help="with --uncond: start from the conditional student, tags dropped")
    d.add_argument("--steps", type=int, default=None)
    d.add_argument("--teacher", default=None, help="teacher file (default: the preset's)")
    d.add_argument("--out", default=None)
    d.add_argument("--work-dir", default=None)
    d.add_argument("--snapshots", type=int, default=8, help="EMA snapshots for consistency plots")
    d.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("train-clap", help="train (or resume) MiniCLAP or its independent evaluator")
    c.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    c.add_argument("--evaluator", action="store_true",
                   help="the evaluator scorer (other seed and architecture; never a loss)")
    c.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    c.add_argument("--out", default=None, help="exported file (default: ditto2_nb/assets/...)")
    c.add_argument("--work-dir", default=None, help="where the resumable checkpoint lives")
    c.add_argument("--no-progress", action="store_true")
    k = sub.add_parser("compress", help="distil a trained CTM student into a narrower one")
    k.add_argument("--source", required=True, help="the trained CTM student file")
    k.add_argument("--channels", required=True, help="widths per level, e.g. 64,96,128")
    k.add_argument("--blocks", type=int, default=1, help="residual blocks per level")
    k.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    k.add_argument("--steps", type=int, default=3000)
    k.add_argument("--jacobian-weight", type=float, default=0.0,
                   help="weight of the slope match (0: outputs only)")
    k.add_argument("--jacobian-step", type=float, default=0.1, help="RMS of the step in z for the slopes")
    k.add_argument("--init", default=None, help="a student file of the same architecture to start from")
    k.add_argument("--from-source", action="store_true",
                   help="start from the source's weights, each level's first --blocks blocks kept")
    k.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate after warm-up")
    k.add_argument("--out", default=None, help="exported file (default: <cache>/candidates/...)")
    k.add_argument("--work-dir", default=None)
    k.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.command == "compress":
        try:
            a.channels = tuple(int(c) for c in a.channels.split(","))
        except ValueError:
            ap.error(f"--channels must be comma-separated integers such as 64,96,128, got {a.channels!r}")
        if not Path(a.source).is_file():
            ap.error(f"--source {a.source}: no such file")
        if a.init is not None and not Path(a.init).is_file():
            ap.error(f"--init {a.init}: no such file")
        if a.init is not None and a.from_source:
            ap.error("give --init or --from-source, not both")
        if not a.lr > 0:
            ap.error(f"--lr must be positive, got {a.lr}")
        if a.jacobian_weight < 0 or a.jacobian_step <= 0:
            ap.error(f"--jacobian-weight must be >= 0 and --jacobian-step > 0, got "
                     f"{a.jacobian_weight} and {a.jacobian_step}")
    if a.steps is not None and a.steps <= 0:
        ap.error("--steps must be positive")
    for problem in _path_problems(a):  # before any training: a bad path must not cost the run
        ap.error(problem)
    try:
        if a.command == "train-teacher":
            from .diffusion.teacher import train_teacher

            path = train_teacher(a.preset, a.out, conditional=not a.uncond, steps=a.steps,
                                 progress=not a.no_progress, work_dir=a.work_dir,
                                 from_conditional=a.from_conditional)
            print(f"wrote {path}")
        elif a.command == "distill":
            from .distill.train import train_student

            path = train_student(a.kind, a.preset, a.out, conditional=not a.uncond,
                                 teacher_path=a.teacher, steps=a.steps, progress=not a.no_progress,
                                 work_dir=a.work_dir, snapshots=a.snapshots,
                                 from_conditional=a.from_conditional)
            print(f"wrote {path}")
        elif a.command == "train-clap":
            from .clap.training import train_clap

            path = train_clap(a.preset, a.evaluator, a.out, steps=a.steps, progress=not a.no_progress,
                              work_dir=a.work_dir)
            print(f"wrote {path}")
        elif a.command == "compress":
            from .distill.compress import compress_student

            path = compress_student(a.source, a.channels, a.blocks, a.out, preset=a.preset, steps=a.steps,
                                    jacobian_weight=a.jacobian_weight, jacobian_step=a.jacobian_step,
                                    init=a.init, from_source=a.from_source, lr=a.lr, work_dir=a.work_dir,
                                    progress=not a.no_progress)
            print(f"wrote {path}")
    except (CheckpointError, FloatingPointError, ValueError) as e:
        sys.exit(f"error: {e}")


def _path_problems(a) -> list[str]:
    """What is wrong with --out, --work-dir and --teacher, checked before the work starts."""
    out = []
    if getattr(a, "out", None):
        p = Path(a.out)
        if p.is_dir():
            out.append(f"--out {p} is a directory; give a file name ending in .safetensors")
        parent = next((q for q in [p.parent, *p.parent.parents] if q.exists()), Path("."))
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            out.append(f"--out {p}: cannot create files under {parent} (not a writable directory)")
    if getattr(a, "work_dir", None):
        w = Path(a.work_dir)
        if w.exists() and not w.is_dir():
            out.append(f"--work-dir {w} exists and is a file, not a directory")
        elif not w.exists():
            parent = next((q for q in w.parents if q.exists()), Path("."))
            if not os.access(parent, os.W_OK):
                out.append(f"--work-dir {w}: cannot create it under {parent} (not writable)")
        elif not os.access(w, os.W_OK):
            out.append(f"--work-dir {w} is not writable")
    if getattr(a, "teacher", None) and not Path(a.teacher).is_file():
        out.append(f"--teacher {a.teacher}: no such file")
    return out


if __name__ == "__main__":
    main()
