"""Checkpoints as safetensors files: tensors plus a JSON config in the metadata.

* ``save`` writes atomically (temporary file in the same folder, then ``os.replace``), so an
  interrupted write never leaves a half-written checkpoint behind.
* ``load`` rebuilds a model from the file alone and turns every failure (missing, corrupt,
  mismatched) into a :class:`CheckpointError` that says what to do.
* Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from safetensors.torch import save as save_bytes


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the reason and a remedy in the message."""


def save(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Atomically write ``tensors`` with ``metadata`` (JSON-serialised per key) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    remove_stale_temps(path)
    data = save_bytes(tensors, metadata=meta)  # serialised in memory: the only temp file is ours
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete temporary files an interrupted :func:`save` of ``path`` left beside it
    (``<name>.<random>.tmp``); returns what was removed."""
    path = Path(path)
    stale = [p for p in path.parent.glob(path.name + ".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (ties derived settings to the exact weights they were measured on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read tensors and metadata (JSON values decoded); :class:`CheckpointError` on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}. Train it (see the model card / "
                              "`python -m ditto2_nb.cli --help`) or pass the right path.")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is corrupt or not a safetensors checkpoint ({e}). "
                              "Delete it and retrain, or restore it from git.") from e
    return tensors, {k: _decode(v) for k, v in raw.items()}


def read_metadata(path: str | Path) -> dict:
    """Only the metadata (cheap: the tensors are not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: _decode(v) for k, v in (f.metadata() or {}).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt or not a safetensors checkpoint ({e})") from e


def _decode(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Sub-dictionary of keys starting with ``prefix/``, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path, *,
               allow_missing: tuple[str, ...] = (), hint: str | None = None) -> None:
    """Load ``state`` into ``module`` (casting dtype), with a clear error on any mismatch.

    ``allow_missing``: key prefixes the file may lack (e.g. a CTM student's new s-branch);
    ``hint``: what to do about a mismatch (default: retrain with the model card's command).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(allow_missing)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path} does not match the model its config describes: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}. " + (hint or (
                "Was it written by another version of ditto2_nb? Retrain it with the reproducing "
                "command in its model card.")))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} holds NaN/inf weights in {bad[:3]}{' ...' if len(bad) > 3 else ''}: "
                              "the file is damaged or came from a diverged run. Retrain it with the "
                              "reproducing command in its model card, or restore it from git.")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
