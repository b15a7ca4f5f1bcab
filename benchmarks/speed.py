"""Interactive speed, from one run: the numbers the "interactive speed" goal is judged by.

    python benchmarks/speed.py [--preset laptop] [--reps 5]

* ``rtf_batch1`` and ``rtf_batch8_per_clip``: seconds of compute per second of audio (vocoder
  included) of DITTO-2 in the configuration the claims benchmark names (``claims.HEADLINE``: 70
  iterations on an intensity target, R = 20, shell projection, trust radius 0.25, M = 2), at
  batch 1 and per clip at batch 8, timed by ``profile_ditto2.profile`` (which also splits the time);
* ``panel_first_run_s``: a fresh Python process builds the control panel on its defaults and calls
  ``.run()`` until the audio is ready (imports and model loading included); ``panel_warm_run_s``:
  the second ``.run()`` in that process;
* ``control_no_worse``: whether a faster configuration keeps the decoded errors of the claims'
  targets; ``null`` while the measured configuration *is* the claims' one (nothing faster to judge).

Writes ``benchmarks/results/speed_<preset>.json``. Run it with nothing else on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import profile_ditto2  # noqa: E402

from ditto2_nb.core.assets import machine  # noqa: E402
from ditto2_nb.data import heldout_data  # noqa: E402
from ditto2_nb.distill import load_distilled  # noqa: E402

OUT = Path(__file__).parent / "results"
PANEL = """
import json, time
t0 = time.perf_counter()
from ditto2_nb import ControlPanel
panel = ControlPanel({preset!r}, "cpu")
first = panel.run()
t1 = time.perf_counter()
panel.run()
t2 = time.perf_counter()
print(json.dumps({{"first": t1 - t0, "warm": t2 - t1, "iterations": first.params["iterations"],
                  "refine_last": first.params["refine_last"], "method": first.params["method"]}}))
"""


def panel_times(preset: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PANEL.format(preset=preset)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    a, p = profile_ditto2.parse_args(__doc__, 5, argv)
    panel = panel_times(p.name)  # first: nothing of the package is loaded in this process yet
    torch.manual_seed(0)
    student, held = load_distilled("ctm", p.name), heldout_data(p)
    runs = {b: profile_ditto2.profile(student, held, p.mel, b, a.reps) for b in (1, 8)}
    res = {"preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
           "configuration": profile_ditto2.configuration(),
           "rtf_batch1": runs[1]["rtf_per_clip"], "rtf_batch8_per_clip": runs[8]["rtf_per_clip"],
           "seconds_batch1": runs[1]["seconds"], "seconds_batch8": runs[8]["seconds"],
           "panel_first_run_s": round(panel["first"], 3), "panel_warm_run_s": round(panel["warm"], 3),
           "panel_configuration": {k: panel[k] for k in ("method", "iterations", "refine_last")},
           "control_no_worse": None,
           "control_no_worse_note": "the measured configuration is the claims' headline one; "
                                    "no faster configuration has been judged yet"}
    OUT.mkdir(exist_ok=True)
    path = OUT / f"speed_{p.name}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "configuration"}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
