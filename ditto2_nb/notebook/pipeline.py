"""The notebook pipeline: run the chapters with papermill, render HTML, collect numbers.

``python -m ditto2_nb.notebook.pipeline --preset laptop --out build`` executes every tutorial of
the student path (solved) and every notebook of the tour in dependency order into ``build/``,
renders each to HTML, and writes ``build/summary.md`` with the numbers each notebook recorded
(``record``) and the WAV files it wrote. The tests run the same pipeline on the ``ci`` preset
and read the numbers back.
Tutorials with a solutions file (``tutorials/solutions/T0x_name.py``) run with their exercises
solved (:func:`solution_sections`, :func:`with_solutions`).

Inside a notebook::

    ctx = setup(PRESET, SEED, DEVICE, ARTIFACTS_DIR)   # checks parameters, seeds, plotly renderer
    record("teacher_fd_norm", 0.08, ctx)              # a number the tests and summary read back
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import validate as check
from ..core.config import Preset, get_preset, resolve_device

ROOT = Path(__file__).resolve().parents[2]  # the repository (notebooks/, tutorials/)

# The tour, in dependency order (later notebooks may use artifacts of earlier ones).
TOUR = [
    "notebooks/01_audio_and_data.ipynb",
    "notebooks/02_edm_diffusion.ipynb",
    "notebooks/03_sampling_the_teacher.ipynb",
    "notebooks/04_consistency_distillation.ipynb",
    "notebooks/05_ctm_distillation.ipynb",
    "notebooks/06_ditto_baseline.ipynb",
    "notebooks/07_ditto2.ipynb",
    "notebooks/08_controls_gallery.ipynb",
    "notebooks/09_inpainting_outpainting_looping.ipynb",
    "notebooks/10_text_control_clap.ipynb",
]


# The kernel runs on this machine: talk to it over local sockets (IPC), not TCP, which ipykernel
# warns about once per notebook.
def _local_kernel():
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc"}})

CELL_TIMEOUT_S = 1800  # a cell that runs longer has hung (e.g. lost kernel messages): fail, don't wait

# The student path (tutorials/T00..., run solved), in order.
STUDENT_PATH = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tutorials").glob("T[0-9]*.ipynb"))

# `make demo`: the student path first, then the tour.
DEMO = [*STUDENT_PATH, *TOUR]


class ParameterError(ValueError):
    """A notebook parameter with a wrong value; the message says which and what is allowed."""


# Notebook parameters checked by a line of the limits table (ditto2_nb.core.validate.LIMITS), so a
# notebook accepts exactly what the library, the panels and the CLI accept. Parameters not listed
# here must be finite and non-negative (counts, sizes).
NOTEBOOK_LIMITS: dict[str, str] = {
    "SEED": "seed", "ITERATIONS": "iterations", "ITERATIONS_SHORT": "iterations",
    "ITERATIONS_LONG": "iterations", "COMPARE_ITERS": "iterations", "DECODE_STEPS": "decode_steps",
    "REFINE_LAST": "refine_last", "REFINE": "refine_last", "LR": "lr", "W": "w", "STEPS": "steps",
    "DITTO_STEPS": "steps", "TEACHER_STEPS": "steps", "CFG_STEPS": "steps", "SAMPLE_STEPS": "steps",
    "TRAIN_STEPS": "steps", "BATCH": "batch_size", "SEEDS": "batch_size", "N_CHORALES": "n_chorales",
}


def check_parameter(name: str, value):
    """A notebook parameter checked against its line of the limits table (:data:`NOTEBOOK_LIMITS`),
    else as a finite non-negative number; :class:`ParameterError` names it, its value and what is
    allowed."""
    if name in NOTEBOOK_LIMITS:
        try:
            return check.limited(NOTEBOOK_LIMITS[name], value, label=name)
        except ValueError as e:  # BadType is a ValueError too
            raise ParameterError(str(e)) from None
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and not (math.isfinite(value) and value >= 0)):
        raise ParameterError(f"{name} must be a non-negative number (finite), got {value!r}")
    return value


@dataclass
class Context:
    """What a notebook's setup cell returns."""

    preset: Preset
    seed: int
    device: torch.device
    artifacts: Path
    ci: bool

    def path(self, name: str) -> Path:
        """A file in this notebook's artifacts folder (created on demand)."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts / name


def setup(preset: str = "laptop", seed: int = 0, device: str = "auto",
          artifacts_dir: str = "artifacts", **knobs) -> Context:
    """Validate the standard notebook parameters, seed everything, configure headless output.

    Extra keyword arguments are task knobs, checked by :func:`check_parameter`: against the
    limits table when it has a line for them (``DECODE_STEPS=0`` is refused as ``decode_steps=0`` is
    by the library), else as finite non-negative numbers.
    """
    try:
        p = get_preset(str(preset))
    except ValueError as e:
        raise ParameterError(f"PRESET: {e}") from None
    seed = check_parameter("SEED", seed)
    try:
        dev = resolve_device(device)
    except RuntimeError as e:
        raise ParameterError(f"DEVICE {device!r} is not a valid torch device ({e}); use 'auto', "
                             "'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("DEVICE='cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    for name, value in knobs.items():
        check_parameter(name, value)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    _headless_plotly()
    return Context(p, seed, dev, Path(artifacts_dir), ci=_in_ci())


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _headless_plotly() -> None:
    import plotly.io as pio

    renderer = os.environ.get("PLOTLY_RENDERER")
    if renderer:
        pio.renderers.default = renderer
    elif "ipykernel" in sys.modules:  # JupyterLab and an offline-viewable HTML export
        pio.renderers.default = "plotly_mimetype+notebook"


def record(key: str, value, ctx: Context) -> None:
    """Store a number (or short string/list) in the notebook's ``metrics.json``.

    numpy scalars and arrays and torch tensors are stored as the Python numbers (lists) they hold;
    anything JSON cannot hold is refused with a ``TypeError`` naming ``key``.
    """
    if not isinstance(key, str) or not key:
        raise TypeError(f"record: the key must be a non-empty string, got {key!r}")
    value = _plain(key, value)
    path = ctx.path("metrics.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _plain(key: str, value):
    """``value`` as JSON-safe Python: numpy/torch scalars -> int/float/bool, arrays -> lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        return _plain(key, value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(key, v) for k, v in value.items()}
    raise TypeError(f"record({key!r}, ...): cannot store a {type(value).__name__} ({value!r:.60}); "
                    "record numbers, strings, bools, None, or lists/dicts of them")


def read_metrics(artifacts: str | Path) -> dict:
    path = Path(artifacts) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ----------------------------------------------------------------------------- running


def artifacts_dir(out: Path, notebook: str) -> Path:
    return out / "artifacts" / Path(notebook).stem


def run_notebook(notebook: str, preset: str, out: str | Path, *, parameters: dict | None = None,
                 html: bool = True, root: Path = ROOT) -> Path:
    """Execute one notebook with papermill into ``out`` (and render HTML); returns its path."""
    import papermill as pm

    out = Path(out).resolve()
    src = root / notebook
    if not src.is_file():
        raise FileNotFoundError(f"no notebook {src}")
    cwd = src.parent
    dst = out / Path(notebook).name
    src = _solved(src, out)
    params = {"PRESET": preset, "ARTIFACTS_DIR": str(artifacts_dir(out, notebook))}
    params |= parameters or {}
    out.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                            cwd=str(cwd), progress_bar=False, log_output=False,
                            execution_timeout=CELL_TIMEOUT_S, config=_local_kernel())
    except pm.PapermillExecutionError as e:
        raise RuntimeError(f"{notebook} failed in cell {e.exec_count}: {e.ename}: {e.evalue}. "
                           f"The executed notebook with the traceback is {dst}") from None
    share_plotly_js(dst)
    if html:
        render_html(dst)
    return dst


PLOTLY_JS = "plotly.min.js"
_INLINE_PLOTLY = re.compile(r"<script>/\*\*\s*\* plotly\.js v.*?</script>", re.S)


def share_plotly_js(ipynb: Path) -> None:
    """Replace the copy of plotly.js (~5 MB) that plotly's notebook renderer embeds in each executed
    notebook by a reference to one shared file beside it, so the notebooks and their HTML stay small
    and still render offline (JupyterLab itself draws the figures from their plotly JSON)."""
    import nbformat

    nb = nbformat.read(str(ipynb), as_version=4)
    tag = f'<script src="{PLOTLY_JS}"></script>'
    changed = False
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html and _INLINE_PLOTLY.search(html):
                output["data"]["text/html"] = _INLINE_PLOTLY.sub(tag, html)
                changed = True
    if changed:
        shared = ipynb.parent / PLOTLY_JS
        if not shared.is_file():
            from plotly.offline import get_plotlyjs

            shared.write_text(get_plotlyjs(), encoding="utf-8")
        nbformat.write(nb, str(ipynb))


def _solved(src: Path, out: Path) -> Path:
    """A tutorial with a solutions file runs with its exercises solved (``make demo`` shows the
    finished tutorial); any other notebook runs as it is."""
    solutions = src.parent / "solutions" / f"{src.stem}.py"
    if not solutions.is_file():
        return src
    import nbformat

    solved = out / "solved" / src.name
    solved.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(with_solutions(nbformat.read(str(src), as_version=4), solution_sections(solutions)),
                   str(solved))
    return solved


# ----------------------------------------------------------------------------- solved tutorials

SOLUTION_SECTION = re.compile(r"^# %% (\S+)\s*$")


def solution_sections(path: str | Path) -> dict[str, str]:
    """``{exercise cell id: source}`` from the ``# %% <cell id>`` sections of a solutions file
    (``tutorials/solutions/T0x_name.py``)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        m = SOLUTION_SECTION.match(line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in sections.items()}


def with_solutions(nb, sections: dict[str, str]):
    """A copy of notebook ``nb`` whose cells tagged ``exercise`` hold the solutions."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            if cell.id not in sections:
                raise KeyError(f"no solution for exercise cell {cell.id!r}")
            cell.source = sections[cell.id]
    return nb


def render_html(ipynb: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    target = ipynb.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def run_tour(preset: str, out: str | Path, notebooks: list[str] | None = None,
             parameters: dict | None = None) -> Path:
    """Run ``notebooks`` (default: the tour) in order and write ``summary.md``."""
    out = Path(out).resolve()
    rows = []
    for nb in notebooks or TOUR:
        t0 = time.perf_counter()
        print(f"[ditto2_nb] running {nb} on preset {preset!r} ...", flush=True)
        run_notebook(nb, preset, out, parameters=parameters)
        rows.append((nb, time.perf_counter() - t0, read_metrics(artifacts_dir(out, nb))))
    return write_summary(out, preset, rows)


def write_summary(out: Path, preset: str, rows) -> Path:
    lines = [f"# ditto2_nb tour, preset `{preset}`", "",
             f"Machine: {os.cpu_count()} CPU cores, "
             f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
             "", "| notebook | seconds | recorded numbers |", "|---|---|---|"]
    for nb, secs, metrics in rows:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items() if not isinstance(v, list))
        lines.append(f"| {Path(nb).stem} | {secs:.0f} | {shown} |")
    wavs = sorted(p.relative_to(out) for p in out.rglob("*.wav") if "demo_folder" not in str(p))
    lines += ["", f"WAV files ({len(wavs)}):", ""] + [f"- {w}" for w in wavs]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"[ditto2_nb] wrote {path}")
    return path


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop", help="ci, laptop (default) or gpu")
    ap.add_argument("--out", default="build", help="output folder")
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: the student path "
                                                 "and the whole tour)")
    a = ap.parse_args(argv)
    try:
        get_preset(a.preset)
    except ValueError as e:
        ap.error(str(e))
    try:
        run_tour(a.preset, a.out, a.notebooks or DEMO)
    except (RuntimeError, FileNotFoundError) as e:
        sys.exit(f"[ditto2_nb] {e}")


if __name__ == "__main__":
    main()
