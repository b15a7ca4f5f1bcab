"""A model trained under a working preset name becomes a shipped preset's file, weights untouched."""

from __future__ import annotations

import pytest
import torch

from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.assets import move_to_preset
from ditto2_nb.core.config import get_preset, to_dict


def _file(tmp_path, preset="ci", mel_of="laptop4s"):
    meta = {"kind": "teacher", "preset": preset, "mel": to_dict(get_preset(mel_of).mel), "steps": 3,
            "reproduce": f"python -m ditto2_nb.cli train-teacher --preset {preset} --steps 12000"}
    w = {"w": torch.arange(4, dtype=torch.float16)}
    return ckpt.save(tmp_path / "a.safetensors", w, meta), w


def test_the_weights_stay_and_the_preset_is_renamed(tmp_path):
    src, w = _file(tmp_path)
    out = move_to_preset(src, "laptop4s", tmp_path / "b.safetensors")
    tensors, meta = ckpt.read(out)
    assert torch.equal(tensors["w"], w["w"]) and tensors["w"].dtype == torch.float16
    assert meta["preset"] == "laptop4s" and meta["moved_from_preset"] == "ci"
    assert meta["reproduce"] == "python -m ditto2_nb.cli train-teacher --preset laptop4s --steps 12000"
    assert "preset `laptop4s`" in out.with_suffix(".md").read_text()


def test_a_preset_with_another_mel_config_is_refused(tmp_path):
    src, _ = _file(tmp_path)
    with pytest.raises(ValueError, match="mel config .* not preset 'gpu'"):
        move_to_preset(src, "gpu", tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match="unknown preset 'laptop9'"):
        move_to_preset(src, "laptop9", tmp_path / "b.safetensors")


def test_sidecars_measured_on_the_weights_come_along(tmp_path):
    """A decode or vocoder verdict measured on these weights is carried to the new file (re-tied to
    its SHA-256); one measured on other weights is left behind."""
    import json

    src, _ = _file(tmp_path)
    src.with_suffix(".decode.json").write_text(json.dumps({"weights_sha256": ckpt.sha256(src),
                                                           "decode": {"sigma_mid": 0.05}}))
    src.with_suffix(".choice.json").write_text(json.dumps({"weights_sha256": "0" * 64, "default": "neural"}))
    out = move_to_preset(src, "laptop4s", tmp_path / "b.safetensors")
    carried = json.loads(out.with_suffix(".decode.json").read_text())
    assert carried == {"weights_sha256": ckpt.sha256(out), "decode": {"sigma_mid": 0.05},
                       "carried_from": "a.safetensors"}
    assert not out.with_suffix(".choice.json").exists()  # stale: measured on other weights
