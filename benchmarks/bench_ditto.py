"""DITTO's memory vs the sampler's steps S, with and without gradient checkpointing.

    python benchmarks/bench_ditto.py

For S = 10, 20, 40 and checkpointing on / off: the peak resident memory of a fresh process running
2 DITTO iterations (laptop teacher, intensity control), and the bytes autograd keeps for the backward
pass of one sampler pass (deterministic, device-independent). Speed, control and quality of DITTO vs
DITTO-2 are measured together by ``benchmarks/claims.py``. Writes benchmarks/results/ditto_laptop.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from ditto2_nb.controls import intensity_control
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.core.metrics import peak_rss_mb, saved_for_backward_mb
from ditto2_nb.data import heldout_data, tags_tensor
from ditto2_nb.diffusion import get_sampler, guided, karras_for, load_teacher
from ditto2_nb.optimize import OptimConfig, checkpointed, ditto

OUT = Path(__file__).parent / "results"
ITERATIONS = {"intensity": 70, "melody": 150, "structure": 150}
METRIC = {"intensity": "mse_db2", "melody": "accuracy", "structure": "ssm_mse"}


def memory_child(steps: int, use_ckpt: bool) -> None:
    """Run in a fresh process: 2 DITTO iterations; print peak RSS and autograd's saved bytes."""
    cfg = get_preset("laptop").mel
    teacher = load_teacher()
    tags = tags_tensor(list(heldout_data(get_preset("laptop")).labels[:1]))
    control = intensity_control("ramp_up", cfg)
    z0 = torch.randn(1, cfg.n_mels, cfg.frames, generator=torch.Generator().manual_seed(0))
    rss_loaded = peak_rss_mb()
    ditto(teacher, control.loss, z0, tags, steps=steps, grad_checkpoint=use_ckpt,
          cfg=OptimConfig(iterations=2, snapshot_every=0))
    sigmas = karras_for(teacher, steps)
    denoise = guided(teacher, tags, 2.0)
    fn = checkpointed(denoise) if use_ckpt else denoise
    z = z0.clone().requires_grad_(True)
    saved, _ = saved_for_backward_mb(lambda: get_sampler("euler")(fn, z * sigmas[0], sigmas))
    print(json.dumps({"steps": steps, "checkpointed": use_ckpt, "peak_rss_mb": peak_rss_mb(),
                      "rss_after_loading_mb": rss_loaded, "saved_for_backward_mb": saved}))


def memory() -> list[dict]:
    rows = []
    for use_ckpt in (True, False):
        for s in (10, 20, 40):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(s), str(int(use_ckpt))],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.memory_child:
        return memory_child(a.memory_child[0], bool(a.memory_child[1]))
    res = {"machine": machine(), "memory": memory()}
    OUT.mkdir(exist_ok=True)
    (OUT / "ditto_laptop.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
