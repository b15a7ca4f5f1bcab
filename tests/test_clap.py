"""Text-audio scorers: the protocol, MiniCLAP (ci training in seconds), the text control, and the
LAION-CLAP adapter built offline from a tiny random configuration saved in the release format."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ditto2_nb import clap
from ditto2_nb.clap.laion import _laion_state_dict
from ditto2_nb.core.checkpoints import CheckpointError
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import generate_clips

CI = get_preset("ci")
CFG = CI.mel  # 64 frames


def tiny(arch: str = "conv1d", seed: int = 0) -> clap.MiniClap:
    torch.manual_seed(seed)
    hidden = 32 if arch == "conv1d" else 0
    cfg = clap.ClapConfig(arch=arch, width=16, depth=2, embed_dim=16, text_hidden=hidden)
    return clap.MiniClap(cfg, CFG).eval()


@pytest.fixture(scope="module")
def mels():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, CFG.n_mels, CFG.frames, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def trained():
    """The ci MiniCLAP, trained on the fly (seconds) into the test cache."""
    return clap.load_miniclap("ci")


# ----------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("arch", ["conv1d", "conv2d"])
def test_shapes_unit_norm_and_score_range(arch, mels):
    m = tiny(arch)
    assert isinstance(m, clap.Scorer)
    a = m.embed_audio(mels)
    t = m.embed_text(["a fast organ melody", "a slow tune", "drums"])
    assert a.shape == t.shape == (3, 16)
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t.norm(dim=1), torch.ones(3), atol=1e-5)
    s = m.score(mels, "a fast organ melody")  # one text for the batch
    assert s.shape == (3,) and (s.abs() <= 1).all()
    assert m.embed_audio(mels[..., :40]).shape == (3, 16)  # any length T >= 16


@pytest.mark.parametrize("arch", ["conv1d", "conv2d"])
def test_embed_audio_is_differentiable(arch, mels):
    m = tiny(arch).requires_grad_(False)
    x = mels.clone().requires_grad_(True)
    m.score(x, ["a loud square-wave melody"] * 3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_inputs_are_clear_errors(mels):
    m = tiny()
    with pytest.raises(ValueError, match="batch dimension"):
        m.embed_audio(mels[0])
    with pytest.raises(ValueError, match=r"\[B, 64, T\]"):
        m.embed_audio(torch.zeros(2, 32, 64))
    with pytest.raises(ValueError, match="NaN"):
        m.embed_audio(torch.full((1, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="at least 16 frames"):
        m.embed_audio(torch.zeros(1, 64, 8))
    with pytest.raises(ValueError, match="empty"):
        m.embed_text([])
    with pytest.raises(ValueError, match="empty string"):
        m.embed_text(["a melody", "  "])
    with pytest.raises(ValueError, match="not a string"):
        m.embed_text(["a melody", 3])
    with pytest.raises(ValueError, match="one text or one per example"):
        m.score(mels, ["a", "b"])


# ----------------------------------------------------------------------------- captions and loss


def test_captions_masks_and_matching():
    _, labels = generate_clips(6, 0, CFG)
    texts, masks = clap.caption_pool(labels, 5, seed=3)
    assert len(texts) == 30 and masks.shape == (6, 5, len(clap.FIELDS) + 1)
    assert (texts, masks.tolist()) == (lambda r: (r[0], r[1].tolist()))(clap.caption_pool(labels, 5, seed=3))
    assert all(t.strip() and "  " not in t for t in texts)
    full, fmask = clap.clap_caption(labels[0], np.random.default_rng(0), "full")
    assert labels[0].key in full and fmask[:6].all() and not fmask[6:].any()  # all but form, bpm
    values = clap.field_values(labels)
    only_tempo = torch.zeros(6, len(clap.FIELDS) + 1, dtype=torch.bool)
    only_tempo[:, clap.FIELDS.index("tempo")] = True
    match = clap.match_matrix(values, only_tempo)
    assert torch.equal(match, values[:, None, 1] == values[None, :, 1])  # same tempo <=> match
    unique = torch.zeros_like(only_tempo)
    unique[:, -1] = True
    assert torch.equal(clap.match_matrix(values, unique), torch.eye(6, dtype=torch.bool))
    for attr in clap.ATTRIBUTES:
        prompts = clap.attribute_prompts(attr)
        assert len(set(prompts.values())) == len(prompts) >= 2


def test_contrastive_loss_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    aligned = clap.contrastive_loss(a, a, torch.tensor(20.0))
    shuffled = clap.contrastive_loss(a, a.roll(1, 0), torch.tensor(20.0))
    assert aligned < 0.1 < shuffled
    every = torch.ones(8, 8, dtype=torch.bool)  # captions that fit every clip: order does not matter
    assert torch.isclose(clap.contrastive_loss(a, a, torch.tensor(20.0), every),
                         clap.contrastive_loss(a, a.roll(1, 0), torch.tensor(20.0), every))


def test_augment_is_deterministic_and_bounded(mels):
    r = clap.clap_recipe("ci")
    a = clap.augment_mel(mels, torch.Generator().manual_seed(1), r, CFG)
    b = clap.augment_mel(mels, torch.Generator().manual_seed(1), r, CFG)
    assert torch.equal(a, b) and a.abs().max() <= 1
    assert a.shape[:2] == mels.shape[:2] and int(0.8 * CFG.frames) <= a.shape[-1] <= CFG.frames


# ----------------------------------------------------------------------------- trained ci model


def test_ci_miniclap_trains_in_seconds_and_beats_chance(trained):
    meta = trained.meta
    assert meta["train_seconds"] < 60
    m = meta["metrics"]  # held-out clips, template-0 captions
    n = m["n"]
    assert m["recall@5"] >= 2 * 5 / n and m["recall@1"] >= 2 / n
    assert meta["reproduce"].startswith("python -m ditto2_nb.cli train-clap --preset ci")


def test_ci_miniclap_retrieves_its_training_clips(trained):
    from ditto2_nb.data import training_data

    ds = training_data(CI)
    caps = [clap.clap_caption(lab, np.random.default_rng(i), "full") for i, lab in enumerate(ds.labels[:48])]
    r = clap.retrieval_metrics(trained, ds.mels[:48], [t for t, _ in caps], clap.field_values(ds.labels[:48]),
                               np.stack([m for _, m in caps]))
    assert r["recall@5"] > 3 * 5 / 48  # chance: 0.10
    assert r["match@1"] >= r["recall@1"]


def test_interrupted_training_resumes_exactly(tmp_path, mels):
    def run(name, steps, work):
        return clap.load_clap_file(clap.train_clap("ci", out=tmp_path / f"{name}.safetensors", steps=steps,
                                                   progress=False, work_dir=tmp_path / work))

    first, resumed, fresh = run("a", 15, "w"), run("b", 30, "w"), run("c", 30, "f")  # b continues a
    assert first.meta["steps"] == 15 and resumed.meta["history"]["step"] == list(range(30))
    assert torch.equal(resumed.embed_audio(mels), fresh.embed_audio(mels))


def test_saved_file_round_trips(trained, tmp_path, mels):
    from ditto2_nb.core.train import export_ema

    path = tmp_path / "m.safetensors"
    export_ema(path, trained, trained.meta)
    again = clap.load_clap_file(path)
    assert torch.allclose(again.embed_audio(mels), trained.embed_audio(mels), atol=2e-3)
    assert not any(p.requires_grad for p in again.parameters())


def test_unknown_preset_without_weights_names_the_command():
    with pytest.raises(CheckpointError, match="train-clap --preset gpu --evaluator"):
        clap.load_miniclap("gpu", evaluator=True)


# ----------------------------------------------------------------------------- the control


def test_clap_control_loss_decreases_and_evaluates(trained):
    evaluator = tiny("conv2d", seed=5)
    c = clap.clap_control(trained, "a loud square-wave melody with drums", CFG, evaluator=evaluator)
    mel = (torch.rand(2, CFG.n_mels, CFG.frames, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    mel.requires_grad_(True)
    opt = torch.optim.Adam([mel], lr=0.05)
    losses = []
    for _ in range(15):
        loss = c.loss(mel)
        assert loss.shape == (2,) and (loss >= 0).all() and (loss <= 2).all()
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(loss.sum().item())
    assert losses[-1] < losses[0] - 0.1
    wave = torch.from_numpy(generate_clips(2, 0, CFG)[0])
    out = c.evaluate(wave)
    assert set(out) == {"self_score", "clap_score"} and all(len(v) == 2 for v in out.values())
    assert all(-1 <= v <= 1 for v in out["clap_score"] + out["self_score"])
    assert "MiniCLAP-eval" not in c.describe() and "evaluated by" in c.describe()


def test_clap_control_errors(trained):
    with pytest.raises(ValueError, match="different scorer"):
        clap.clap_control(trained, "a melody", CFG, evaluator=trained)
    with pytest.raises(ValueError, match="empty"):
        clap.clap_control(trained, [], CFG)
    with pytest.raises(ValueError, match="empty string"):
        clap.clap_control(trained, "", CFG)
    c = clap.clap_control(trained, ["a", "b"], CFG)
    with pytest.raises(ValueError, match="frames"):
        c.loss(torch.zeros(2, CFG.n_mels, CFG.frames + 1))
    with pytest.raises(ValueError, match="one text or one per example"):
        c.loss(torch.zeros(3, CFG.n_mels, CFG.frames))
    assert "self-score only" in c.describe()


def test_clap_control_averages_over_random_views_of_the_mel(trained):
    """augment = K: the loss is the mean over K augmented views (the scorer's training augmentations),
    reproducible from its seed, differentiable; 0 is the plain loss."""
    mel = (torch.rand(2, CFG.n_mels, CFG.frames, generator=torch.Generator().manual_seed(4)) * 2 - 1)
    text = "a loud square-wave melody with drums"
    plain = clap.clap_control(trained, text, CFG)
    assert torch.equal(clap.clap_control(trained, text, CFG, augment=0).loss(mel), plain.loss(mel))
    a, b = (clap.clap_control(trained, text, CFG, augment=4, augment_seed=7) for _ in range(2))
    la = a.loss(mel)
    assert torch.equal(la, b.loss(mel))  # the same seed, the same views
    assert not torch.allclose(la, plain.loss(mel)) and la.shape == (2,)
    assert not torch.equal(a.loss(mel), la)  # each call draws new views
    other = clap.clap_control(trained, text, CFG, augment=4, augment_seed=8).loss(mel)
    assert not torch.equal(other, la)
    x = mel.clone().requires_grad_(True)
    a.loss(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=r"augment=.* must be a whole number of views"):
            clap.clap_control(trained, text, CFG, augment=bad)


def test_ditto2_optimises_text_adherence_through_a_student():
    from ditto2_nb.core.config import MelConfig, NetConfig
    from ditto2_nb.distill import ConsistencyModel
    from ditto2_nb.optimize import OptimConfig, ditto2

    torch.manual_seed(0)
    mel_cfg = MelConfig(n_mels=8, frames=16)
    student = ConsistencyModel(NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2))
    student.eval().requires_grad_(False)
    scorer = clap.MiniClap(clap.ClapConfig(n_mels=8, width=16, depth=2, embed_dim=16, text_hidden=32),
                           mel_cfg).eval().requires_grad_(False)
    c = clap.clap_control(scorer, ["a fast organ melody", "a slow sine tune"], mel_cfg)
    z0 = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(1))
    res = ditto2(student, c.loss, z0, None, cfg=OptimConfig(iterations=12, lr=0.3, snapshot_every=0))
    assert res.trace.loss[-1] < res.trace.loss[0] and res.x0.shape == z0.shape


def test_griffin_lim_has_finite_gradients(mels):
    """The vocoder floors the linear power before its square root: gradients stay finite where
    the mel is silent (the text control backpropagates through it for waveform scorers)."""
    from ditto2_nb.audio import GriffinLimVocoder

    x = mels[:1].clone().requires_grad_(True)
    GriffinLimVocoder(CFG)(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- shipped weights


@pytest.mark.parametrize("evaluator", [False, True])
def test_shipped_laptop_scorers_load_and_beat_chance(evaluator):
    from ditto2_nb.core.assets import shipped_path

    kind = "miniclap_eval" if evaluator else "miniclap"
    path = shipped_path(kind, "laptop")
    if not path.exists():
        pytest.skip(f"{path.name} is not shipped")
    m = clap.load_miniclap("laptop", evaluator=evaluator)
    assert path.stat().st_size < 5e6 and path.with_suffix(".md").exists()
    assert m.cfg.arch == ("conv2d" if evaluator else "conv1d")
    metrics = m.meta["metrics"]
    assert metrics["recall@5"] > 5 * 5 / metrics["n"]
    assert metrics["zero_shot"]["instrument"] > 0.5 and metrics["zero_shot"]["drums"] > 0.7
    assert m.embed_audio(torch.zeros(1, 64, 128)).shape == (1, m.cfg.embed_dim)


# ----------------------------------------------------------------------------- LAION-CLAP adapter

ROBERTA_TINY = {"vocab_size": 320, "hidden_size": 768, "num_hidden_layers": 1, "num_attention_heads": 12,
                "intermediate_size": 64, "max_position_embeddings": 80, "type_vocab_size": 1,
                "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "model_type": "roberta"}
# The release architecture (HTSAT-tiny audio tower, 10 s at 48 kHz) with a one-layer text tower: its
# width is roberta-base's (the CLAP text projection expects 768), its depth and vocabulary are tiny.


@pytest.fixture(scope="module")
def laion_files(tmp_path_factory):
    """A tokenizer folder and a randomly initialised tiny CLAP saved like the releases."""
    pytest.importorskip("laion_clap")
    import laion_clap  # noqa: F401
    from clap_module import factory
    from clap_module import model as clap_model
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaModel

    root = tmp_path_factory.mktemp("laion")
    tok_dir = root / "roberta-tiny"
    tok_dir.mkdir()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["a fast loud organ melody with drums", "a slow soft sine tune in A minor"],
                            vocab_size=300, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tok_dir))
    (tok_dir / "config.json").write_text(json.dumps(ROBERTA_TINY))
    from transformers import RobertaConfig

    class Offline:  # the release code would download roberta-base here
        @staticmethod
        def from_pretrained(*_a, **_k):
            return RobertaModel(RobertaConfig(**ROBERTA_TINY))

    torch.manual_seed(0)
    original = clap_model.RobertaModel
    clap_model.RobertaModel = Offline
    try:
        cfg = json.loads(json.dumps(factory._MODEL_CONFIGS["HTSAT-tiny"]))
        cfg["text_cfg"]["model_type"] = "roberta"
        ref = clap_model.CLAP(**cfg, enable_fusion=False, fusion_type="None").eval()
    finally:
        clap_model.RobertaModel = original
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state.setdefault("module.text_branch.embeddings.position_ids", torch.arange(80)[None])  # older releases
    ckpt_path = root / "tiny-clap.pt"
    torch.save({"epoch": 1, "name": "tiny", "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}}, ckpt_path)
    return ckpt_path, tok_dir, ref


@pytest.fixture(scope="module")
def laion(laion_files):
    ckpt_path, tok_dir, _ = laion_files
    return clap.LaionClap(ckpt_path, tok_dir, mel_cfg=CFG)  # amodel="HTSAT-tiny", the default


def test_laion_adapter_matches_the_package_and_passes_gradients(laion, laion_files):
    from laion_clap.training.data import get_audio_features  # the package's own preprocessing

    _, _, ref = laion_files
    assert isinstance(laion, clap.Scorer)
    texts = ["a fast loud organ melody", "a slow soft sine tune"]
    with torch.no_grad():
        ref_text = ref.get_text_embedding(dict(laion.tokenizer(texts, padding="max_length", truncation=True,
                                                                max_length=77, return_tensors="pt")))
    assert torch.allclose(laion.embed_text(texts), ref_text, atol=1e-5)

    wave = torch.from_numpy(generate_clips(1, 0, CFG)[0]).requires_grad_(True)
    a = laion.embed_wave(wave)
    assert a.shape == (1, 512) and torch.allclose(a.norm(dim=1), torch.ones(1), atol=1e-5)
    from ditto2_nb.audio import resample

    with torch.no_grad():
        x48 = resample(wave.detach(), CFG.sample_rate, 48000)
        feats = [get_audio_features({}, w, 480000, "rand_trunc", "repeatpad", laion.model_cfg["audio_cfg"])
                 for w in x48]
        ref_audio = ref.get_audio_embedding(feats)
    assert torch.allclose(a.detach(), ref_audio, atol=1e-4)
    (a @ laion.embed_text(texts[:1]).T).sum().backward()
    assert wave.grad is not None and torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0


def test_laion_scores_mels_through_the_vocoder(laion, mels):
    x = mels[:1].clone().requires_grad_(True)
    s = laion.score(x, "a fast melody")
    assert s.shape == (1,) and -1 <= s.item() <= 1
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_laion_missing_files_say_what_is_needed(tmp_path, laion_files):
    ckpt_path, tok_dir, _ = laion_files
    with pytest.raises(clap.ClapFilesMissing, match="630k-audioset-best.pt") as e:
        clap.LaionClap(tmp_path / "nope.pt", tok_dir)
    assert isinstance(e.value, FileNotFoundError) and "roberta-base" in str(e.value)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        clap.LaionClap(ckpt_path, tmp_path)


def test_laion_refuses_files_that_need_unpickling_and_reads_safetensors(tmp_path, laion_files):
    from safetensors.torch import save_file

    ckpt_path, tok_dir, ref = laion_files
    state = {f"module.{k}": v.contiguous() for k, v in list(ref.state_dict().items())[:4]}
    bad = tmp_path / "protocol4.pt"
    torch.save({"state_dict": state}, bad, pickle_protocol=4)  # the safe loader cannot read protocol 4
    with pytest.raises(clap.ClapError, match="safetensors"):
        clap.LaionClap(bad, tok_dir)
    good = tmp_path / "tiny.safetensors"
    save_file(state, str(good))
    read = _laion_state_dict(good)
    assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)
    np_scalars = tmp_path / "numpy_scalar.pt"  # metrics stored as numpy scalars are allowed
    torch.save({"state_dict": state, "best": np.float64(0.5)}, np_scalars)
    assert _laion_state_dict(np_scalars).keys() == state.keys()


def test_laion_rejects_fusion_and_unknown_models(laion_files):
    ckpt_path, tok_dir, _ = laion_files
    with pytest.raises(clap.ClapError, match="unknown LAION-CLAP audio model"):
        clap.LaionClap(ckpt_path, tok_dir, amodel="nope")
    with pytest.raises(clap.ClapError, match="fusion"):
        clap.LaionClap(ckpt_path, tok_dir, model_cfg={"enable_fusion": True, "text_cfg": {}})



# ----------------------------------------------------------------------------- rendered clips' captions


def _rendered(instrument: str = "Violin", genre: str = "fiddle tune", **kw):
    from ditto2_nb.data.labels import ClipLabels

    fields = dict(source="x", sample_rate=16000, hop_length=256, n_frames=64, genre=genre, bpm=120.0,
                  tempo="fast", tonic=2, mode="major", instrument=instrument, has_drums=False,
                  dynamics="crescendo")
    return ClipLabels(**{**fields, **kw})


def test_rendered_clips_are_captioned_by_their_instrument_family():
    from ditto2_nb.data import caption

    lab = _rendered()
    assert caption(lab) == "a fast, building string fiddle tune in D major without drums"
    assert all("string" in caption(lab, t) and "D major" in caption(lab, t) for t in range(6))
    # a recording (no tags) keeps the short caption from what it has
    assert "played on" in caption(_rendered(tempo=None, dynamics=None, genre="recording"))
    texts, masks = clap.caption_pool([lab, _rendered("Trumpet", "folk song")], 40, seed=0)
    strings, brass = texts[:40], texts[40:]
    # the program's own name is one of its instrument words, beside the family's
    assert any("violin" in t for t in strings) and any("trumpet" in t for t in brass)
    assert not any(w in t for t in strings for w in ("trumpet", "brass", "horn"))
    values = clap.field_values([lab, _rendered("Trumpet")])
    fam = clap.FIELDS.index("instrument")
    every = clap.scorer_classes("instrument", "mixed")  # the instrument tag field's classes
    assert values[:, fam].tolist() == [every.index("strings"), every.index("brass")]
    assert values[0, -1] == -1  # no structure label: matched by no caption
    unseen = clap.clap_caption(lab, np.random.default_rng(0), "unseen")[0]
    assert "erhu-like" in unseen and "synthesiser" not in unseen
    assert clap.judge_caption(lab)[0] == ("timbre: strings; tempo: fast; mode: d major; percussion: no; "
                                          "dynamics: crescendo")
    with pytest.raises(ValueError, match=r"clap_caption needs labels with every tag.*tempo None"):
        clap.clap_caption(_rendered(tempo=None), np.random.default_rng(0))


def test_a_scorer_asks_zero_shot_about_the_instruments_its_data_has():
    from ditto2_nb.data.theory import INSTRUMENT_FAMILIES, INSTRUMENTS

    assert clap.scorer_classes("instrument", "repertoire") == INSTRUMENT_FAMILIES
    assert clap.scorer_classes("instrument", "mixed") == INSTRUMENTS + INSTRUMENT_FAMILIES
    assert clap.scorer_classes("tempo", "repertoire") == clap.scorer_classes("tempo")
    with pytest.raises(ValueError, match="data must be one of"):
        clap.scorer_classes("instrument", "bach")
    cfg = clap.ClapConfig(width=16, depth=2, embed_dim=16, text_hidden=32, instruments="repertoire")
    assert tuple(clap.MiniClap(cfg, CFG).class_prompts("instrument")) == INSTRUMENT_FAMILIES
    assert tuple(tiny().class_prompts("instrument")) == INSTRUMENTS  # files without the field
    with pytest.raises(ValueError, match="instruments must be one of"):
        clap.ClapConfig(instruments="kazoo")
    assert clap.clap_recipe("laptop4s").net.instruments == "repertoire"
    assert clap.clap_recipe(dataclasses.replace(CI, data=dataclasses.replace(CI.data, source="procedural"))
                            ).net.instruments == "procedural"
