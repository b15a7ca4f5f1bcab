"""Benchmark procedural data generation: waves only, and waves + mels.

Usage::

    .venv/bin/python benchmarks/bench_data.py            # 2,000 four-second clips, median of 3
    .venv/bin/python benchmarks/bench_data.py --n 200    # a quick look

Clips are generated (and converted) ``--chunk`` at a time and then dropped, so memory stays
small; the timing is the same as one big ``generate_clips`` call. Results are printed and written
to ``benchmarks/results/data.json`` together with a description of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ditto2_nb import data
from ditto2_nb.core.config import MelConfig

RESULTS = Path(__file__).resolve().parent / "results" / "data.json"


def clip_config(seconds: float) -> MelConfig:
    """Default mel front-end with ``frames`` chosen so one clip lasts ``seconds``."""
    base = MelConfig()
    return MelConfig(frames=round(seconds * base.sample_rate / base.hop_length))


def run_waves(n: int, cfg: MelConfig, chunk: int) -> None:
    for start in range(0, n, chunk):
        data.generate_clips(min(chunk, n - start), start, cfg)


def run_waves_mels(n: int, cfg: MelConfig, chunk: int) -> None:
    for start in range(0, n, chunk):
        waves, _ = data.generate_clips(min(chunk, n - start), start, cfg)
        data.waves_to_mels(waves, cfg, batch_size=chunk)


def median_seconds(fn: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="clips per run")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--chunk", type=int, default=64, help="clips generated at a time")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    cfg = clip_config(args.seconds)
    info = machine()
    data.generate_clips(4, 0, cfg)  # warm caches (wavetables, envelopes)
    data.waves_to_mels(np.zeros((1, cfg.n_samples), np.float32), cfg)
    results: dict[str, object] = {
        "n_clips": args.n, "seconds_per_clip": cfg.seconds, "sample_rate": cfg.sample_rate,
        "repeats": args.repeats, "chunk": args.chunk, "data_version": data.DATA_VERSION,
        "machine": info,
    }
    for name, fn in (("waves", run_waves), ("waves_mels", run_waves_mels)):
        med, runs = median_seconds(lambda fn=fn: fn(args.n, cfg, args.chunk), args.repeats)
        results[name] = {"median_s": round(med, 3), "runs_s": [round(t, 3) for t in runs],
                         "clips_per_s": round(args.n / med, 1),
                         "audio_seconds_per_s": round(args.n * cfg.seconds / med, 1)}
        print(f"{name:>10}: {args.n} x {cfg.seconds:.2f} s clips in {med:.2f} s (median of "
              f"{args.repeats}: {', '.join(f'{t:.2f}' for t in runs)}) = "
              f"{args.n / med:.0f} clips/s")
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"machine: {info}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
