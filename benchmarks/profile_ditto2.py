"""Where one DITTO-2 run spends its time: a profile of the claims' headline configuration.

    python benchmarks/profile_ditto2.py [--preset laptop] [--reps 10]

One intensity target of the claims benchmark (its first held-out target, its initial noise) in
the headline DITTO-2 configuration (``claims.HEADLINE``: 28 iterations, Adam lr 0.5, the last
R = 8 of them through the 2-step decode, shell projection, trust radius 0.25), at batch 1 and at
batch 8. Each part is timed on its own, warm, as the median of ``--reps`` repetitions:

* ``surrogate_forward`` / ``surrogate_backward``: the student's 1-step jump from x_T, and the
  gradient back through it to z (one per ordinary iteration);
* ``decode_forward`` / ``decode_backward``: the same through the M = 2 step decode (one per
  refinement iteration);
* ``control``: the intensity feature and loss on the mel, forward and backward;
* ``final_decode`` and ``vocoder``: once per run (the 2-step decode without gradient, Griffin-Lim
  with its limiter);
* ``optimiser_and_python``: the whole run timed end to end minus the parts above times their
  counts: Adam, the shell and trust-region steps, the loop's checks and bookkeeping.

First-call costs are measured once, in this fresh process, before anything else: importing the
package, loading the student from its safetensors file, and the first forward pass (thread pool
start-up, allocator warm-up) against a warm one. ``network_variants``: one student forward +
backward at batch 1 and 8 on one thread, compiled by ``torch.compile`` (and its compile time), and
for narrower networks (:data:`SMALLER`, random weights): what other kernels or a smaller student
would buy. Writes ``benchmarks/results/profile_<preset>.json``;
``benchmarks/report.py`` renders it into docs/results.md. Run it with nothing else on the machine.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import ditto2_nb  # noqa: E402, F401

T_IMPORTED = time.perf_counter()

from ditto2_nb.audio import GriffinLimVocoder  # noqa: E402
from ditto2_nb.core.assets import machine  # noqa: E402
from ditto2_nb.core.config import get_preset  # noqa: E402
from ditto2_nb.data import heldout_data  # noqa: E402
from ditto2_nb.diffusion import count_parameters  # noqa: E402
from ditto2_nb.distill import load_distilled  # noqa: E402
from ditto2_nb.optimize import OptimConfig, StudentDecoder, ditto2  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import claims  # noqa: E402

OUT = Path(__file__).parent / "results"
DECODE_STEPS = claims.PROTOCOL["decode_steps"]


def median_seconds(fn, reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_backward(decode, control, z0: torch.Tensor, steps: int, reps: int) -> tuple[float, float]:
    """(forward, backward) seconds of the decode with ``steps`` steps, gradient to z."""
    z = z0.clone().requires_grad_(True)

    def fwd():
        return decode(z, steps)

    def fwd_bwd():
        z.grad = None
        decode(z, steps).sum().backward()

    f = median_seconds(fwd, reps)
    return f, max(median_seconds(fwd_bwd, reps) - f, 0.0)


def control_seconds(control, x: torch.Tensor, reps: int) -> float:
    x = x.detach().clone().requires_grad_(True)

    def step():
        x.grad = None
        control.loss(x).sum().backward()

    return median_seconds(step, reps)


def intensity_run(student, held, cfg, batch: int, opt: OptimConfig):
    """(run, control, tags, z0): ``run()`` is DITTO-2 with ``opt`` on the first ``batch`` intensity
    targets of the claims benchmark from their noise, vocoder included."""
    n_targets = max(batch, 16)
    idx = list(claims.clip_range("intensity", n_targets))[:batch]
    control, tags, z0 = claims.targets("intensity", held, cfg, idx, n_targets)
    vocoder = GriffinLimVocoder(cfg)

    def run():
        r = ditto2(student, control.loss, z0, tags, decode_steps=DECODE_STEPS, cfg=opt)
        vocoder(r.x0)
        return r

    return run, control, tags, z0


def headline_config() -> OptimConfig:
    """The claims' headline DITTO-2 configuration on an intensity target."""
    return claims.ditto2_config(claims.HEADLINE, OptimConfig(iterations=claims.ITERATIONS["intensity"],
                                                             lr=claims.PROTOCOL["lr"], snapshot_every=0))


def profile(student, held, cfg, batch: int, reps: int) -> dict:
    opt = headline_config()
    iters = opt.iterations
    run, control, tags, z0 = intensity_run(student, held, cfg, batch, opt)
    vocoder = GriffinLimVocoder(cfg)
    decode = StudentDecoder(student, tags)
    whole = median_seconds(run, max(2, reps // 3))
    sur_f, sur_b = forward_backward(decode, control, z0, 1, reps)
    dec_f, dec_b = forward_backward(decode, control, z0, DECODE_STEPS, reps)
    with torch.no_grad():
        x = decode(z0, DECODE_STEPS)
    parts = {
        "surrogate_forward": (iters - opt.refine_last) * sur_f,
        "surrogate_backward": (iters - opt.refine_last) * sur_b,
        "decode_forward": opt.refine_last * dec_f,
        "decode_backward": opt.refine_last * dec_b,
        "control": iters * control_seconds(control, x, reps),
        "final_decode": median_seconds(lambda: _no_grad(decode, z0, DECODE_STEPS), reps),
        "vocoder": median_seconds(lambda: vocoder(x), reps),
    }
    parts["optimiser_and_python"] = max(whole - sum(parts.values()), 0.0)
    clip_s = cfg.seconds * batch
    return {"batch": batch, "iterations": iters, "refine_last": opt.refine_last,
            "seconds": round(whole, 4), "rtf_per_clip": round(whole / clip_s, 4),
            "parts_s": {k: round(v, 4) for k, v in parts.items()},
            "parts_share": {k: round(v / whole, 4) for k, v in parts.items()},
            "per_call_ms": {"surrogate_forward": round(1e3 * sur_f, 2),
                            "surrogate_backward": round(1e3 * sur_b, 2),
                            "decode_forward": round(1e3 * dec_f, 2),
                            "decode_backward": round(1e3 * dec_b, 2)}}


# Narrower / shallower students (random weights: speed only) against the shipped one's size.
SMALLER = {"channels 64/128/192, 1 block": ((64, 128, 192), 1),
           "channels 64/96/128, 1 block": ((64, 96, 128), 1),
           "channels 32/64/128, 1 block": ((32, 64, 128), 1)}


def network_variants(student, cfg, reps: int, compile_too: bool = True) -> dict:
    """Milliseconds of one student forward + backward to its input (the 1-step jump x_T -> x_0)
    at batch 1 and 8: the shipped network eager on this process's threads, on one thread, compiled
    (``torch.compile``, inductor; its compile time too), and narrower networks of the same kind."""

    def step_of(model, batch: int):
        tags = torch.zeros(batch, len(student.cfg.tag_vocab), dtype=torch.long)
        z = torch.randn(batch, cfg.n_mels, cfg.frames, requires_grad=True)

        def step():
            z.grad = None
            model(z * student.sigma_max, student.sigma_max, student.sigma_min, tags).sum().backward()

        return step

    def fwd_bwd_ms(model, batch: int) -> float:
        return round(1e3 * median_seconds(step_of(model, batch), reps), 2)

    threads = torch.get_num_threads()
    out = {"threads": threads, "parameters_m": {}, "ms": {}}
    out["ms"]["shipped"] = {b: fwd_bwd_ms(student, b) for b in (1, 8)}
    torch.set_num_threads(1)
    out["ms"]["shipped, 1 thread"] = {b: fwd_bwd_ms(student, b) for b in (1, 8)}
    torch.set_num_threads(threads)
    if compile_too:  # a cold compile: inductor's on-disk cache in a fresh folder of its own
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")
        compiled, out["compile_s"] = torch.compile(student, dynamic=False), {}
        for b in (1, 8):
            t0 = time.perf_counter()
            step_of(compiled, b)()  # the first call compiles forward and backward for this shape
            out["compile_s"][b] = round(time.perf_counter() - t0, 1)
        out["ms"]["shipped, torch.compile"] = {b: fwd_bwd_ms(compiled, b) for b in (1, 8)}
    out["parameters_m"]["shipped"] = round(count_parameters(student) / 1e6, 2)
    for name, (channels, blocks) in SMALLER.items():
        small = type(student)(dataclasses.replace(student.cfg, channels=channels, blocks=blocks))
        out["parameters_m"][name] = round(count_parameters(small) / 1e6, 2)
        out["ms"][name] = {b: fwd_bwd_ms(small, b) for b in (1, 8)}
    return out


def configuration() -> dict:
    """The DITTO-2 configuration profiled (the claims' headline one)."""
    opt = headline_config()
    return {"control": "intensity", "method": claims.HEADLINE, "iterations": opt.iterations,
            "refine_last": opt.refine_last, "project": opt.project, "trust_radius": opt.trust_radius,
            "decode_steps": DECODE_STEPS, "lr": opt.lr}


def _no_grad(decode, z, steps):
    with torch.no_grad():
        return decode(z, steps)


def parse_args(doc: str, reps: int, argv=None, targets: int | None = None, candidates: bool = False):
    """``--preset`` and ``--reps`` (and ``--targets`` per control when ``targets`` is given,
    ``--candidate`` student files when ``candidates``; all validated), for this script and
    benchmarks/speed.py."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--reps", type=int, default=reps)
    if targets is not None:
        ap.add_argument("--targets", type=int, default=targets, help="claims targets per control")
    if candidates:
        ap.add_argument("--candidate", action="append", default=[], help="another student file to run")
    a = ap.parse_args(argv)
    for path in getattr(a, "candidate", []):
        if not Path(path).is_file():
            ap.error(f"--candidate {path}: no such file")
    if a.reps < 1:
        ap.error(f"--reps must be a positive integer, got {a.reps}")
    p = get_preset(a.preset)
    if targets is not None and not 1 <= a.targets <= p.data.n_heldout // 3:
        ap.error(f"--targets must be between 1 and {p.data.n_heldout // 3} (a third of the preset's "
                 f"{p.data.n_heldout} held-out clips), got {a.targets}")
    return a, p


def main(argv=None) -> None:
    a, p = parse_args(__doc__, 10, argv)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    student = load_distilled("ctm", p.name)
    t_load = time.perf_counter() - t0
    cfg = p.mel
    z = torch.randn(1, cfg.n_mels, cfg.frames)  # unit-scale noise, as the decoders take it
    decode = StudentDecoder(student, None)
    t0 = time.perf_counter()
    _no_grad(decode, z, 1)
    t_first = time.perf_counter() - t0
    t_warm = median_seconds(lambda: _no_grad(decode, z, 1), a.reps)
    held = heldout_data(p)
    res = {"preset": p.name, "machine": machine(), "torch_threads": torch.get_num_threads(),
           "configuration": configuration(),
           "first_call_s": {"import_ditto2_nb": round(T_IMPORTED - T_START, 3),
                            "load_student": round(t_load, 3),
                            "first_forward": round(t_first, 4), "warm_forward": round(t_warm, 4)},
           "runs": [profile(student, held, cfg, b, a.reps) for b in (1, 8)],
           "network_variants": network_variants(student, cfg, a.reps)}
    OUT.mkdir(exist_ok=True)
    path = OUT / f"profile_{p.name}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["runs"]:
        print(f"batch {r['batch']}: {r['seconds']:.2f} s (RTF per clip {r['rtf_per_clip']:.2f}); "
              + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["parts_share"].items()))
    print(f"first calls: {res['first_call_s']}; wrote {path}")


if __name__ == "__main__":
    main()
