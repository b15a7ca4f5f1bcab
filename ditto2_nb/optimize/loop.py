"""The optimisation loop both methods share: Adam on a unit-scale noise z, its settings
(:class:`OptimConfig`), what it records (:class:`Trace`) and returns (:class:`OptResult`), and the
typical-set penalty, shell projection and trust region that keep z where Gaussian draws are.

``loss_fn(mel [B, n_mels, frames]) -> [B]`` is any per-example control loss (see :mod:`ditto2_nb.controls`),
so a batch of different targets is optimised at once.

See docs/method.md, sections 5.1 (the objective), 5.5 (penalty, shell, trust region) and 5.6
(the cost model).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..core import validate as check

LossFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OptimConfig:
    iterations: int = 70  # Adam steps (the paper: 70 for intensity, 150 for melody/structure)
    lr: float = 0.05  # Adam learning rate on the unit-scale noise z
    snapshot_every: int = 10  # keep z and the output every this many iterations (0 = never)
    patience: int = 0  # early stop after this many iterations without improvement (0 = off)
    min_improvement: float = 1e-4  # relative improvement that resets the patience counter
    reg_weight: float = 0.0  # typical-set penalty: reg * (|z| / sqrt(D) - 1)^2 per example
    refine_last: int = 0  # DITTO-2 only: last R iterations backpropagate through the M-step decode
    project: bool = False  # after every step, rescale each z to the typical norm sqrt(D)
    trust_radius: float = 0.0  # > 0: keep |z - z0| <= radius * sqrt(D) (a trust region; 0 = off)

    def __post_init__(self) -> None:
        for name in ("iterations", "lr", "snapshot_every", "patience", "min_improvement", "reg_weight",
                     "trust_radius"):  # the limits every entry point shares (core.validate.LIMITS)
            check.limited(name, getattr(self, name))
        check.limited("refine_last", self.refine_last, hi=self.iterations)


@dataclass
class Trace:
    """What happened during one optimisation run (per iteration, cumulative where stated)."""

    loss: list = field(default_factory=list)  # mean control loss (without the penalty)
    loss_per_example: list = field(default_factory=list)  # [iterations][B]
    seconds: list = field(default_factory=list)  # cumulative wall time
    nfe: list = field(default_factory=list)  # cumulative forward passes (incl. checkpoint recompute)
    through_decode: list = field(default_factory=list)  # True where the gradient went via decode
    # (iteration, z [B, n_mels, frames], output mel [B, n_mels, frames]) with mel = generate(z) at that
    # iteration (z before its Adam step), every snapshot_every-th and the last
    snapshots: list = field(default_factory=list)
    stopped_early: bool = False

    @property
    def wall(self) -> float:
        return self.seconds[-1] if self.seconds else 0.0


@dataclass
class OptResult:
    z: torch.Tensor  # optimised unit-scale noise [B, n_mels, frames]
    x0: torch.Tensor  # the final output mel [B, n_mels, frames] (DITTO-2: the M-step decode)
    trace: Trace
    x0_surrogate: torch.Tensor | None = None  # DITTO-2: the 1-step output at the optimised z
    seconds_total: float = 0.0  # including the final decode


class _CallCounter:
    """Counts a module's forward calls until :meth:`remove`.

    A *pre*-hook, so that the recomputations of gradient checkpointing count too (non-reentrant
    checkpointing stops a recomputation early, before a post-forward hook would fire).
    """

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self._hook = module.register_forward_pre_hook(self._hit)

    def _hit(self, *_) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._hook.remove()


def typical_set_penalty(z: torch.Tensor) -> torch.Tensor:
    """(|z| / sqrt(D) - 1)^2 per example: zero when z has the norm of a typical Gaussian draw."""
    d = z[0].numel()
    return (z.flatten(1).norm(dim=1) / d**0.5 - 1.0) ** 2


def project_to_shell(z: torch.Tensor) -> torch.Tensor:
    """Each example of ``z [B, ...]`` rescaled to norm sqrt(D), where a Gaussian draw's norm
    concentrates: the noise stays in the region the networks were trained on."""
    d = z[0].numel()
    return z * (d**0.5 / z.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *[1] * (z.ndim - 1))


def into_trust_region(z: torch.Tensor, z0: torch.Tensor, radius: float) -> torch.Tensor:
    """``z`` pulled back, per example, to within ``radius * sqrt(D)`` of ``z0``."""
    d = z[0].numel()
    step = (z - z0).flatten(1).norm(dim=1).clamp_min(1e-12)
    shrink = (radius * d**0.5 / step).clamp(max=1.0).view(-1, *[1] * (z.ndim - 1))
    return z0 + (z - z0) * shrink


Callback = Callable[[int, Trace, torch.Tensor], None]


def _nonfinite_output(it: int, cfg: OptimConfig) -> str:
    if it == 0:
        return ("the model's output for the initial noise is NaN/inf (before any update): the weights or "
                "the sampler settings (e.g. the CFG scale w) are non-finite, not the learning rate")
    return (f"the generated mel became NaN/inf at iteration {it} (finite until then): the updates "
            f"diverged; lower the learning rate (now lr={cfg.lr})")


class NoiseAdam:
    """Adam on the one tensor z, written out with the arithmetic of ``torch.optim.Adam``'s
    single-tensor path at its defaults (betas 0.9, 0.999; eps 1e-8), so the iterates are the same
    bit for bit (tested). Why not ``torch.optim.Adam`` itself: building the first torch optimiser in
    a process imports ``torch._dynamo`` (~1 s), a large part of the control panel's first run."""

    def __init__(self, z: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.z, self.lr, (self.beta1, self.beta2), self.eps = z, lr, betas, eps
        self.m = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.v = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.t = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.z.grad = None

    @torch.no_grad()
    def step(self) -> None:
        g = self.z.grad
        self.t += 1
        self.m.lerp_(g, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        step = float(self.t)
        bias1, bias2 = 1 - self.beta1**step, 1 - self.beta2**step
        denom = (self.v.sqrt() / bias2**0.5).add_(self.eps)
        self.z.addcdiv_(self.m, denom, value=-(self.lr / bias1))


def _optimise(z0: torch.Tensor, generate_fn, loss_fn: LossFn, cfg: OptimConfig, model: torch.nn.Module,
              progress: bool, desc: str, callback: Callback | None = None) -> tuple[torch.Tensor, Trace]:
    """The shared Adam loop, counting ``model``'s forward calls. ``generate_fn(z, it) -> (mel,
    through_decode)``; ``callback(it, trace, mel)`` after every iteration (live plots), with the
    iteration's output mel detached."""
    counter = _CallCounter(model)
    try:
        return _adam_loop(z0, generate_fn, loss_fn, cfg, counter, progress, desc, callback)
    finally:
        counter.remove()


def _adam_loop(z0, generate_fn, loss_fn: LossFn, cfg: OptimConfig, counter: _CallCounter, progress: bool,
               desc: str, callback: Callback | None) -> tuple[torch.Tensor, Trace]:
    z = z0.detach().clone().requires_grad_(True)  # z0 checked by the method against its model
    start = z.detach().clone()
    opt = NoiseAdam(z, lr=cfg.lr)
    trace, best, waited = Trace(), float("inf"), 0
    t0 = time.perf_counter()
    for it in tqdm(range(cfg.iterations), disable=not progress, desc=desc, leave=False):
        mel, via_decode = generate_fn(z, it)
        per_example = loss_fn(mel)
        if per_example.ndim != 1 or per_example.shape[0] != z.shape[0]:
            raise ValueError(f"loss_fn must return one loss per example [B]={z.shape[0]}, "
                             f"got shape {tuple(per_example.shape)}")
        if not torch.isfinite(mel).all():
            raise FloatingPointError(_nonfinite_output(it, cfg))
        if not torch.isfinite(per_example).all():
            raise FloatingPointError(
                f"the control loss is NaN/inf at iteration {it} while the generated mel is finite: "
                "check the control's target for NaN/inf")
        snapshot = cfg.snapshot_every and (it % cfg.snapshot_every == 0 or it == cfg.iterations - 1)
        if snapshot:  # the z that produced this iteration's mel, before the step moves it
            trace.snapshots.append((it, z.detach().cpu().clone(), mel.detach().cpu()))
        total = per_example.sum()
        if cfg.reg_weight > 0:
            total = total + cfg.reg_weight * typical_set_penalty(z).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            if cfg.trust_radius > 0:
                z.copy_(into_trust_region(z, start, cfg.trust_radius))
            if cfg.project:
                z.copy_(project_to_shell(z))
        mean = per_example.mean().item()
        trace.loss.append(mean)
        trace.loss_per_example.append(per_example.detach().cpu().tolist())
        trace.seconds.append(time.perf_counter() - t0)
        trace.nfe.append(counter.calls)
        trace.through_decode.append(via_decode)
        if callback is not None:
            callback(it, trace, mel.detach())
        if cfg.patience:
            if mean < best * (1 - cfg.min_improvement):
                best, waited = mean, 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    trace.stopped_early = True
                    break
    return z.detach(), trace
