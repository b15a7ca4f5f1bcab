"""Command-line entry points that reproduce the shipped checkpoints.

    python -m ditto2_nb.cli train-teacher --preset laptop            # conditional teacher
    python -m ditto2_nb.cli train-teacher --preset laptop --uncond --from-conditional  # unconditional
    python -m ditto2_nb.cli distill --kind cm --preset laptop        # CM student of the teacher
    python -m ditto2_nb.cli distill --kind ctm --preset laptop       # CTM student
    python -m ditto2_nb.cli train-clap --preset laptop [--evaluator] # MiniCLAP text-audio scorer
    python -m ditto2_nb.cli compress --source ctm.safetensors --channels 64,96,128 --blocks 1
                                     # a narrower CTM student distilled from a trained one
    python -m ditto2_nb.cli render --preset laptop   # the rendered repertoire's three splits
                                     # (cached) and its data card
    python -m ditto2_nb.cli train-vocoder --preset laptop  # the neural vocoder (mel -> waveform)

Training resumes from its checkpoint in ``$DITTO2_CACHE/runs`` (default ``~/.cache/ditto2_nb``)
when interrupted; with ``torchrun --nproc_per_node N -m ditto2_nb.cli ...`` it runs data-parallel.
Every trainer takes ``--device`` (default ``auto``: CUDA when torch sees a GPU, else the CPU; under
torchrun each process uses its own GPU, ``cuda:$LOCAL_RANK``); the exported files are the same CPU
float16 files whichever device trained them.

Numeric arguments are checked by the limits table (``ditto2_nb.core.validate.LIMITS``), as the
library checks them; the exported file, the work folder and (``distill``) the teacher are checked
before any work starts, defaults included, so a bad path never costs a training run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .core import validate as check
from .core.assets import STUDENT_KINDS, cache_dir, shipped_path
from .core.checkpoints import CheckpointError
from .core.config import PRESETS


def _limited(name: str, flag: str):
    """An argparse ``type``: the text parsed as the table's kind for ``name`` and checked by
    :data:`ditto2_nb.core.validate.LIMITS` (argparse reports ``argument --steps: --steps=0 is out
    of range; allowed: >= 1 (...)``)."""
    limit = check.LIMITS[name]

    def parse(text: str):
        try:
            value = limit.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be {limit.allowed()}, got {text!r}") from None
        try:
            return check.limited(name, value, label=flag)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _channels(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--channels must be comma-separated integers such as 64,96,128, "
                                         f"got {text!r}") from None
    try:
        return tuple(check.limited("channels", c, label=f"--channels[{i}]") for i, c in enumerate(widths))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _device(text: str) -> str:
    """An argparse ``type``: a device torch knows and this machine has (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``), kept as text (``auto`` and ``cuda`` are resolved per process)."""
    from .core.train import training_device

    try:
        training_device(text, "--device")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=_device, default="auto",
                        help="where to train: auto (CUDA when present, else CPU), cpu, cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (also what the tests parse every suggested command with)."""
    ap = argparse.ArgumentParser(prog="python -m ditto2_nb.cli", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-teacher", help="train (or resume) an EDM teacher")
    t.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    t.add_argument("--uncond", action="store_true", help="unconditional-only model")
    t.add_argument("--from-conditional", action="store_true",
                   help="with --uncond: start from the conditional teacher, tags dropped")
    t.add_argument("--steps", type=_limited("steps", "--steps"), default=None,
                   help="override the preset's step count")
    t.add_argument("--out", default=None, help="exported file (default: ditto2_nb/assets/...)")
    t.add_argument("--work-dir", default=None, help="where the resumable checkpoint lives")
    t.add_argument("--no-progress", action="store_true")
    _add_device(t)
    d = sub.add_parser("distill", help="distil a CM or CTM student from the preset's teacher")
    d.add_argument("--kind", required=True, choices=list(STUDENT_KINDS))
    d.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    d.add_argument("--uncond", action="store_true", help="distil the unconditional teacher")
    d.add_argument("--from-conditional", action="store_true",
                   help="with --uncond: start from the conditional student, tags dropped")
    d.add_argument("--steps", type=_limited("steps", "--steps"), default=None)
    d.add_argument("--teacher", default=None, help="teacher file (default: the preset's)")
    d.add_argument("--out", default=None)
    d.add_argument("--work-dir", default=None)
    d.add_argument("--snapshots", type=_limited("snapshots", "--snapshots"), default=8,
                   help="EMA snapshots for consistency plots")
    d.add_argument("--no-progress", action="store_true")
    _add_device(d)
    c = sub.add_parser("train-clap", help="train (or resume) MiniCLAP or its independent evaluator")
    c.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    c.add_argument("--evaluator", action="store_true",
                   help="the evaluator scorer (other seed and architecture; never a loss)")
    c.add_argument("--steps", type=_limited("steps", "--steps"), default=None,
                   help="override the recipe's step count")
    c.add_argument("--out", default=None, help="exported file (default: ditto2_nb/assets/...)")
    c.add_argument("--work-dir", default=None, help="where the resumable checkpoint lives")
    c.add_argument("--no-progress", action="store_true")
    _add_device(c)
    k = sub.add_parser("compress", help="distil a trained CTM student into a narrower one")
    k.add_argument("--source", required=True, help="the trained CTM student file")
    k.add_argument("--channels", required=True, type=_channels, help="widths per level, e.g. 64,96,128")
    k.add_argument("--blocks", type=_limited("blocks", "--blocks"), default=1,
                   help="residual blocks per level")
    k.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    k.add_argument("--steps", type=_limited("steps", "--steps"), default=3000)
    k.add_argument("--jacobian-weight", type=_limited("jacobian_weight", "--jacobian-weight"), default=0.0,
                   help="weight of the slope match (0: outputs only)")
    k.add_argument("--jacobian-step", type=_limited("jacobian_step", "--jacobian-step"), default=0.1,
                   help="RMS of the step in z for the slopes")
    k.add_argument("--init", default=None, help="a student file of the same architecture to start from")
    k.add_argument("--from-source", action="store_true",
                   help="start from the source's weights, each level's first --blocks blocks kept")
    k.add_argument("--lr", type=_limited("lr", "--lr"), default=1e-3, help="Adam learning rate after warm-up")
    k.add_argument("--out", default=None, help="exported file (default: <cache>/candidates/...)")
    k.add_argument("--work-dir", default=None)
    k.add_argument("--no-progress", action="store_true")
    _add_device(k)
    r = sub.add_parser("render", help="render the preset's repertoire (train, held-out, evaluator "
                                      "clips from disjoint pieces) into the cache and write its data card")
    r.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    r.add_argument("--frames", type=_limited("frames", "--frames"), default=None,
                   help="clip length in frames instead of the preset's (256 = 4 s at hop 256, 16 kHz)")
    r.add_argument("--train", type=_limited("n_repertoire", "--train"), default=0,
                   help="training clips (default: the preset's, see repertoire_sizes)")
    r.add_argument("--heldout", type=_limited("n_repertoire_heldout", "--heldout"), default=0,
                   help="held-out clips (default: the preset's)")
    r.add_argument("--evaluator", type=_limited("n_repertoire_evaluator", "--evaluator"), default=0,
                   help="clips of the evaluators' own pieces (default: the preset's)")
    r.add_argument("--renderer", default="auto", choices=("auto", "fluidsynth", "additive"),
                   help="auto: FluidR3_GM, else TimGM6mb, else the additive synthesiser (announced)")
    r.add_argument("--soundfont", default=None, help="a General MIDI .sf2 instead of FluidR3_GM")
    r.add_argument("--workers", type=_limited("workers", "--workers"), default=1,
                   help="processes parsing and rendering pieces")
    r.add_argument("--card", default=None,
                   help="data card path (default: benchmarks/results/data_<preset>[_f<frames>].json "
                        "when that folder exists here, else in the cache)")
    r.add_argument("--no-progress", action="store_true")
    v = sub.add_parser("train-vocoder", help="train (or resume) the neural vocoder (mel -> waveform) on the "
                                             "rendered repertoire and procedural clips")
    v.add_argument("--preset", default="laptop", choices=sorted(PRESETS))
    v.add_argument("--steps", type=_limited("steps", "--steps"), default=None,
                   help="override the recipe's step count")
    v.add_argument("--out", default=None, help="exported file (default: ditto2_nb/assets/...)")
    v.add_argument("--work-dir", default=None, help="where the resumable checkpoint lives")
    v.add_argument("--no-progress", action="store_true")
    _add_device(v)
    return ap


def _render(a) -> None:
    """``render``: the preset's three repertoire splits (rendered once, then loaded from the cache)
    and their data card."""
    import json

    from .core.config import get_preset
    from .data.repertoire import render_preset, write_data_card

    preset = get_preset(a.preset)
    sizes = {k: v for k, v in (("train", a.train), ("heldout", a.heldout), ("evaluator", a.evaluator)) if v}
    _, card = render_preset(preset, frames=a.frames, sizes=sizes, renderer=a.renderer,
                            soundfont=a.soundfont, workers=a.workers, progress=not a.no_progress)
    name = f"data_{a.preset}" + (f"_f{a.frames}" if a.frames else "") + ".json"
    if a.card:
        path = Path(a.card)
    elif Path("benchmarks/results").is_dir():
        path = Path("benchmarks/results") / name
    else:
        path = cache_dir() / name
    write_data_card(card, path)
    brief = {s: {k: v[k] for k in ("clips", "pieces", "seconds")} | {"instruments": len(v["instruments"])}
             for s, v in card["splits"].items()}
    print(json.dumps({"renderer": card["renderer"], "splits": brief,
                      "pieces_shared_across_splits": card["pieces_shared_across_splits"]}, indent=1))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.command == "render":  # writes no model: none of the checks below apply
        try:
            _render(a)
        except (FileNotFoundError, ValueError) as e:  # DataError is a ValueError
            sys.exit(f"error: {e}")
        return
    if a.command == "compress":
        if not Path(a.source).is_file():
            ap.error(f"--source {a.source}: no such file")
        if a.init is not None and not Path(a.init).is_file():
            ap.error(f"--init {a.init}: no such file")
        if a.init is not None and a.from_source:
            ap.error("give --init or --from-source, not both")
    for problem in _path_problems(a):  # before any training: a bad path must not cost the run
        ap.error(problem)
    try:
        if a.command == "train-teacher":
            from .diffusion.teacher import train_teacher

            path = train_teacher(a.preset, a.out, conditional=not a.uncond, steps=a.steps,
                                 progress=not a.no_progress, work_dir=a.work_dir,
                                 from_conditional=a.from_conditional, device=a.device)
            print(f"wrote {path}")
        elif a.command == "distill":
            from .distill.train import train_student

            path = train_student(a.kind, a.preset, a.out, conditional=not a.uncond,
                                 teacher_path=a.teacher, steps=a.steps, progress=not a.no_progress,
                                 work_dir=a.work_dir, snapshots=a.snapshots,
                                 from_conditional=a.from_conditional, device=a.device)
            print(f"wrote {path}")
        elif a.command == "train-clap":
            from .clap.training import train_clap

            path = train_clap(a.preset, a.evaluator, a.out, steps=a.steps, progress=not a.no_progress,
                              work_dir=a.work_dir, device=a.device)
            print(f"wrote {path}")
        elif a.command == "compress":
            from .distill.compress import compress_student

            path = compress_student(a.source, a.channels, a.blocks, a.out, preset=a.preset, steps=a.steps,
                                    jacobian_weight=a.jacobian_weight, jacobian_step=a.jacobian_step,
                                    init=a.init, from_source=a.from_source, lr=a.lr, work_dir=a.work_dir,
                                    progress=not a.no_progress, device=a.device)
            print(f"wrote {path}")
        elif a.command == "train-vocoder":
            print(f"wrote {_train_vocoder(a)}")
    except (CheckpointError, FloatingPointError, ValueError) as e:
        sys.exit(f"error: {e}")  # a failed process exits at once: torchrun then stops the others
    from .core.train import leave_process_group

    leave_process_group()  # after success only: a barrier would wait forever for a failed process


def _train_vocoder(a) -> Path:
    """``train-vocoder``: the preset's rendered repertoire (training split, waveforms cached) plus a
    quarter as many procedural training clips, then :func:`ditto2_nb.audio.neural.train_vocoder`
    (resumable; the audio layer cannot import the data layer, so the data is gathered here)."""
    import numpy as np

    from .audio.neural import train_vocoder
    from .core.config import get_preset
    from .data import generate_clips
    from .data.repertoire import render_repertoire, repertoire_sizes

    p = get_preset(a.preset)
    n_rep, n_proc = repertoire_sizes(p.data)["train"], max(1, p.data.n_train // 4)
    rep = render_repertoire(p.mel, "train", n_rep, seed=p.data.seed, progress=not a.no_progress)
    proc, _ = generate_clips(n_proc, p.data.seed, p.mel)
    description = (f"{n_rep} rendered repertoire clips (training split, {rep.summary.renderer}, "
                   f"{rep.summary.n_rendered} pieces) + {n_proc} procedural training clips (seeds "
                   f"{p.data.seed}..{p.data.seed + n_proc - 1}), {p.mel.seconds:.2f} s each")
    return train_vocoder(p.name, np.concatenate([rep.waves, proc]), a.out, steps=a.steps,
                         progress=not a.no_progress, work_dir=a.work_dir, data_description=description,
                         device=a.device)


def default_out(a) -> Path:
    """Where the command writes its model when --out is not given (what the trainers use)."""
    if a.command == "train-teacher":
        return shipped_path("teacher" if not a.uncond else "teacher_uncond", a.preset)
    if a.command == "distill":
        return shipped_path(a.kind if not a.uncond else f"{a.kind}_uncond", a.preset)
    if a.command == "train-clap":
        return shipped_path("miniclap_eval" if a.evaluator else "miniclap", a.preset)
    if a.command == "train-vocoder":
        return shipped_path("vocoder", a.preset)
    return cache_dir() / "candidates" / "compressed.safetensors"  # compress: its name comes later


def _path_problems(a) -> list[str]:
    """What is wrong with --out, --work-dir and --teacher (their defaults included), checked before
    the work starts."""
    out = []
    given = bool(getattr(a, "out", None))
    p = Path(a.out) if given else default_out(a)
    flag = "--out" if given else "the default output (give --out elsewhere)"
    if p.is_dir():
        out.append(f"{flag} {p} is a directory; give a file name ending in .safetensors")
    else:  # written as a temporary file in its folder, then renamed over any old one
        problem = _folder_problem(p.parent)
        if problem:
            out.append(f"{flag} {p}: {problem}")
    given = bool(getattr(a, "work_dir", None))
    w = Path(a.work_dir) if given else cache_dir() / "runs"
    flag = "--work-dir" if given else "the default work folder (set DITTO2_CACHE or give --work-dir)"
    if w.exists() and not w.is_dir():
        out.append(f"{flag} {w} exists and is a file, not a directory")
    else:
        problem = _folder_problem(w)
        if problem:
            out.append(f"{flag} {w}: {problem}")
    if getattr(a, "teacher", None) and not Path(a.teacher).is_file():
        out.append(f"--teacher {a.teacher}: no such file")
    return out


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (created on demand), or None: its nearest existing
    ancestor must be a directory in which a file can actually be created (a probe, so a read-only
    file system is caught even for root)."""
    existing = next((q for q in [folder, *folder.parents] if q.exists()), Path("."))
    if not existing.is_dir():
        return f"cannot create it: {existing} is a file, not a directory"
    if not _can_create_in(existing):
        return f"cannot create files under {existing} (not writable)"
    return None


def _can_create_in(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".ditto2_nb_probe"):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
