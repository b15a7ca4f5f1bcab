"""Where models live and how they are described: shipped assets, the cache, model cards, and the
commands that reproduce each model.

* :data:`ASSETS` -- ``ditto2_nb/assets/``, the shipped weights and their model cards;
* :func:`cache_dir` -- where models trained on the fly are kept (``$DITTO2_CACHE``);
* :func:`resolve_model_file` -- the shipped file, else the cached one (``ci`` trains on the fly);
* :func:`reproduce_command` / :func:`training_card` / :func:`model_card` -- the metadata and the
  markdown card written beside every exported model;
* :func:`machine` -- a one-line description of this computer for those cards.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from . import checkpoints as ckpt
from . import validate as check
from .config import PRESETS
from .config import to_dict as _to_dict
from .metrics import peak_rss_mb

ASSETS = Path(__file__).resolve().parents[1] / "assets"
STUDENT_KINDS = ("cm", "ctm")  # what `python -m ditto2_nb.cli distill --kind` accepts
MODEL_KINDS = ("teacher", *STUDENT_KINDS)  # what reproduce_command knows how to train


def cache_dir() -> Path:
    """Where models trained on the fly (ci preset, retrains) are kept."""
    return Path(os.environ.get("DITTO2_CACHE", Path.home() / ".cache" / "ditto2_nb"))


def shipped_path(kind: str, preset: str = "laptop") -> Path:
    return ASSETS / f"{kind}_{preset}.safetensors"


def reproduce_command(kind: str, preset: str, conditional: bool = True,
                      steps: int | None = None, from_conditional: bool = False) -> str:
    """The CLI command that trains ``kind`` ("teacher", "cm" or "ctm") for ``preset``.

    Only commands the CLI accepts are suggested: an unknown kind or preset, or a step count the CLI
    would refuse, is an error here (naming what is allowed) rather than advice that fails later.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(MODEL_KINDS)}")
    _known_preset(preset)
    if steps is not None:
        steps = check.limited("steps", steps)
    what = "train-teacher" if kind == "teacher" else f"distill --kind {kind}"
    return (f"python -m ditto2_nb.cli {what} --preset {preset}" + ("" if conditional else " --uncond")
            + (" --from-conditional" if from_conditional else "") + (f" --steps {steps}" if steps else ""))


def training_card(meta: dict, kind: str, conditional: bool, tcfg, hist, **extra) -> dict:
    """Metadata of an exported model: its configs plus steps, time, memory, machine, history and
    the command that reproduces it (for a custom preset, which the CLI cannot name, a sentence
    saying so instead: never a command the CLI would refuse)."""
    try:
        reproduce = reproduce_command(kind, meta["preset"], conditional, tcfg.steps,
                                      bool(meta.get("init_from")))
    except ValueError as e:
        reproduce = f"no CLI command ({e}): trained from Python with a custom configuration"
    return {**meta, **extra, "steps": tcfg.steps, "train_seconds": round(hist.seconds, 1),
            "peak_rss_mb": round(peak_rss_mb()), "machine": machine(), "history": hist.to_dict(),
            "reproduce": reproduce}


def resolve_model_file(kind: str, preset: str, retrain: bool, command: str) -> Path:
    """The file to load for ``kind`` on ``preset``: the shipped one, else the cached one.

    Only the ``ci`` preset (seconds) is trained on the fly when neither exists; for the others a
    missing model is an error that names the command (minutes to hours) rather than a silent
    long training. ``retrain=True`` always returns the cache path (to be trained).
    """
    _known_preset(preset)
    shipped = shipped_path(kind, preset)
    if shipped.exists() and not retrain:
        return shipped
    cached = cache_dir() / f"{kind}_{preset}.safetensors"
    if retrain or cached.exists() or preset == "ci":
        return cached
    raise ckpt.CheckpointError(
        f"no {kind} model for preset {preset!r} is shipped or cached. Train it with `{command}` "
        f"(it is written to {cached}), or pass retrain=True / RETRAIN=True.")


def _known_preset(preset) -> None:
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")


def model_card(name: str, meta: dict) -> str:
    """A short markdown model card from a model's metadata."""
    tr, hist = meta.get("train", {}), meta.get("history", {})
    loss = hist.get("loss", [])
    k = max(len(loss) // 20, 1)
    data = meta.get("data_description") or meta.get("training_data") or "the preset procedural training set"
    lines = [f"# {name}", "",
             f"* kind: {meta.get('kind')} (preset `{meta.get('preset')}`)",
             f"* data: {data}",
             f"* training: {meta.get('steps')} steps of batch {tr.get('batch_size')}, Adam lr "
             f"{tr.get('lr')}, EMA {tr.get('ema_decay')}, seed {tr.get('seed')}",
             f"* time: {float(meta.get('train_seconds', 0)) / 60:.1f} min on {meta.get('machine')}"
             + (f"; peak memory {meta['peak_rss_mb']} MB" if "peak_rss_mb" in meta else ""),
             f"* loss: {sum(loss[:k]) / k:.4f} (first 5% of steps) -> "
             f"{sum(loss[-k:]) / k:.4f} (last 5%)" if loss else "* loss: -",
             "* weights: EMA, float16 (cast to float32 on load); config in the safetensors "
             "metadata",
             f"* reproduce: `{meta.get('reproduce', 'see README.md')}`"]
    if "parameters" in meta:
        lines.insert(3, f"* parameters: {meta['parameters'] / 1e6:.2f} M")
    if "distill" in meta:
        lines.insert(3, f"* distillation recipe: {meta['distill']}")
    return "\n".join(lines) + "\n"


def machine() -> str:
    """The machine a benchmark ran on: CPU cores, architecture and the vector instructions torch's
    kernels use (e.g. AVX2 or AVX512: the same 2 cores differed 1.5-2.4x per DITTO-2 run between
    the two), the GPU if any, torch's version."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    isa = torch.backends.cpu.get_cpu_capability()
    return f"{os.cpu_count()} CPU cores ({platform.machine()}, {isa}), {gpu}, torch {torch.__version__}"


SIDECARS = (".decode.json", ".choice.json")  # measured on a file's weights, tied to its SHA-256


def move_to_preset(src: str | Path, preset: str, out: str | Path) -> Path:
    """Write the model file ``src`` as ``preset``'s: the same weights, its metadata's ``preset``
    and the ``--preset`` of its reproduce command renamed (for a configuration trained under a
    working name, e.g. ``laptop4s``, that becomes a shipped preset), with a fresh model card.
    The preset's configuration must be the one the file was trained with: its mel and network
    config are compared and a difference is refused, naming the field. Sidecars measured on these
    very weights (``<name>.decode.json``, ``<name>.choice.json``) come along, re-tied to the new
    file's SHA-256 (the weights are bit-identical) and marked ``carried_from``."""
    _known_preset(preset)
    tensors, meta = ckpt.read(src)
    old = meta.get("preset")
    p = PRESETS[preset]
    if "mel" in meta and meta["mel"] != _to_dict(p.mel):
        raise ValueError(f"{src} was trained with mel config {meta['mel']}, not preset {preset!r}'s "
                         f"{_to_dict(p.mel)}: it cannot become that preset's model")
    meta = dict(meta, preset=preset)
    if old and isinstance(meta.get("reproduce"), str):
        meta["reproduce"] = meta["reproduce"].replace(f"--preset {old}", f"--preset {preset}")
    meta["moved_from_preset"] = old
    ckpt.save(out, tensors, meta)
    Path(out).with_suffix(".md").write_text(model_card(Path(out).name, meta))
    old_sha, new_sha = ckpt.sha256(src), ckpt.sha256(out)
    for suffix in SIDECARS:
        side = Path(src).with_suffix(suffix)
        if side.is_file() and (settings := json.loads(side.read_text())).get("weights_sha256") == old_sha:
            settings |= {"weights_sha256": new_sha, "carried_from": Path(src).name}
            Path(out).with_suffix(suffix).write_text(json.dumps(settings, indent=1) + "\n")
    return Path(out)

