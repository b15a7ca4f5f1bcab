"""A released LAION-CLAP model as a scorer, built from local files only: 16 kHz audio resampled
to 48 kHz, gradients reaching the waveform, nothing unpickled beyond tensors and numpy scalars."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.mel import as_waveform, resample
from ..audio.vocoder import GriffinLimVocoder
from ..core import checkpoints as ckpt
from ..core.config import MelConfig
from .base import ClapError, ClapFilesMissing, _check_mel, _ScorerBase, check_texts

# roberta-base's architecture, used when the tokenizer folder carries no config.json.
ROBERTA_BASE = {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
                "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}

LAION_HELP = (
    "LAION-CLAP needs two local things:\n"
    "  1. a released checkpoint (.pt), e.g. 630k-audioset-best.pt (amodel='HTSAT-tiny') or "
    "music_audioset_epoch_15_esc_90.14.pt (amodel='HTSAT-base'), from "
    "https://huggingface.co/lukewys/laion_clap ;\n"
    "  2. the roberta-base tokenizer files (vocab.json and merges.txt; config.json too if you have it) "
    "in one folder, from https://huggingface.co/FacebookAI/roberta-base , e.g. `huggingface-cli download "
    "FacebookAI/roberta-base vocab.json merges.txt config.json --local-dir roberta-base`.\n"
    "Nothing is downloaded by ditto2_nb.")


def _laion_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, read without unpickling arbitrary objects.

    ``.safetensors`` files are read directly; ``.pt`` files with ``torch.load(weights_only=True)``,
    allowing only numpy scalars/dtypes besides tensors (some training checkpoints store metrics as
    numpy scalars). A file that needs full unpickling is refused with an explanation.
    """
    if path.suffix == ".safetensors":
        tensors, _ = ckpt.read(path)
        return tensors
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core.multiarray import scalar
    else:
        from numpy.core.multiarray import scalar
    allowed: list[Any] = [np.dtype, (scalar, "numpy.core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError...: explain and refuse
        raise ClapError(
            f"{path} cannot be read with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[-1][:200] if str(e) else ''}). ditto2_nb never unpickles arbitrary "
            "objects. Some released .pt files were written with pickle protocol 4 or hold Python "
            "objects, which the safe loader refuses. If you trust the file, convert it once yourself, "
            "outside ditto2_nb, to safetensors (load it with full unpickling, take its 'state_dict', "
            "and write that with safetensors.torch.save_file), then pass the .safetensors path.") from e
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ClapError(f"{path} holds no state dict of tensors (expected {{'state_dict': {{name: tensor}}}} "
                        "as in the LAION-CLAP releases)")
    return state


class LaionClap(_ScorerBase):
    """A released LAION-CLAP model as a :class:`Scorer`, built from local files only.

    Args:
        checkpoint: the ``.pt`` release file (``{"state_dict": {"module.<name>": tensor}}``) or a
            ``.safetensors`` copy of its state dict.
        tokenizer_dir: folder with roberta-base's ``vocab.json`` and ``merges.txt`` (and optionally
            ``config.json``, whose architecture then builds the text tower; else roberta-base's).
        amodel: audio tower of the checkpoint: ``"HTSAT-tiny"`` (630k releases), ``"HTSAT-base"``
            (music releases), or any name of ``laion_clap``'s model configs.
        model_cfg: a full CLAP config dict instead of ``amodel`` (tests use a tiny one).
        mel_cfg: this project's mel settings: audio arrives at ``mel_cfg.sample_rate`` and is
            resampled to the model's rate (48 kHz).
        vocoder: mel -> waveform for :meth:`embed_audio` (default: Griffin-Lim).

    How construction avoids the network: ``laion_clap``'s ``CLAP`` class builds its text tower with
    ``RobertaModel.from_pretrained("roberta-base")`` (a download). During construction that name is
    pointed at a stand-in whose ``from_pretrained`` builds an untrained ``RobertaModel`` from a
    config; the checkpoint then fills every weight, text tower included. The tokenizer is read with
    ``local_files_only=True``. Fusion checkpoints (``*-fusion-*``) are not supported.
    """

    def __init__(self, checkpoint: str | Path, tokenizer_dir: str | Path, *, amodel: str = "HTSAT-tiny",
                 model_cfg: dict | None = None, mel_cfg: MelConfig | None = None, vocoder: Any = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        checkpoint, tokenizer_dir = Path(checkpoint).expanduser(), Path(tokenizer_dir).expanduser()
        missing = []
        if not checkpoint.is_file():
            missing.append(f"checkpoint file {checkpoint}")
        if not tokenizer_dir.is_dir():
            missing.append(f"tokenizer folder {tokenizer_dir}")
        else:
            missing += [f"{tokenizer_dir / n}" for n in ("vocab.json", "merges.txt")
                        if not (tokenizer_dir / n).is_file()]
        if missing:
            raise ClapFilesMissing("missing: " + ", ".join(missing) + "\n" + LAION_HELP)
        self.mel_cfg = mel_cfg or MelConfig()
        self.vocoder = vocoder or GriffinLimVocoder(self.mel_cfg)
        self.model_cfg = self._config(amodel, model_cfg)
        state = _laion_state_dict(checkpoint)  # before the (slow) build: a bad file fails fast
        self.model = self._build(tokenizer_dir, self.model_cfg)
        self._load_weights(state, checkpoint)
        from transformers import RobertaTokenizer

        self.tokenizer = RobertaTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        self.name = f"LAION-CLAP ({model_cfg and 'custom' or amodel}, {checkpoint.name})"
        self.to(device).eval().requires_grad_(False)

    @staticmethod
    def _modules() -> tuple[Any, Any]:
        """laion_clap's ``clap_module.factory`` and ``clap_module.model`` (imported offline)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import laion_clap  # noqa: F401 - puts its clap_module on sys.path
            from clap_module import factory
            from clap_module import model as clap_model
        except ImportError as e:
            raise ClapFilesMissing("the LAION-CLAP adapter needs the `laion-clap` package "
                                   "(a ditto2_nb dependency): pip install laion-clap") from e
        return factory, clap_model

    @classmethod
    def _config(cls, amodel: str, model_cfg: dict | None) -> dict:
        """The CLAP config dict (a copy), checked for what the adapter supports."""
        if model_cfg is None:
            factory, _ = cls._modules()
            if amodel not in factory._MODEL_CONFIGS:
                raise ClapError(f"unknown LAION-CLAP audio model {amodel!r}; known: "
                                f"{sorted(factory._MODEL_CONFIGS)}")
            model_cfg = factory._MODEL_CONFIGS[amodel]
        cfg = json.loads(json.dumps(model_cfg))
        cfg.setdefault("text_cfg", {})["model_type"] = cfg["text_cfg"].get("model_type", "roberta")
        if cfg["text_cfg"]["model_type"] != "roberta":
            raise ClapError("only the roberta text tower of the LAION-CLAP releases is supported")
        if cfg.get("enable_fusion"):
            raise ClapError("fusion checkpoints are not supported; use a non-fusion release such as "
                            "630k-audioset-best.pt or music_audioset_epoch_15_esc_90.14.pt")
        cfg.update(enable_fusion=False, fusion_type="None")
        return cfg

    @classmethod
    def _build(cls, tokenizer_dir: Path, cfg: dict) -> nn.Module:
        _, clap_model = cls._modules()
        from transformers import RobertaConfig, RobertaModel

        conf_file = tokenizer_dir / "config.json"
        rcfg = (RobertaConfig.from_json_file(str(conf_file)) if conf_file.is_file()
                else RobertaConfig(**ROBERTA_BASE))

        class _OfflineRoberta:  # stands in for RobertaModel while CLAP is constructed
            @staticmethod
            def from_pretrained(*_args: Any, **_kw: Any) -> nn.Module:
                return RobertaModel(rcfg)

        original = clap_model.RobertaModel
        clap_model.RobertaModel = _OfflineRoberta
        try:
            model = clap_model.CLAP(**cfg)
        except Exception as e:  # noqa: BLE001 - report the config that failed
            raise ClapError(f"could not build LAION-CLAP from config {cfg.get('audio_cfg')}: {e}") from e
        finally:
            clap_model.RobertaModel = original
        return model

    def _load_weights(self, state: dict[str, torch.Tensor], checkpoint: Path) -> None:
        state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
        own = self.model.state_dict()
        # Buffers that newer transformers releases no longer keep in the state dict.
        state = {k: v for k, v in state.items()
                 if k in own or not k.endswith(("position_ids", "token_type_ids"))}
        try:
            ckpt.load_state(self.model, state, checkpoint, hint=(
                "Check `amodel` (HTSAT-tiny for the 630k releases, HTSAT-base for the music ones) and "
                "that tokenizer_dir/config.json, if any, is roberta-base's."))
        except ckpt.CheckpointError as e:
            raise ClapError(str(e)) from None

    # --- the scorer protocol
    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, L]`` at ``mel_cfg.sample_rate`` -> ``[B, dim]`` unit norm; gradients reach ``wave``.

        Resampled to the model's rate (48 kHz), repeated and zero-padded to the model's clip length
        (LAION-CLAP's "repeatpad"), or cropped from the start when longer.
        """
        w = as_waveform(wave)
        self._follow(w)
        acfg = self.model_cfg["audio_cfg"]
        x = resample(w, self.mel_cfg.sample_rate, acfg["sample_rate"])
        n = acfg["clip_samples"]
        if x.shape[-1] < n:
            x = x.repeat(1, n // x.shape[-1])
            x = F.pad(x, (0, n - x.shape[-1]))
        x = x[:, :n]
        longer = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        feats = self.model.encode_audio({"waveform": x, "longer": longer}, device=x.device)["embedding"]
        return F.normalize(self.model.audio_projection(feats), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``[B, n_mels, frames]`` -> vocoder -> :meth:`embed_wave` (differentiable
        throughout)."""
        mel = _check_mel(mel, self.mel_cfg.n_mels, 1, self.name)
        return self.embed_wave(self.vocoder(mel))

    def embed_text(self, texts: Sequence[str] | str) -> torch.Tensor:
        enc = self.tokenizer(check_texts(texts), padding="max_length", truncation=True, max_length=77,
                             return_tensors="pt")
        device = next(self.parameters()).device
        batch = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}
        return F.normalize(self.model.encode_text(batch, device=device), dim=-1)
