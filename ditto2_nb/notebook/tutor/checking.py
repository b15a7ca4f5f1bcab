"""How the checks check: fresh random inputs per call (their own seed stream), a student's error
traced to their own code, comparisons that say *how* an answer is wrong (shape, sign, factor,
missing term), and the tiny models several checks build."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.config import NetConfig
from ...data.tags import tag_vocab
from ...diffusion.networks import Denoiser
from ...distill.students import ConsistencyModel, CTMModel


class TutorError(AssertionError):
    """An exercise check failed; the message says what is wrong and how to fix it."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows these lines instead of a traceback (the message is the whole story)."""
        lines = str(self).splitlines() or [""]
        return [f"\x1b[1;31mTutorError\x1b[0m: {lines[0]}", *lines[1:]]


# ============================================================================ plumbing

# One stream of seeds per session: every check call draws fresh inputs, reproducibly.
_SEEDS = random.Random(20240531)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(_SEEDS.randrange(2**31))


def _passed(message: str) -> None:
    print(f"✓ {message}")


def _name(fn) -> str:
    return getattr(fn, "__name__", "your function")


_LIBRARY = Path(__file__).resolve().parents[2]  # the ditto2_nb package
_STDLIB = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")]


def _student_frame(filename: str) -> bool:
    """True for code the student wrote (a notebook cell or their own file), not library code."""
    if filename.startswith("<frozen"):
        return False
    path = Path(filename).resolve()
    return "site-packages" not in path.parts and not path.is_relative_to(_LIBRARY) and not any(
        path.is_relative_to(p) for p in _STDLIB)


def _where(err: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _student_frame(f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or "").strip()
    return f" (in {f.name}, line {f.lineno}: `{line}`)" if line else f" (in {f.name}, line {f.lineno})"


def _hint(err: BaseException) -> str:
    msg = str(err)
    if isinstance(err, RuntimeError) and ("size of tensor" in msg or "must match" in msg
                                          or "broadcast" in msg or "shape" in msg):
        return (" Hint: two tensors have shapes that do not fit together; print their .shape. Noise "
                "levels given per example are [B]: reshape them to broadcast against x, e.g. "
                "append_dims(sigma, x.ndim) or sigma.view(-1, 1, 1).")
    if isinstance(err, (TypeError, ValueError)) and ("Tensor" in msg or "real number" in msg
                                                     or "one element tensors" in msg):
        return " Hint: use torch functions (torch.log10, torch.exp, torch.sqrt...) on tensors, not math.*."
    if "does not require grad" in msg:
        return (" Hint: the gradient is cut somewhere: avoid .detach(), .item(), .numpy() and "
                "torch.no_grad() on the way to the output.")
    return ""


def _call(fn, *args, what: str | None = None):
    """Run the student's function; turn every way it can fail into a plain-words TutorError."""
    what = what or _name(fn)
    if not callable(fn):
        raise TutorError(f"expected a function, got {type(fn).__name__}: pass the function itself, "
                         "without calling it (no parentheses).")
    try:
        out = fn(*args)
    except NotImplementedError as e:
        detail = f" ({e})" if str(e) else ""
        raise TutorError(f"{what} is not written yet{detail}: replace the `raise NotImplementedError` "
                         "line with your code, run that cell, then run this check again.") from None
    except TutorError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the student's code is reported
        raise TutorError(f"{what} raised {type(e).__name__}: {e}{_where(e)}.{_hint(e)}") from e
    if out is None:
        raise TutorError(f"{what} returned None: did you forget the `return` statement?")
    return out


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.floating)):
        try:
            return torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise TutorError(f"{what} should be a torch.Tensor, got {type(x).__name__}.")


def _shape_hint(got: tuple, want: tuple) -> str:
    if len(got) == len(want) == 2 and got == want[::-1]:
        return " It looks transposed: swap the two axes (.T)."
    if len(want) == 0:
        return " Expected a single number: reduce with .mean()."
    if math.prod(got) == math.prod(want):
        return " Same number of entries in another layout: a transpose or reshape too many (or few)?"
    if len(got) == len(want) - 1:
        return (" One dimension is missing: did you sum/average over an axis that should stay, or drop "
                "the batch dimension?")
    if len(got) == len(want) + 1:
        return " One dimension too many: an axis that should be reduced (sum/mean), or an extra [..., None]?"
    return ""


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def _compare(got, want: torch.Tensor, what: str, *, rtol: float = 1e-4, atol: float = 1e-5,
             mistakes: Sequence[tuple[str, torch.Tensor]] = (), nonfinite: str = "",
             hint: str = "", shape_hint: str = "") -> None:
    """Raise a TutorError that explains how ``got`` differs from ``want`` (or return quietly).

    ``mistakes`` are (message, value) pairs: what a typical wrong answer would return. The first
    one that ``got`` matches gives the message (a missing term, a swapped weight...).
    """
    g = _as_tensor(got, what).detach().cpu()
    if g.is_complex():
        raise TutorError(f"{what} is complex-valued: a square root (** 0.5) of a negative number? "
                         f"{nonfinite or 'Check that what goes under each square root cannot be negative.'}")
    g, w = g.double(), want.detach().double().cpu()
    if tuple(g.shape) != tuple(w.shape):
        raise TutorError(f"{what} has the wrong shape: expected {list(w.shape)}, got {list(g.shape)}."
                         f"{_shape_hint(tuple(g.shape), tuple(w.shape)) or shape_hint}")
    if not torch.isfinite(g).all() and torch.isfinite(w).all():
        idx = tuple(int(i) for i in (~torch.isfinite(g)).nonzero()[0]) if g.ndim else ()
        raise TutorError(f"{what} contains NaN or inf (first at index {list(idx)}). "
                         f"{nonfinite or 'A division by zero, or the log of zero?'}")
    if _close(g, w, rtol, atol):
        return
    for message, value in mistakes:
        c = value.detach().double().cpu()
        if _close(g, c, rtol, atol) and not _close(c, w, rtol, atol):
            raise TutorError(f"{what} is not right: {message}")
    if _close(g, -w, rtol, atol):
        raise TutorError(f"{what} has the wrong sign: yours is minus the expected value.{hint}")
    # A constant factor or offset: the residual after fitting it is tiny *relative* to the values.
    den, g_norm = float((w * w).sum()), float(g.norm())
    if den > 0 and g_norm > 0:
        c = float((g * w).sum()) / den
        if abs(c - 1) > 1e-3 and float((g - c * w).norm()) <= 1e-3 * g_norm:
            raise TutorError(f"{what} is off by a constant factor: yours ≈ {c:.4g} × the expected value. "
                             f"A missing or extra constant (a 2, a 1/2, a 10, sigma_data...)?{hint}")
    if g.numel() > 1:
        offset = float((g - w).mean())
        if abs(offset) > atol and float((g - w - offset).norm()) <= 1e-3 * float((g - w).norm()):
            raise TutorError(f"{what} is off by a constant: yours = expected {offset:+.4g} everywhere.{hint}")
    diff = (g - w).abs()
    idx = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(w.shape))) if w.ndim else ()
    raise TutorError(f"{what} does not match the reference: the largest difference is "
                     f"{float(diff.max()):.3g} at index {list(idx)} (yours {float(g[idx]):.5g}, expected "
                     f"{float(w[idx]):.5g}).{hint}")


def _tuple_of(out, n: int, what: str, names: str) -> tuple:
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"a {type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise TutorError(f"{what} should return {n} values ({names}), got {got}.")
    return tuple(out)


def _randomise(model: nn.Module, scale: float = 0.05) -> nn.Module:
    """Give every parameter (also the zero-initialised output layers) a small random value."""
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(0.0, scale)
            else:
                p.add_(torch.randn_like(p) * scale)
    return model


_TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=0)


def _tiny_cm_models(seed: int) -> tuple[Denoiser, ConsistencyModel, ConsistencyModel]:
    """A small random teacher, a CM student copied from it and a different target network."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = _randomise(Denoiser(_TINY)).eval().requires_grad_(False)
        student = _randomise(ConsistencyModel.from_teacher(teacher), 0.02)
        target = _randomise(copy.deepcopy(student), 0.02)
    return teacher, student, target


def _tiny_ctm_student(seed: int) -> CTMModel:
    """A small random CTM student (its decode uses gamma, unlike a CM's), frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = _randomise(Denoiser(_TINY))
        student = _randomise(CTMModel.from_teacher(teacher), 0.02)
    return student.eval().requires_grad_(False)


def _tiny_conditional_denoiser(seed: int) -> Denoiser:
    """A small random denoiser conditioned on the real tag fields (for the CFG exercise)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _randomise(Denoiser(dataclasses.replace(_TINY, tag_vocab=tag_vocab())), 0.2)
    return model.eval().requires_grad_(False)


def _needs_grad(out, what: str, inputs: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise TutorError(f"{what} is not differentiable: no gradient can flow back to {inputs}. Avoid "
                         ".detach(), .item(), .numpy(), argmax and torch.no_grad() on the way.")
    return out


def _log_normal_sigmas(g: torch.Generator, n: int) -> torch.Tensor:
    return (torch.randn(n, generator=g, dtype=torch.float64) * 1.5 - 0.5).exp()
