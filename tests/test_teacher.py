"""The shipped teacher and students load in one line; bad files and bad tags give clear errors."""

import subprocess
import sys

import pytest
import torch

from ditto2_nb.core import checkpoints as ckpt
from ditto2_nb.core.assets import shipped_path
from ditto2_nb.data import TAG_FIELDS, encode_tags, tag_vocab
from ditto2_nb.diffusion import generate, load_denoiser, load_teacher


@pytest.fixture(scope="module")
def teacher():
    return load_teacher()  # the shipped laptop teacher


def test_shipped_teacher_loads_in_one_line(teacher):
    assert shipped_path("teacher").exists()
    # trained before the GM families were appended to the instrument tag: the six procedural timbres
    assert teacher.cfg.conditional and teacher.cfg.tag_vocab == (7, *tag_vocab()[1:])
    assert teacher.meta["kind"] == "teacher" and teacher.meta["steps"] >= 1000
    assert not any(p.requires_grad for p in teacher.parameters())


def test_shipped_teacher_samples_music_not_noise(teacher):
    tags = encode_tags({"instrument": "square", "drums": "no drums", "dynamics": "loud"})[None]
    x = generate(teacher, 2, 128, steps=8, tags=tags.expand(2, -1), w=2.0, seed=3)
    assert x.shape == (2, 64, 128) and torch.isfinite(x).all()
    # real clips are mostly quiet background with bright harmonic lines: the sample must be too,
    # unlike noise (whose frames are all alike and symmetric around its mean)
    assert -0.9 < x.mean().item() < -0.1
    assert (x > 0).float().mean().item() < 0.4


def test_loud_tag_gives_louder_clips_than_soft(teacher):
    def level(dyn):
        tags = encode_tags({"dynamics": dyn})[None].expand(4, -1)
        return generate(teacher, 4, 128, steps=8, tags=tags, w=2.0, seed=11).mean().item()

    assert level("loud") > level("soft") + 0.05


def test_tag_errors_are_clear(teacher):
    with pytest.raises(ValueError, match="unknown tag field"):
        encode_tags({"genre": "jazz"})
    with pytest.raises(ValueError, match="is not one of"):
        encode_tags({"instrument": "kazoo"})
    with pytest.raises(ValueError, match=r"tags must be \[B, 5\]"):
        teacher(torch.zeros(1, 64, 128), 1.0, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        teacher(torch.zeros(1, 64, 128), 1.0, torch.full((1, len(TAG_FIELDS)), 99))


def test_bad_model_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        load_denoiser(junk)
    other = ckpt.save(tmp_path / "other.safetensors", {"w": torch.ones(2)}, {"hello": "world"})
    with pytest.raises(ckpt.CheckpointError, match="not a ditto2_nb model"):
        load_denoiser(other)


def test_cli_rejects_bad_arguments():
    res = subprocess.run([sys.executable, "-m", "ditto2_nb.cli", "train-teacher", "--steps", "-3"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "--steps=-3 is out of range; allowed: >= 1" in res.stderr
    res = subprocess.run([sys.executable, "-m", "ditto2_nb.cli", "train-teacher", "--preset", "x"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "invalid choice" in res.stderr


def test_missing_laptop_model_is_an_error_not_a_silent_training(tmp_path, monkeypatch):
    from ditto2_nb import distill
    from ditto2_nb.core import assets
    from ditto2_nb.diffusion import teacher

    monkeypatch.setattr(assets, "ASSETS", tmp_path / "no_assets")
    monkeypatch.setenv("DITTO2_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ckpt.CheckpointError, match="train-teacher --preset laptop"):
        teacher.load_teacher("laptop")
    with pytest.raises(ckpt.CheckpointError, match="distill --kind ctm --preset laptop"):
        distill.load_distilled("ctm", "laptop")


def test_unconditional_from_conditional_is_the_null_tag_mode():
    """Dropping the tag tables and folding their "no tag" rows into the time embedding's bias
    gives a tag-free network equal to the conditional one with every tag dropped."""
    from ditto2_nb.core.config import get_preset
    from ditto2_nb.diffusion import Denoiser, teacher_net_config, unconditional_from

    torch.manual_seed(0)
    cond = Denoiser(teacher_net_config(get_preset("ci"), conditional=True)).eval()
    with torch.no_grad():  # random everywhere: zero-initialised layers would hide the tags
        for p in cond.parameters():
            p.normal_(0.0, 0.1)
    uncond = unconditional_from(cond).eval()
    assert not uncond.cfg.conditional and not hasattr(uncond.net.tag_emb, "0")
    x, sigma = torch.randn(2, cond.cfg.n_mels, 64), torch.tensor([0.5, 8.0])
    with torch.no_grad():
        torch.testing.assert_close(uncond(x, sigma), cond(x, sigma, None), atol=1e-5, rtol=1e-5)
        assert (cond(x, sigma, torch.ones(2, len(cond.cfg.tag_vocab), dtype=torch.long))
                - uncond(x, sigma)).abs().max() > 1e-3


def test_the_attribute_classifier_trains_inside_an_evaluation():
    """train_attribute_classifier fits under torch.no_grad (evaluations call it there) and gives
    the same classifier as outside it."""
    from ditto2_nb.core import metrics
    from ditto2_nb.data import tag_vocab

    g = torch.Generator().manual_seed(0)
    mels = torch.rand(32, 8, 16, generator=g) * 2 - 1
    tags = torch.stack([torch.randint(1, n, (32,), generator=g) for n in tag_vocab()], 1)
    with torch.no_grad():
        inside = metrics.train_attribute_classifier(mels, tags, tag_vocab(), steps=5)
    outside = metrics.train_attribute_classifier(mels, tags, tag_vocab(), steps=5)
    for a, b in zip(inside.state_dict().values(), outside.state_dict().values()):
        assert torch.equal(a, b)
