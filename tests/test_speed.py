"""The benchmarks' judgements: which faster DITTO-2 configuration counts as "no worse" and the
frontier's rows on the claims' targets (speed.py, ci); the larger-step sweep's trial targets and
rows (lr_sweep.py); which 2-step decode qualifies (decode_sweep.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data
from ditto2_nb.distill import load_distilled

ROOT = Path(__file__).resolve().parent.parent
CI_MEL = get_preset("ci").mel


def _benchmark(name: str):
    """The module benchmarks/<name>.py (the benchmarks are scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _speed_module():
    return _benchmark("speed")


def _row(intensity, melody, structure):
    return {"intensity": {"median": intensity, "better": "lower"},
            "melody": {"median": melody, "better": "higher"},
            "structure": {"median": structure, "better": "lower"}}


def test_paired_no_worse_also_needs_the_median_per_target_difference():
    speed = _speed_module()

    def row(*per_target):  # intensity per target; melody and structure the same in both rows
        return {"intensity": {"median": sorted(per_target)[1], "better": "lower",
                              "per_target": list(per_target)},
                "melody": {"median": 0.5, "better": "higher", "per_target": [0.5] * 3},
                "structure": {"median": 0.1, "better": "lower", "per_target": [0.1] * 3}}

    default = row(0.2, 0.4, 0.9)
    lower_median_worse_pairs = row(0.3, 0.5, 0.1)  # median 0.3 < 0.4, but worse on 2 of 3 targets
    assert speed.no_worse(lower_median_worse_pairs, default)
    assert not speed.no_worse(lower_median_worse_pairs, default, paired=True)
    assert speed.no_worse(row(0.1, 0.3, 0.8), default, paired=True)  # better on every target
    assert speed.no_worse(default, default, paired=True)


def test_no_worse_needs_every_control_in_its_own_direction():
    speed = _speed_module()
    default = _row(0.3, 0.6, 0.002)
    assert speed.no_worse(default, default)
    assert speed.no_worse(_row(0.2, 0.7, 0.001), default)
    assert not speed.no_worse(_row(0.31, 0.7, 0.001), default)  # intensity error higher
    assert not speed.no_worse(_row(0.2, 0.59, 0.001), default)  # melody accuracy lower
    assert not speed.no_worse(_row(0.2, 0.7, 0.003), default)  # structure error higher


def test_frontier_configurations_keep_the_guards_and_shrink_the_work():
    speed = _speed_module()
    before = speed.optim_config(speed.PREVIOUS, "intensity")
    assert (before.iterations, before.refine_last, before.lr) == (70, 20, 0.05)
    for name in speed.FRONTIER:
        for control in ("intensity", "melody"):
            opt = speed.optim_config(name, control)
            assert opt.project and opt.trust_radius == before.trust_radius
            assert opt.refine_last <= opt.iterations
            if name != speed.PREVIOUS:
                assert opt.iterations < speed.optim_config(speed.PREVIOUS, control).iterations


def test_speed_rows_are_the_claims_configurations():
    """The frontier's headline row is exactly the claims' headline DITTO-2 configuration, and its
    reference row the configuration that was the default before (claims.TRUSTED), on every control."""
    from ditto2_nb.optimize import OptimConfig

    speed = _speed_module()
    claims = speed.claims
    assert speed.HEADLINE == "x0.4 R8 lr0.5" and speed.PREVIOUS == "x1 R20 lr0.05"
    assert set(speed.FROM_LR_SWEEP) <= set(speed.FRONTIER) and speed.HEADLINE in speed.FROM_LR_SWEEP
    for control, iters in claims.ITERATIONS.items():
        protocol = OptimConfig(iterations=iters, lr=claims.PROTOCOL["lr"], snapshot_every=0)
        fast, trust = (claims.ditto2_config(k, protocol) for k in (claims.HEADLINE, "ditto2_ctm_trust"))
        assert speed.optim_config(speed.HEADLINE, control) == fast
        assert speed.optim_config(speed.PREVIOUS, control) == trust


@pytest.mark.slow
def test_frontier_rows_on_ci():
    speed = _speed_module()
    p = get_preset("ci")
    student = load_distilled("ctm", "ci")
    rows = speed.frontier(student, heldout_data(p), p.mel, reps=1, targets=2, batch=2, scale=0.05,
                          candidates={"same": student})
    extra = {f"same, {c}" for c in speed.CANDIDATE_CONFIGURATIONS}
    assert set(rows) == set(speed.FRONTIER) | extra and rows[speed.PREVIOUS]["no_worse"]
    # a candidate row is the named configuration on the candidate: the same student gives the same errors
    for config in speed.CANDIDATE_CONFIGURATIONS:
        same = rows[f"same, {config}"]
        assert same["errors"] == rows[config]["errors"] and same["no_worse"] == rows[config]["no_worse"]
    for row in rows.values():
        assert row["rtf_batch1"] > 0 and row["rtf_batch8_per_clip"] > 0
        for control in ("intensity", "melody", "structure"):
            e = row["errors"][control]
            assert len(e["per_target"]) == 2 and e["iqr"][0] <= e["median"] <= e["iqr"][1]


def test_gradient_agreement_is_one_for_the_same_student_and_less_for_another():
    """A student agrees with itself exactly (cosine 1, norm ratio 1); one with perturbed weights
    does not, and the measure names every control."""
    import torch

    speed = _speed_module()
    p = get_preset("ci")
    student, held = load_distilled("ctm", "ci"), heldout_data(p)
    same = speed.gradient_agreement(student, student, held, p.mel, targets=2)
    assert set(same) == {"intensity", "melody", "structure"}
    for v in same.values():
        assert v["cosine_median"] == pytest.approx(1.0, abs=1e-3)
        assert v["norm_ratio_median"] == pytest.approx(1.0)
    other = load_distilled("ctm", "ci")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for w in other.parameters():
            w.add_(0.1 * w.abs().mean() * torch.randn(w.shape, generator=gen))
    diff = speed.gradient_agreement(other, student, held, p.mel, targets=2)
    assert all(v["cosine_median"] < 0.999 for v in diff.values())


def test_decode_sweep_rule_allows_fd_noise_but_not_a_real_loss():
    sweep = _benchmark("decode_sweep")

    def row(sm, decoded, diff, se, fd=4.0):
        return {"sigma_mid": sm, "decoded_median": decoded, "fd_minus_1step": diff,
                "fd_minus_1step_se": se, "fd_2step": fd}

    # 0.05 decodes best and its FD is above the 1-step one by less than two standard errors
    assert sweep.choose([row(0.05, 0.8, 0.04, 0.03), row(0.1, 2.7, -0.1, 0.03)]) == 0.05
    # ... but not when the loss is beyond the noise
    assert sweep.choose([row(0.05, 0.8, 0.10, 0.03), row(0.1, 2.7, -0.1, 0.03)]) == 0.1
    # nothing qualifies: the best FD
    assert sweep.choose([row(0.05, 0.8, 0.5, 0.1, fd=4.5), row(2.5, 4.0, 0.4, 0.1, fd=4.4)]) == 2.5


def _sweep_module():
    return _benchmark("lr_sweep")


def test_lr_sweep_trial_targets_share_no_clip_or_noise_with_the_claims():
    import torch

    sweep = _sweep_module()
    claims = sweep.claims
    p = get_preset("laptop")
    start = sweep.trial_start(p.data.n_heldout, 32)
    trial = {i for c in claims.CONTROLS for i in claims.clip_range(c, 32, start)}
    used = {i for c in claims.CONTROLS for i in claims.clip_range(c, 16)}
    assert not trial & used and max(trial) == p.data.n_heldout - 1 and len(trial) == 96
    for c in claims.CONTROLS:
        idx = list(claims.clip_range(c, 4, start))
        z = sweep.trial_noise(start)(c, idx, 4, CI_MEL)
        assert torch.equal(z[2:], sweep.trial_noise(start)(c, idx[2:], 4, CI_MEL))  # batch-independent
        assert not torch.equal(z, claims.initial_noise(c, list(claims.clip_range(c, 4)), 4, CI_MEL))


def test_lr_sweep_grid_keeps_the_guards_and_counts_worse_targets():
    sweep = _sweep_module()
    head = sweep.optim_config(sweep.REFERENCE, "intensity")
    assert (head.iterations, head.refine_last, head.lr) == (70, 20, 0.05)
    grid = {"x1 R20 lr0.05"} | {f"x{f} R{round(20 * f)} lr{lr}" for f in sweep.FRACTIONS for lr in sweep.LRS}
    assert set(sweep.GRID) == grid | {f"x{f:g} R{r} lr{lr:g}" for f, r, lr in sweep.MORE_REFINEMENT}
    for name in sweep.GRID:
        opt = sweep.optim_config(name, "melody")
        assert opt.project and opt.trust_radius == head.trust_radius and opt.refine_last <= opt.iterations
    worse = lambda row, head, better: sweep.report.targets_worse(  # noqa: E731
        {"per_target": row, "better": better}, {"per_target": head})
    assert worse([0.1, 0.5, 0.3], [0.2, 0.4, 0.3], "lower") == 1
    assert worse([0.6, 0.5, 0.7], [0.7, 0.4, 0.7], "higher") == 1


@pytest.mark.slow
def test_lr_sweep_rows_on_ci():
    sweep = _sweep_module()
    p = get_preset("ci")
    names = [sweep.REFERENCE, "x0.3 R6 lr0.5"]
    rows = sweep.sweep(load_distilled("ctm", "ci"), heldout_data(p), p.mel, targets=2, batch=2, scale=0.05,
                       names=names)
    assert list(rows) == names
    for name, row in rows.items():
        for control in ("intensity", "melody", "structure"):
            r = row[control]
            assert len(r["per_target"]) == 2 and r["iqr"][0] <= r["median"] <= r["iqr"][1]
            assert 0 <= r["targets_worse_than_reference"] <= (0 if name == sweep.REFERENCE else 2)
            assert r["seconds_per_clip"] > 0
    assert rows["x0.3 R6 lr0.5"]["intensity"]["lr"] == 0.5
