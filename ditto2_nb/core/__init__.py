"""What every stage builds on: configs and presets, checkpoints, the fit loop, metrics, and where
model files live.

* :mod:`.config` -- frozen dataclasses and the ``ci`` / ``laptop`` / ``gpu`` presets;
* :mod:`.checkpoints` -- safetensors files with a JSON config, written atomically;
* :mod:`.metrics` -- Frechet distance with a named embedder, attribute classifiers, memory/time;
* :mod:`.assets` -- shipped and cached model files, model cards, reproduce commands;
* :mod:`.train` -- one resumable fit loop (EMA, warm-up, clipping, DDP) for every model.
"""

from .assets import cache_dir, machine, resolve_model_file, shipped_path
from .checkpoints import CheckpointError
from .config import (
    PRESETS,
    DataConfig,
    DistillConfig,
    MelConfig,
    NetConfig,
    Preset,
    TrainConfig,
    from_dict,
    get_preset,
    resolve_device,
    to_dict,
)
from .train import export_ema, fit

__all__ = ["PRESETS", "CheckpointError", "DataConfig", "DistillConfig", "MelConfig", "NetConfig",
           "Preset", "TrainConfig", "cache_dir", "export_ema", "fit", "from_dict", "get_preset",
           "machine", "resolve_device", "resolve_model_file", "shipped_path", "to_dict"]
