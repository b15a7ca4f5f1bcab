"""What more iterations buy DITTO-2: control error against the iteration budget.

    python benchmarks/iterations.py [--preset laptop] [--control melody] [--targets 16]

DITTO-2 is ~25x faster than DITTO per run, so it can afford more Adam steps and still be faster.
This runs DITTO-2 on the claims benchmark's targets of one control (the same targets, initial
noise, lr and errors on the vocoded audio as ``benchmarks/claims.py``) at 1x, 2x and 4x the
protocol's iterations (:data:`MULTIPLES`) at the protocol's lr 0.05, in two configurations: the
trust region one (``claims.TRUSTED``, the claims' ``ditto2_ctm_trust``: R = 20, shell projection,
trust radius 0.25) and the same without the trust region (the step size limit is what more
iterations might run into). Each row gives the median
and IQR of the decoded error, the surrogate's, and the seconds per clip (batch 8, vocoder
included), beside DITTO's row (S = 20, the protocol's iterations) from ``claims_<preset>.json``:
the speed-up left when DITTO-2 is given the budget it needs.

Writes ``benchmarks/results/iterations_<preset>.json``. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import claims  # noqa: E402

from ditto2_nb.audio import GriffinLimVocoder  # noqa: E402
from ditto2_nb.core.assets import machine  # noqa: E402
from ditto2_nb.core.config import get_preset  # noqa: E402
from ditto2_nb.data import heldout_data  # noqa: E402
from ditto2_nb.distill import load_distilled  # noqa: E402
from ditto2_nb.optimize import OptimConfig  # noqa: E402

OUT = Path(__file__).parent / "results"
MULTIPLES = (1, 2, 4)
CONFIGURATIONS = {"trust region": claims.TRUSTED,
                  "no trust region": {"refine_last": claims.TRUSTED["refine_last"]}}


def budget_row(student, control_name: str, held, cfg, vocoder, opt: OptimConfig, targets: int,
               batch: int) -> dict:
    """DITTO-2 with ``opt`` on the claims' targets of ``control_name``: errors and seconds per clip."""
    better = claims.METRIC[control_name][1]
    decoded, surrogate, seconds = claims.ditto2_errors(student, control_name, held, cfg, vocoder, opt,
                                                       targets, batch, surrogate=True)
    s, su = claims.summary(decoded, better), claims.summary(surrogate, better)
    return {"iterations": opt.iterations, "refine_last": opt.refine_last, "median": s["median"],
            "iqr": s["iqr"], "surrogate_median": su["median"], "per_target": decoded,
            "seconds_per_clip": seconds / targets, "better": better}


def claims_reference(path: Path, control: str) -> dict | None:
    """DITTO's row of the claims file for ``control`` (and the claims' own time of the trust-region
    row, this run's 1x, for comparing this run's seconds with that run's), None when there is no
    claims file."""
    if not path.is_file():
        return None
    m = json.loads(path.read_text())["controls"][control]["methods"]
    d = m["ditto"]
    return {"median": d["median"], "iqr": d.get("iqr"), "seconds_per_clip": d["seconds_per_clip"],
            "iterations": d.get("iterations"), "source": path.name,
            "claims_trust_seconds_per_clip": m["ditto2_ctm_trust"]["seconds_per_clip"]}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--control", default="melody", choices=claims.CONTROLS)
    ap.add_argument("--targets", type=int, default=16, help="claims targets of the control")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink every run's iterations (smoke tests)")
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    if not 1 <= a.targets <= p.data.n_heldout // 3:
        ap.error(f"--targets must be between 1 and {p.data.n_heldout // 3} (a third of the preset's "
                 f"{p.data.n_heldout} held-out clips), got {a.targets}")
    if not 0 < a.scale <= 1:
        ap.error(f"--scale must be in (0, 1], got {a.scale}")
    return a, p


def main(argv=None) -> None:
    a, p = parse_args(argv)
    torch.manual_seed(0)
    student, held, cfg = load_distilled("ctm", p.name), heldout_data(p), p.mel
    vocoder = GriffinLimVocoder(cfg)
    base = claims.ITERATIONS[a.control]
    warm = OptimConfig(iterations=2, lr=claims.PROTOCOL["lr"], snapshot_every=0, refine_last=1)
    budget_row(student, a.control, held, cfg, vocoder, warm, min(8, a.targets), min(8, a.targets))  # untimed
    rows = {}
    for name, changes in CONFIGURATIONS.items():
        for k in MULTIPLES:
            iters = max(1, round(base * k * a.scale))
            opt = OptimConfig(iterations=iters, lr=claims.PROTOCOL["lr"], snapshot_every=0,
                              **(changes | {"refine_last": min(changes["refine_last"], iters)}))
            rows[f"{name} x{k}"] = row = budget_row(student, a.control, held, cfg, vocoder, opt,
                                                    a.targets, min(8, a.targets))
            print(f"{name} x{k}", {k2: (round(v, 4) if isinstance(v, float) else v)
                                   for k2, v in row.items() if k2 != "per_target"}, flush=True)
    ditto = claims_reference(OUT / f"claims_{p.name}.json", a.control)
    res = {"preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
           "control": a.control, "metric": claims.METRIC[a.control][0], "targets": a.targets,
           "lr": claims.PROTOCOL["lr"], "rows": rows, "ditto": ditto}
    if ditto is not None:
        better = claims.METRIC[a.control][1]
        sign = 1 if better == "higher" else -1
        reach = [k for k, r in rows.items() if sign * (r["median"] - ditto["median"]) >= 0]
        res["reaches_ditto"] = {k: round(ditto["seconds_per_clip"] / rows[k]["seconds_per_clip"], 2)
                                for k in reach}  # row -> speed-up over DITTO at that budget
    OUT.mkdir(exist_ok=True)
    path = OUT / f"iterations_{p.name}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
