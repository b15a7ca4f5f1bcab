"""ditto2_nb: DITTO-2 (controllable music generation by optimising a distilled diffusion model's
initial noise), as notebooks and a light library.

The folders follow the method's stages, in the notebooks' order:

================  ========================================================  =========
stage             folder                                                    notebooks
================  ========================================================  =========
data              ``audio/`` (mel front-end, vocoder, librosa analysis),    01
                  ``data/`` (procedural music with exact labels, corpus,
                  folders, captions, tags)
1. teacher        ``diffusion/`` (EDM schedule, preconditioning, UNet,      02, 03
                  loss, samplers, the teacher)
2. distillation   ``distill/`` (CM and CTM students, their losses and       04, 05
                  samplers)
3. optimisation   ``optimize/`` (DITTO, DITTO-2, x_T scaled and decoded)    06, 07
controls          ``controls/`` (intensity, melody, structure, masks,       08, 09
                  composites)
text              ``clap/`` (MiniCLAP, the text control, LAION-CLAP)        10
================  ========================================================  =========

Under them, ``core/`` (configs and presets, checkpoints, the fit loop, metrics, model files and
cards); beside them, ``notebook/`` (plots, the control panels, the tutorials' checks, the
notebook pipeline) and ``cli.py`` (``python -m ditto2_nb.cli``, the training commands).

What a notebook usually needs is importable from here::

    import ditto2_nb as d2

    cfg = d2.get_preset("laptop").mel
    student = d2.load_distilled("ctm")
    z0 = d2.seeded_noise([0], (cfg.n_mels, cfg.frames))
    res = d2.ditto2(student, d2.intensity_control("ramp_up", cfg).loss, z0)
    wave = d2.GriffinLimVocoder(cfg)(res.x0)

Importing this package loads torch and the stages but never plotly, ipywidgets or papermill:
:class:`ControlPanel` and :class:`TextPanel` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import audio, clap, controls, core, data, diffusion, distill, optimize
from .audio import (
    GriffinLimVocoder,
    NeuralVocoder,
    load_audio,
    load_vocoder,
    melody_accuracy,
    reanalyse_mel,
    save_audio,
    wave_to_mel,
)
from .clap import clap_control, load_miniclap
from .controls import (
    INTENSITY_SHAPES,
    Control,
    composite,
    from_points,
    inpaint_control,
    intensity,
    intensity_control,
    intensity_target,
    loop_control,
    melody_control,
    melody_from_audio,
    melody_from_text,
    outpaint_control,
    pitch_classes_from_mel,
    structure_control,
    structure_from_reference,
)
from .core import (
    PRESETS,
    CheckpointError,
    DataConfig,
    DistillConfig,
    MelConfig,
    NetConfig,
    Preset,
    TrainConfig,
    get_preset,
    resolve_device,
)
from .data import (
    TAG_FIELDS,
    ClipLabels,
    MelDataset,
    caption,
    encode_tags,
    generate_clips,
    heldout_data,
    procedural_dataset,
    synthesize_clip,
    tags_tensor,
    training_data,
)
from .diffusion import generate, get_sampler, guided, karras_for, load_teacher, seeded_noise
from .distill import load_distilled, student_decode
from .optimize import OptimConfig, OptResult, StudentDecoder, TeacherDecoder, Trace, ditto, ditto2

if TYPE_CHECKING:
    from .notebook.widgets import ControlPanel, TextPanel

_LAZY = {"ControlPanel": "ditto2_nb.notebook.widgets", "TextPanel": "ditto2_nb.notebook.widgets"}


def __getattr__(name: str):
    """The panels (plotly, ipywidgets) load on first use, not with the package."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ditto2_nb' has no attribute {name!r}")


__all__ = [
    "INTENSITY_SHAPES", "PRESETS", "TAG_FIELDS", "CheckpointError", "ClipLabels", "Control",
    "ControlPanel", "DataConfig", "DistillConfig", "GriffinLimVocoder", "MelConfig", "MelDataset",
    "NetConfig", "NeuralVocoder", "OptResult", "OptimConfig", "Preset", "StudentDecoder", "TeacherDecoder",
    "TextPanel",
    "TrainConfig", "Trace", "audio", "caption", "clap", "clap_control", "composite", "controls", "core",
    "data", "diffusion", "distill", "ditto", "ditto2", "encode_tags", "from_points", "generate",
    "generate_clips", "get_preset", "get_sampler", "guided", "heldout_data", "inpaint_control",
    "intensity", "intensity_control", "intensity_target", "karras_for", "load_audio", "load_distilled",
    "load_miniclap", "load_teacher", "load_vocoder", "loop_control", "melody_accuracy", "melody_control",
    "melody_from_audio", "melody_from_text", "optimize", "outpaint_control",
    "pitch_classes_from_mel", "procedural_dataset", "reanalyse_mel", "resolve_device", "save_audio",
    "seeded_noise", "structure_control", "structure_from_reference", "student_decode", "synthesize_clip",
    "tags_tensor", "training_data", "wave_to_mel",
]
