"""One fit loop for the teacher and the distilled students.

``fit`` runs Adam with warm-up, gradient clipping and an EMA of the weights, writes atomic
checkpoints every ``ckpt_every`` steps and resumes exactly from the last one: every step draws its
randomness from a generator seeded by (seed, step, rank), so a resumed run sees the same batches
and noise as an uninterrupted one.

Devices: ``fit(..., device="auto")`` trains on CUDA when there is a GPU, else on the CPU
(:func:`training_device`). The model, its EMA, the extra modules and the optimiser's state live
there; the randomness stays on the CPU (each step's generator is a CPU generator: losses draw on it,
then move the draws), so a CPU run is bit-identical whatever the machine and a resumed run is exact.
Checkpoints are written from CPU copies and restored onto the device.

Data-parallel training: launch with ``torchrun --nproc_per_node N`` and ``fit`` joins the process
group (gloo on CPU, nccl on CUDA with one GPU per process: ``cuda:$LOCAL_RANK``), wraps the model in
DDP and lets rank 0 write checkpoints.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from . import checkpoints as ckpt
from .assets import model_card
from .config import TrainConfig, resolve_device


@dataclass
class History:
    """Loss per step and wall time, kept in checkpoint metadata."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)  # name -> per-step values a loss reports (e.g. dsm_share)

    def record(self, step: int, loss: float, stats: dict) -> None:
        self.step.append(step)
        self.loss.append(loss)
        for name, value in stats.items():
            self.stats.setdefault(name, []).append(None if value is None else float(value))

    def to_dict(self) -> dict:
        out = {"step": self.step, "loss": [round(v, 6) for v in self.loss],
               "seconds": round(self.seconds, 2)}
        if self.stats:
            out["stats"] = {k: [None if v is None else round(v, 6) for v in vs]
                            for k, vs in self.stats.items()}
        return out

    @classmethod
    def from_dict(cls, h: dict) -> History:
        return cls(h.get("step", []), h.get("loss", []), h.get("seconds", 0.0), h.get("stats", {}))


# loss_fn(model, generator, step) -> scalar loss, or (scalar loss, {name: float}) to record per step
LossFn = Callable[[nn.Module, torch.Generator, int], torch.Tensor | tuple[torch.Tensor, dict]]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a data-parallel wrapper (DDP's ``.module``), else the model itself.

    Losses call the network through the wrapper (so its gradients are averaged across processes)
    and read attributes (``sigma_min``, ``denoise``, ...) from the module this returns.
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator for one step: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)


class EMA:
    """Exponential moving average of a module's parameters (buffers copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.model = decay, copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def training_device(device: str | torch.device = "auto", name: str = "device") -> torch.device:
    """The device to train on: ``"auto"`` is CUDA when torch sees a GPU, else the CPU; a string
    (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"meta"``...) or a ``torch.device`` is taken as given.

    In a data-parallel run (``WORLD_SIZE`` > 1) a CUDA device without an index is this process's
    own GPU, ``cuda:$LOCAL_RANK``. A string torch does not know, or CUDA on a machine without it,
    is a ``ValueError`` naming the parameter ``name``.
    """
    try:
        dev = resolve_device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"{name}={device!r} is not a device torch knows ({e}); give 'auto', 'cpu', "
                         "'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: torch sees no CUDA GPU on this machine; give "
                             f"{name}='auto' or 'cpu'")
        if dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if (dev.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r} resolves to {dev}, but torch sees only "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def _dist_setup(device: str | torch.device = "cpu") -> tuple[int, int]:
    """Join the process group when launched by torchrun: nccl when training on CUDA (this
    process's GPU made current), gloo on the CPU. Returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if cuda else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def on_device(data: torch.Tensor, device: torch.device, budget: float = 0.5) -> torch.Tensor:
    """Training data where the steps read it: moved to ``device`` once when it takes less than
    ``budget`` of the GPU's free memory (always, off CUDA), else left on the CPU for
    :func:`batch_of` to move each batch."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.numel() * data.element_size() > budget * free:
            return data
    return data.to(device)


def batch_of(data: torch.Tensor, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``data[idx]`` on ``device``, wherever ``data`` and the indices (drawn on the CPU) are."""
    return data[idx.to(data.device)].to(device)


def leave_process_group() -> None:
    """End a data-parallel run cleanly: wait for every process, then close the process group (left
    to interpreter exit, gloo's threads may abort a finished process)."""
    if dist.is_initialized():
        gc.collect()  # no DDP reducer (often held in a reference cycle) may outlive the group
        dist.barrier()
        dist.destroy_process_group()


def _state(model, ema, opt, extra: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    t = {f"model/{k}": v for k, v in model.state_dict().items()}
    t |= {f"ema/{k}": v for k, v in ema.model.state_dict().items()}
    for name, module in extra.items():
        t |= {f"{name}/{k}": v for k, v in module.state_dict().items()}
    for i, s in opt.state_dict()["state"].items():
        t |= {f"optim/{i}/{k}": torch.as_tensor(v) for k, v in s.items()}
    return t


def _restore(path, model, ema, opt, extra) -> tuple[int, History]:
    tensors, meta = ckpt.read(path)
    ckpt.load_state(model, ckpt.prefixed(tensors, "model"), path)
    ckpt.load_state(ema.model, ckpt.prefixed(tensors, "ema"), path)
    for name, module in extra.items():
        ckpt.load_state(module, ckpt.prefixed(tensors, name), path)
    osd = opt.state_dict()
    state = {}
    for key, v in ckpt.prefixed(tensors, "optim").items():
        i, k = key.split("/", 1)
        state.setdefault(int(i), {})[k] = v
    osd["state"] = state
    opt.load_state_dict(osd)
    return int(meta["step"]), History.from_dict(meta.get("history", {}))


def fit(model: nn.Module, loss_fn: LossFn, cfg: TrainConfig, ckpt_path, *, meta: dict,
        extra: dict[str, nn.Module] | None = None, after_step: Callable | None = None,
        progress: bool = True, device: str | torch.device = "auto") -> tuple[EMA, History]:
    """Train ``model`` on ``loss_fn(model, generator, step)`` and return (EMA, history).

    Args:
        model: the module to train (its EMA is returned for sampling).
        loss_fn: draws its own batch and noise from the generator; returns a scalar loss, or
            (loss, stats) with a dict of floats recorded per step in ``History.stats``.
        cfg: optimisation settings.
        ckpt_path: training checkpoint (resumed from when it exists and matches ``meta``).
        meta: JSON-safe description (configs) stored in the checkpoint's metadata.
        extra: further modules saved and restored with the checkpoint (e.g. a CM target net).
        after_step: called as ``after_step(step, ema)`` after each optimizer step (e.g. a
            target-network update or a snapshot of the EMA).
        device: where to train (:func:`training_device`; ``"auto"``: CUDA when present). The
            model and the extra modules are moved there (in place); ``loss_fn`` must give the
            network its batch on that device (draw on the step's CPU generator, then ``.to``).
            The returned EMA is on it too.
    """
    dev = training_device(device)
    rank, world = _dist_setup(dev)
    extra = extra or {}
    model.to(dev)
    for module in extra.values():
        module.to(dev)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    start, hist = 0, History()
    if ckpt_path is not None and os.path.exists(ckpt_path):
        if _comparable(json.loads(json.dumps(meta))) != _comparable(_meta_of(ckpt_path)):
            raise ckpt.CheckpointError(
                f"{ckpt_path} was written for a different configuration; delete it or choose "
                "another checkpoint path to start afresh")
        start, hist = _restore(ckpt_path, model, ema, opt, extra)
    net = model
    if world > 1:  # on CUDA one GPU per process: device_ids = [LOCAL_RANK] (training_device)
        ids = [dev.index] if dev.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    t0 = time.perf_counter() - hist.seconds
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps,
               disable=not progress or rank != 0, desc="train")
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        loss = loss_fn(net, step_generator(cfg.seed, step, rank), step)
        loss, stats = loss if isinstance(loss, tuple) else (loss, {})
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}; lower the "
                                     "learning rate or check the data for NaNs")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema.update(model)
        if after_step is not None:
            after_step(step, ema)
        hist.record(step, value, stats)
        bar.set_postfix(loss=f"{value:.4f}")
        done = step + 1
        if ckpt_path is not None and rank == 0 and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            hist.seconds = time.perf_counter() - t0
            ckpt.save(ckpt_path, _state(model, ema, opt, extra),
                      {**meta, "step": done, "history": hist.to_dict()})
    hist.seconds = time.perf_counter() - t0
    return ema, hist


def _comparable(meta: dict) -> dict:
    """Metadata that must match to resume; the step count may grow (extending a run)."""
    m = dict(meta)
    if isinstance(m.get("train"), dict):
        m["train"] = {k: v for k, v in m["train"].items() if k != "steps"}
    return m


def _meta_of(path) -> dict:
    m = ckpt.read_metadata(path)
    return {k: v for k, v in m.items() if k not in ("step", "history")}


def export_ema(path, ema_model: nn.Module, metadata: dict) -> None:
    """Write the shipped form of a model: EMA weights in float16 plus metadata, and a model card
    (``<name>.md``) beside it."""
    tensors = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    ckpt.save(path, tensors, metadata)
    Path(path).with_suffix(".md").write_text(model_card(Path(path).name, metadata))
