"""The panel's parameters: defaults, validation with messages that name the parameter and what is
allowed, and :meth:`PanelParameters.set` (values and the widgets showing them).

The numeric parameters the library also takes (iterations, lr, decode_steps, refine_last, seed, ...)
are checked by the limits table (:data:`PANEL_LIMITS` -> :data:`ditto2_nb.core.validate.LIMITS`), so
the panel accepts exactly what ``OptimConfig``, ``ditto`` / ``ditto2``, the notebooks and the CLI
accept; the sliders start at the same lower bounds."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Self

from ...controls.structure import structure_control
from ...core import validate as check
from .builders import SHAPES
from .models import METHODS

# panel parameter -> its line of the limits table
PANEL_LIMITS: dict[str, str] = {
    "iterations": "iterations", "lr": "lr", "decode_steps": "decode_steps", "refine_last": "refine_last",
    "seed": "seed", "teacher_steps": "steps", "w": "w", "snapshot_every": "snapshot_every",
    "reg_weight": "reg_weight",
}


def _integer(name: str, v, lo: int, hi: int | None = None) -> int:
    return check.integer(name, v, lo, hi)  # BadType (a ValueError) for non-integers


def _number(name: str, v, lo: float = -math.inf, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < lo or (positive and v <= 0):
        raise ValueError(f"{name} must be {'> 0' if positive else f'>= {lo}'}, got {v!r}")
    return float(v)


def _seconds(name: str, v, length: float) -> float:
    v = _number(name, v, 0.0)
    if v > length:
        raise ValueError(f"{name}={v} s is beyond the clip's {length:.2f} s")
    return v


class PanelParameters:
    """Resolving and checking a run's parameters against :attr:`defaults`."""

    def resolve(self, **overrides) -> dict[str, Any]:
        """Current values with ``overrides`` applied, validated; a ``ValueError`` names any
        unknown parameter or bad value and lists what is allowed."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid parameters are "
                             f"{sorted(self.defaults)}")
        return self.check({**getattr(self, "values", self.defaults), **overrides})

    def choices(self, method: str | None = None) -> dict[str, tuple]:
        """Parameters with a fixed set of allowed values; the instruments are those ``method``'s
        model knows (default: the current method's; :meth:`instruments`)."""
        method = getattr(self, "values", self.defaults)["method"] if method is None else method
        return {"control": self.CONTROLS, "method": tuple(METHODS), "shape": SHAPES,
                "instrument": (None, *(self.instruments(method) if method in METHODS else ()))}

    def check(self, p: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise a full parameter dict (subclasses extend it)."""
        p = dict(p)
        for name, options in self.choices(p["method"]).items():
            if p[name] not in options:
                why = ""
                if name == "instrument" and p["method"] in METHODS:
                    why = (f" (the instrument tags the {METHODS[p['method']]} model of preset "
                           f"{self.preset.name!r} was trained with)")
                raise ValueError(f"{name}={p[name]!r} is not valid; choose one of {list(options)}{why}")
        for name, limit in PANEL_LIMITS.items():
            if name != "refine_last":
                p[name] = check.limited(limit, p[name], label=name)
        p["refine_last"] = check.limited("refine_last", p["refine_last"], hi=p["iterations"])
        p["reference"] = _integer("reference", p["reference"], 0)
        n = self.preset.data.n_heldout
        if p["reference"] >= n:
            raise ValueError(f"reference={p['reference']} but there are {n} held-out clips (0..{n - 1})")
        p["lo_db"], p["hi_db"] = _number("lo_db", p["lo_db"]), _number("hi_db", p["hi_db"])
        if p["lo_db"] >= p["hi_db"]:
            raise ValueError(f"lo_db ({p['lo_db']}) must be below hi_db ({p['hi_db']})")
        p["reference_path"] = self._check_path(p["reference_path"])
        p["gap"], p["overlap"] = self._check_gap(p["gap"]), self._check_overlap(p["overlap"])
        structure_control(p["structure"], self.cfg)  # raises a clear error for bad strings
        return p

    def _check_path(self, path) -> str | None:
        if path is None or path == "":
            return None
        if not isinstance(path, (str, Path)) or not Path(path).is_file():
            raise ValueError(f"reference_path {path!r} is not an audio file; give an existing path "
                             "or None to use the held-out clip `reference`")
        return str(path)

    def _check_gap(self, gap) -> tuple[float, float]:
        gap = self.defaults["gap"] if gap is None else gap
        if not isinstance(gap, (tuple, list)) or len(gap) != 2:
            raise ValueError(f"gap must be (start, end) in seconds, got {gap!r}")
        t0, t1 = (_seconds("gap", v, self.cfg.seconds) for v in gap)
        if t0 >= t1 or (t0 == 0 and t1 >= self.cfg.seconds):
            raise ValueError(f"gap {tuple(gap)} must satisfy 0 <= start < end <= {self.cfg.seconds:.2f} s "
                             "and leave part of the clip to keep")
        return t0, t1

    def _check_overlap(self, overlap) -> float:
        overlap = self.defaults["overlap"] if overlap is None else overlap
        o = _seconds("overlap", overlap, self.cfg.seconds)
        frame = self.cfg.hop_length / self.cfg.sample_rate
        if o < frame or o > self.cfg.seconds - frame:
            raise ValueError(f"overlap must be between one frame ({frame:.3f} s) and the clip length "
                             f"minus one frame ({self.cfg.seconds - frame:.2f} s), got {o}")
        return o

    def set(self, **values) -> Self:
        """Change parameter values (and the widgets showing them)."""
        new = self.resolve(**values)
        self.values = new
        if self._ui is not None:  # the method first: it sets the instruments its model offers
            for name in sorted(values, key=lambda n: n != "method"):
                self._widgets[name].value = self._widget_value(name, new[name])
        return self
