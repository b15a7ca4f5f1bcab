"""Checks of T08 (steer a melody): the chroma of a mel (pitch-class templates, log energy, softmax
per frame) and the melody loss (cross-entropy of the target pitch class on voiced frames)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...audio.mel import norm_to_power
from ...controls.melody import MelodyControl, chroma, chroma_matrix
from ...core.config import MelConfig
from .checking import TutorError, _call, _compare, _gen, _needs_grad, _passed


def _random_mels(g: torch.Generator, cfg: MelConfig, b: int = 3, frames: int = 20) -> torch.Tensor:
    """Mels with a loud bin pattern per example, frame-to-frame variation and some floor bins."""
    base = torch.rand(b, cfg.n_mels, 1, generator=g) * 1.2 - 0.9
    return (base + 0.35 * torch.randn(b, cfg.n_mels, frames, generator=g)).clamp(-1.0, 1.0)


def _random_target(g: torch.Generator, b: int, frames: int) -> torch.Tensor:
    """Pitch classes ``[b, frames]`` with about a quarter of rests (-1), every row partly voiced."""
    y = torch.randint(0, 12, (b, frames), generator=g)
    rest = torch.rand(b, frames, generator=g) < 0.25
    rest[:, 0] = False
    return torch.where(rest, -1, y)


def _energy(mel: torch.Tensor, cfg: MelConfig, values: torch.Tensor | None = None) -> torch.Tensor:
    """``chroma_matrix @ values`` per frame (default values: the mel power)."""
    v = norm_to_power(mel, cfg) if values is None else values
    return torch.einsum("cm,bmt->bct", chroma_matrix(cfg).to(v), v)


def _call_hinted(fn, *args, signature: str):
    """:func:`_call`, with a hint for two errors typical here: a -1 (rest) used as an index, and a
    signature that lost an argument."""
    try:
        return _call(fn, *args)
    except TutorError as e:
        msg = str(e)
        if "out of bounds" in msg or "index -1" in msg:
            msg += (" Hint: a rest is -1, which is no pitch-class index: gather with "
                    "target_pc.clamp_min(0), then mask the rests out of the average.")
        elif "positional argument" in msg:
            msg += f" Hint: keep the signature of the exercise cell, {signature}."
        raise TutorError(msg) from None


def _grad_ok(x: torch.Tensor) -> bool:
    return x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def check_chroma(fn: Callable) -> None:
    """T08: ``fn(mel [B, n_mels, frames], cfg, temperature) -> [B, 12, frames]`` pitch-class
    probabilities per frame, equal to :func:`ditto2_nb.controls.chroma` and differentiable."""
    g = _gen()
    taus = (1.0, float(torch.empty(1).uniform_(0.3, 0.7, generator=g)),
            float(torch.empty(1).uniform_(1.5, 3.0, generator=g)))
    cfgs = (MelConfig(), MelConfig(n_mels=int(torch.randint(40, 97, (1,), generator=g))))
    for cfg, tau in zip((cfgs[0], cfgs[1], cfgs[0]), taus):
        mel = _random_mels(g, cfg)
        want = chroma(mel, cfg, tau)
        e = _energy(mel, cfg)
        logits = torch.log10(e + 1e-10)
        mistakes = [
            ("the softmax runs over the wrong axis: the 12 pitch classes of each frame must sum to 1, "
             "so normalise over dim=1 (the pitch-class axis), not over the frames.",
             torch.softmax(logits / tau, dim=-1)),
            ("divide the log energy by the temperature (logits = log10(E) / temperature); yours looks "
             "multiplied by it.", torch.softmax(logits * tau, dim=1)),
            ("the temperature is missing: divide the log energy by it before the softmax.",
             torch.softmax(logits, dim=1)),
            ("use log10, not the natural log (log10(E) / temperature are the logits).",
             torch.softmax(torch.log(e + 1e-10) / tau, dim=1)),
            ("take the log of the energy before the softmax: the logits are log10(E) / temperature, "
             "not E itself.", torch.softmax(e / tau, dim=1)),
            ("gather the mel *power* into pitch classes (audio.norm_to_power(mel, cfg)), not the "
             "normalised mel values; then take log10.",
             torch.softmax(torch.log10(_energy(mel, cfg, mel).clamp_min(1e-10)) / tau, dim=1)),
            ("the softmax is missing: return probabilities that sum to 1 over the 12 pitch classes.",
             logits / tau),
        ]
        x = mel.clone().requires_grad_(True)
        got = _call_hinted(fn, x, cfg, tau, signature="my_chroma(mel, cfg, temperature=1.0)")
        _compare(got, want, f"my_chroma(mel, cfg, temperature={tau:.3g}) with n_mels={cfg.n_mels}",
                 rtol=1e-4, atol=1e-6, mistakes=mistakes,
                 nonfinite="The log of a negative or zero energy? Convert the mel to power first "
                           "(audio.norm_to_power), and add 1e-10 inside the log.",
                 hint=" The recipe: P = norm_to_power(mel, cfg); E = chroma_matrix(cfg) @ P per frame; "
                      "softmax over dim=1 of log10(E + 1e-10) / temperature.")
        _needs_grad(got, "my_chroma", "the mel")
        (got * torch.arange(12.0)[None, :, None]).sum().backward()
        if not _grad_ok(x):
            raise TutorError("my_chroma is not differentiable: the gradient with respect to the mel is "
                             "missing, zero or NaN.")
    _passed(f"your chroma matches controls.chroma for n_mels = {cfgs[0].n_mels}, {cfgs[1].n_mels} and "
            f"temperatures {', '.join(f'{t:.2g}' for t in taus)}, and gradients reach the mel")


def check_melody_loss(fn: Callable) -> None:
    """T08: ``fn(mel [B, n_mels, frames], target_pc [B, frames], cfg, temperature=1.0) -> [B]``: the
    cross-entropy ``-ln p[y_t, t]`` of the chroma, averaged over the voiced frames (``y_t >= 0``), equal to
    :meth:`ditto2_nb.controls.MelodyControl.loss`."""
    g = _gen()
    cfg = MelConfig()
    for tau in (None, float(torch.empty(1).uniform_(0.4, 2.5, generator=g))):
        b, frames = 3, 24
        mel = _random_mels(g, cfg, b, frames)
        y = _random_target(g, b, frames)
        t = 1.0 if tau is None else tau
        want = MelodyControl(cfg, frames, y, t).loss(mel)
        p = chroma(mel, cfg, t)
        py = p.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, frames]
        voiced = (y >= 0).double()
        nll = -py.log()

        def over_voiced(v, voiced=voiced):
            return (v * voiced).sum(-1) / voiced.sum(-1)

        mistakes = [
            ("use the log-probability: the cross-entropy is -ln p[target], not -p[target].",
             over_voiced(-py)),
            ("use the log-probability, -ln p[target], not 1 - p[target].", over_voiced(1 - py)),
            ("the minus sign is missing: the cross-entropy is -ln p[target] (positive; lower is better).",
             over_voiced(py.log())),
            ("use the natural log (torch.log or torch.log_softmax), not log10, for the cross-entropy.",
             over_voiced(-py.log10())),
            ("average over the voiced frames: divide by their number, do not just sum.",
             (nll * voiced).sum(-1)),
            ("the rests (-1) must be ignored: average over the voiced frames only (target >= 0), "
             "not over all frames.", nll.mean(-1)),
            ("the rests are masked, but divide by the number of *voiced* frames, not by all frames.",
             (nll * voiced).sum(-1) / frames),
            ("the temperature is not used: pass it on to your chroma (logits / temperature).",
             over_voiced(-chroma(mel, cfg, 1.0).gather(1, y.clamp_min(0)[:, None])[:, 0].log())),
        ]
        x = mel.clone().requires_grad_(True)
        args = (x, y.clone(), cfg) if tau is None else (x, y.clone(), cfg, tau)
        got = _call_hinted(fn, *args, signature="my_melody_loss(mel, target_pc, cfg, temperature=1.0)")
        what = f"my_melody_loss(mel, target_pc, cfg{'' if tau is None else f', temperature={tau:.3g}'})"
        _compare(got, want, what, rtol=1e-4, atol=1e-6, mistakes=mistakes,
                 nonfinite="The log of a zero probability (use log_softmax of the logits), or a division "
                           "by a voiced-frame count of zero?",
                 hint=" The loss of example b is the mean over its voiced frames t (target >= 0) of "
                      "-ln chroma[b, target[b, t], t].",
                 shape_hint=" One loss per example: [B].")
        _needs_grad(got, "my_melody_loss", "the mel").sum().backward()
        if not _grad_ok(x):
            raise TutorError("my_melody_loss is not differentiable with respect to the mel (missing, zero "
                             "or NaN gradient).")
    _passed("your melody loss equals MelodyControl(...).loss (cross-entropy on voiced frames, one value "
            "per example) at two temperatures, and is differentiable")
