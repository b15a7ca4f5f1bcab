"""Peak memory of training each laptop model, from a short run in a fresh process.

    python benchmarks/bench_train_memory.py [--steps 20]

The peak of a training run is reached in its first steps (same batch, same graph every step), so
a few steps in a throwaway folder measure it. Each model trains in its own process; the peak
resident memory is read back from the exported file's metadata. Writes
benchmarks/results/train_memory_laptop.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ditto2_nb.core.assets import machine
from ditto2_nb.core.checkpoints import read_metadata

OUT = Path(__file__).parent / "results" / "train_memory_laptop.json"
JOBS = {
    "teacher": "from ditto2_nb.diffusion import train_teacher as t; t('laptop', {out!r}, **{kw})",
    "cm": "from ditto2_nb.distill import train_student as t; t('cm', 'laptop', {out!r}, **{kw})",
    "ctm": "from ditto2_nb.distill import train_student as t; t('ctm', 'laptop', {out!r}, **{kw})",
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args(argv)
    res = {"machine": machine(), "steps": a.steps, "peak_rss_mb": {}}
    for name, code in JOBS.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.safetensors"
            kw = {"steps": a.steps, "work_dir": tmp, "progress": False}
            prog = code.format(out=str(out), kw=kw)
            subprocess.run([sys.executable, "-c", prog], check=True)
            res["peak_rss_mb"][name] = read_metadata(out)["peak_rss_mb"]
        print(name, res["peak_rss_mb"][name], "MB", flush=True)
    OUT.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
