"""The claims protocol's pieces: an FD embedder that the controls do not move, a text evaluator that
shares nothing with the loss scorer, and the claims file's schema (benchmarks/claims.py on ci)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ditto2_nb import clap, data
from ditto2_nb.clap import minilm
from ditto2_nb.core import metrics
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import evaluator_data, heldout_data, tag_vocab, tags_tensor, training_data

CI = get_preset("ci")
ROOT = Path(__file__).resolve().parent.parent


def _claims_module():
    spec = importlib.util.spec_from_file_location("claims", ROOT / "benchmarks" / "claims.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["claims"] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- the FD embedder


@pytest.fixture(scope="module")
def embedder():
    train = training_data(CI)
    return metrics.train_fd_embedder(train.mels, tags_tensor(train.labels)[:, :4], tag_vocab()[:4],
                                     steps=200, db_range=CI.mel.db_max - CI.mel.db_min)


def test_fd_embedder_is_deterministic_and_named(embedder):
    train = training_data(CI)
    again = metrics.train_fd_embedder(train.mels, tags_tensor(train.labels)[:, :4], tag_vocab()[:4],
                                      steps=200, db_range=CI.mel.db_max - CI.mel.db_min)
    x = heldout_data(CI).mels
    assert torch.equal(metrics.embed(embedder, x), metrics.embed(again, x))
    assert embedder.name == "attr-clf" and metrics.embed(embedder, x).shape == (len(x), 32)


def test_fd_embedder_barely_moves_with_level_unlike_mel_stats(embedder):
    """A 6 dB gain (what an intensity control does) moves mel-stats' FD by a large fraction of the
    data-to-noise distance; the classifier embedding by a small one."""
    held = heldout_data(CI).mels
    louder = (held + 6 * 2 / (CI.mel.db_max - CI.mel.db_min)).clamp(-1, 1)
    noise = metrics.trivial_baseline(held, len(held), seed=1)

    def ratio(emb):
        e = metrics.embed(emb, held)
        return (metrics.frechet_distance(metrics.embed(emb, louder), e)
                / metrics.frechet_distance(metrics.embed(emb, noise), e))

    attr, stats = ratio(embedder), ratio("mel-stats")
    assert attr < 0.5 * stats, (attr, stats)


def test_fd_report_takes_an_embedder_module(embedder):
    held, train = heldout_data(CI), training_data(CI)
    rep = metrics.fd_report(train.mels[:16], held.mels, train.mels[16:32], embedder)
    assert rep.embedder == "attr-clf" and rep.floor >= 0 and rep.ceiling > rep.floor


# ----------------------------------------------------------------------------- the text evaluator


@pytest.fixture(scope="module")
def scorers():
    return clap.load_miniclap("ci"), clap.load_miniclap("ci", evaluator=True)


def test_evaluator_shares_no_parameters_or_text_encoder(scorers, monkeypatch):
    scorer, evaluator = scorers
    assert evaluator.cfg.text == "words" and scorer.cfg.text == "minilm"
    assert evaluator.text_encoder_name != scorer.text_encoder_name
    assert "MiniLM" not in evaluator.text_encoder_name
    ptrs = {p.data_ptr() for p in scorer.parameters()}
    assert not ptrs & {p.data_ptr() for p in evaluator.parameters()}
    assert not any(n.startswith("text_proj") for n, _ in evaluator.named_parameters())

    def no_minilm():
        raise AssertionError("the evaluator must not touch MiniLM")

    monkeypatch.setattr(minilm, "_minilm", no_minilm)
    minilm._TEXT_CACHE.clear()
    e = evaluator.embed_text(["timbre: organ; tempo: fast", "square | slow | drums"])
    assert e.shape == (2, evaluator.cfg.embed_dim)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_evaluator_caption_pool_and_clips_are_disjoint_from_the_loss_scorers():
    train, ev = training_data(CI), evaluator_data(CI)
    mini, _ = clap.caption_pool(train.labels, 10)
    own, masks = clap.judge_caption_pool(ev.labels, 10)
    assert not set(mini) & set(own)
    assert not set(mini) & set(clap.judge_caption_pool(train.labels, 10)[0])  # wording, not just clips
    assert masks.shape == (len(ev), 10, len(clap.FIELDS) + 1) and masks[..., :5].any(-1).all()
    # clips: their own seed range, and no mel equal to a training or held-out one
    assert clap.ds_seed(CI, True) - clap.ds_seed(CI, False) == data.EVALUATOR_SEED_OFFSET
    others = torch.cat([train.mels, heldout_data(CI).mels]).flatten(1)
    dist = torch.cdist(ev.mels.flatten(1), others)
    assert dist.min() > 1.0


def test_judge_caption_full_form_names_every_label():
    lab = heldout_data(CI).labels[0]
    text, mask = clap.judge_caption(lab)
    assert lab.instrument in text and lab.tempo in text and lab.dynamics in text
    assert lab.key.lower() in text and mask[:6].all()
    for attr in clap.ATTRIBUTES:
        p = clap.judge_class_prompts(attr)
        assert len(set(p.values())) == len(p) >= 2


def test_words_encoder_skips_unknown_tokens_and_rejects_none(scorers):
    _, evaluator = scorers
    a = evaluator.embed_text(["tempo: fast"])
    b = evaluator.embed_text(["tempo: fast zzqx"])  # an unknown word adds nothing
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="vocabulary"):
        evaluator.embed_text(["qqqq"])


def test_evaluator_file_round_trips_with_its_vocabulary(scorers):
    _, evaluator = scorers
    reloaded = clap.load_clap_file(_evaluator_path())
    t = ["timbre: sine; dynamics: loud"]
    assert torch.allclose(reloaded.embed_text(t), evaluator.embed_text(t))


def _evaluator_path() -> Path:
    from ditto2_nb.core.assets import cache_dir

    return cache_dir() / "miniclap_eval_ci.safetensors"


def test_attribute_judge_reads_real_clips_and_checks_lengths():
    judge = clap.attribute_judge("ci")
    held = heldout_data(CI)
    agree = judge.agreement(held.mels, held.labels)
    assert set(agree) == set(clap.ATTRIBUTES) and all(len(v) == len(held) for v in agree.values())
    assert np.mean(agree["drums"]) > 0.6  # drums are easy; the ci judge is small
    with pytest.raises(ValueError, match="one label per clip"):
        judge.agreement(held.mels[:2], held.labels[:3])


# ----------------------------------------------------------------------------- the claims file


@pytest.mark.slow
def test_claims_benchmark_writes_the_protocol_schema(tmp_path):
    claims = _claims_module()
    out = tmp_path / "claims.json"
    claims.main(["--preset", "ci", "--targets", "2", "--batch", "2", "--scale", "0.02",
                 "--run-dir", str(tmp_path / "run"), "--out", str(out)])
    r = json.loads(out.read_text())
    pr = r["protocol"]
    assert (pr["ditto_steps"], pr["cfg_w"], pr["checkpointing"]) == (20, 2.0, False)
    assert pr["targets_per_control"] == 2 and pr["fd_embedder"] != "mel-stats"
    for name in claims.CONTROLS:
        c = r["controls"][name]
        assert set(c["methods"]) == set(claims.METHODS) and c["better"] in ("lower", "higher")
        for key, m in c["methods"].items():
            assert m["n"] == 2 and m["seconds_per_clip"] > 0 and len(m["iqr"]) == 2
            assert ("surrogate_mean" in m) == key.startswith("ditto2")
    assert r["fd"]["embedder"] == "attr-clf" and set(r["fd"]["methods"]) == set(claims.METHODS)
    assert r["fd"]["n"] == 6 and r["fd"]["ceiling"] > r["fd"]["floor"]
    t = r["text"]
    assert t["evaluator_text_encoder"] != t["loss_text_encoder"]
    assert set(t["methods"]) == set(claims.TEXT_METHODS) | {"real_clips"}
    assert len(r["claims"]) == 5 and all(isinstance(c["holds"], bool) for c in r["claims"])
    # resumable: a second run reads every chunk back and gives the same numbers
    claims.main(["--preset", "ci", "--targets", "2", "--batch", "2", "--scale", "0.02",
                 "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["controls"] == r["controls"] and again["claims"] == r["claims"]


def test_targets_noise_and_reference_are_disjoint_and_batch_independent():
    claims = _claims_module()
    ranges = [set(claims.clip_range(c, 16)) for c in claims.CONTROLS]
    assert not (ranges[0] & ranges[1]) and not (ranges[1] & ranges[2])
    assert max(max(r) for r in ranges) < 3 * 16  # the text prompts use 48..63, the FD reference 64..
    cfg = CI.mel
    whole = claims.initial_noise("melody", list(claims.clip_range("melody", 4)), 4, cfg)
    part = claims.initial_noise("melody", list(claims.clip_range("melody", 4))[2:], 4, cfg)
    assert torch.equal(whole[2:], part)
    other = claims.initial_noise("structure", list(claims.clip_range("structure", 4)), 4, cfg)
    assert not torch.equal(whole, other)


def test_paired_difference_counts_and_bounds():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    d = report.paired_difference([0.0, 0.2, 1.0, 0.4], [0.6, 0.2, 0.8, 0.4])
    assert d["mean"] == pytest.approx(0.1) and (d["better"], d["worse"], d["equal"]) == (1, 1, 2)
    assert -0.2 <= d["ci"][0] <= d["mean"] <= d["ci"][1] <= 0.6  # within the smallest and largest difference
    same = report.paired_difference([0.3] * 5, [0.3] * 5)
    assert same["mean"] == 0 and same["ci"] == [0, 0] and same["equal"] == 5


def test_ditto2_rows_scale_the_protocols_iterations_and_cap_r():
    """A DITTO-2 row's changes apply to the protocol's OptimConfig: the headline runs 0.4x the
    iterations with R = 8 and lr 0.5 (at least one iteration, R never above them); the others keep
    the protocol's iterations and lr."""
    from ditto2_nb.optimize import OptimConfig

    claims = _claims_module()
    for iters, (fast_iters, fast_r) in ((70, (28, 8)), (150, (60, 8)), (3, (1, 1))):
        protocol = OptimConfig(iterations=iters, lr=0.05, snapshot_every=0)
        fast = claims.ditto2_config(claims.HEADLINE, protocol)
        assert (fast.iterations, fast.refine_last, fast.lr) == (fast_iters, fast_r, 0.5)
        assert fast.project and fast.trust_radius == 0.25
        trust = claims.ditto2_config("ditto2_ctm_trust", protocol)
        assert (trust.iterations, trust.refine_last, trust.lr) == (iters, min(20, iters), 0.05)
        assert claims.ditto2_config("ditto2_ctm", protocol) == protocol
    assert claims.config_name(0.4, 8, 0.5) == "x0.4 R8 lr0.5"
    assert claims.config_name(1.0, 20, 0.05) == "x1 R20 lr0.05"
