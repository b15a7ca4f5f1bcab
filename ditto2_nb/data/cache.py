"""The on-disk dataset cache: one uncompressed ``.npz`` per dataset plus a readable ``.json``
manifest, in ``~/.cache/ditto2_nb`` (``$DITTO2_CACHE`` or ``cache_dir=``).

The key hashes the source, the :class:`~ditto2_nb.core.config.MelConfig`, the size, the seed and
:data:`DATA_VERSION`; writes are atomic and a corrupt or stale file is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .labels import _FRAME_FIELDS, ClipLabels, _frame_dtype

DATA_VERSION = "2"  # bump whenever generated audio or labels change: it is part of every cache key


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache folder: ``cache_dir``, else ``$DITTO2_CACHE``, else ``~/.cache/ditto2_nb``."""
    root = cache_dir or os.environ.get("DITTO2_CACHE") or Path.home() / ".cache" / "ditto2_nb"
    return Path(root).expanduser()


def _hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write through a temporary file in the same folder, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; caches are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _save_cache(path: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Arrays + manifest in one uncompressed ``.npz`` (zip CRCs catch corruption) + a ``.json``."""
    _atomic_write(path, lambda f: np.savez(f, manifest=_json_bytes(manifest), **arrays))
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(text))


def _load_cache(path: Path, key: dict[str, Any],
                decode: Callable[[dict[str, np.ndarray], dict[str, Any]], Any]) -> Any:
    """``decode(arrays, manifest)`` of a cache file, or ``None`` when it is missing; when it is
    corrupt, stale or fails to decode: a warning and ``None`` (the caller rebuilds it)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            manifest = json.loads(z["manifest"].tobytes())
            if manifest.get("key") != json.loads(json.dumps(key)):
                raise ValueError("manifest key does not match the requested data")
            arrays = {name: z[name] for name in z.files if name != "manifest"}
        return decode(arrays, manifest)
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild"
        warnings.warn(f"cache file {path} is unreadable or stale ({type(e).__name__}: {e}); "
                      "rebuilding it", stacklevel=3)
        return None


def _labels_to_arrays(labels: Sequence[ClipLabels]) -> dict[str, np.ndarray]:
    """Per-frame fields present in every clip are stacked ``[N, frames]``; the rest goes to JSON."""
    out: dict[str, np.ndarray] = {}
    stacked = [f for f in _FRAME_FIELDS if labels and all(
        getattr(x, f) is not None and len(getattr(x, f)) == labels[0].n_frames for x in labels)]
    for f in stacked:
        out["frame_" + f] = np.stack([getattr(x, f) for x in labels]).astype(_frame_dtype(f))
    dicts = []
    for x in labels:
        d = x.to_dict()
        for f in stacked:
            d.pop(f)
        dicts.append(d)
    out["labels_json"] = _json_bytes(dicts)
    return out


def _labels_from_arrays(arrays: dict[str, np.ndarray]) -> list[ClipLabels]:
    dicts = json.loads(arrays["labels_json"].tobytes())
    for name, value in arrays.items():
        if name.startswith("frame_"):
            for d, row in zip(dicts, value, strict=True):
                d[name[len("frame_"):]] = row
    return [ClipLabels.from_dict(d) for d in dicts]
