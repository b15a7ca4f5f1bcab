"""The conditioning tags' vocabulary: the GM instrument families of rendered clips are appended
after the procedural timbres (indices 1-6 unchanged), every melody program drawn has a family, the
rendered clips are tagged with it, and a model trained before the families refuses them clearly."""

import numpy as np
import pytest
import torch

from ditto2_nb import clap
from ditto2_nb.core import validate as check
from ditto2_nb.core.config import MelConfig, NetConfig
from ditto2_nb.data import (
    GM_FAMILY,
    INSTRUMENT_FAMILIES,
    INSTRUMENTS,
    TAG_FIELDS,
    ClipLabels,
    compose_clip,
    encode_tags,
    model_tag_fields,
    tag_values,
    tag_vocab,
    tags_tensor,
)
from ditto2_nb.data.arranging import TAG_TIMBRE, _melody_program, gm_name
from ditto2_nb.data.captions import INSTRUMENT_WORDS, UNSEEN_INST
from ditto2_nb.diffusion.networks import Denoiser

PROCEDURAL = ("sine", "square", "sawtooth", "triangle", "organ", "pluck")  # as shipped (7 classes)
SHIPPED_VOCAB = (7, 4, 3, 3, 7)  # the shipped models' tag_vocab (their metadata)


def test_every_drawable_melody_program_has_a_family():
    assert set(GM_FAMILY) == set(TAG_TIMBRE)  # every program the arranging draws, and no other
    assert set(GM_FAMILY.values()) == set(INSTRUMENT_FAMILIES) | {"organ"}  # every family is used
    assert all(f in TAG_FIELDS["instrument"] for f in GM_FAMILY.values())
    spot = {0: "piano", 12: "mallets", 46: "guitar & harp", 40: "strings", 110: "strings", 60: "brass",
            71: "reeds", 73: "flutes", 79: "flutes", 81: "synth lead", 19: "organ", 22: "organ"}
    assert {p: GM_FAMILY[p] for p in spot} == spot


def test_the_vocabulary_only_grows_at_the_end():
    inst = TAG_FIELDS["instrument"]
    assert INSTRUMENTS == PROCEDURAL and inst[:6] == PROCEDURAL and inst[6:] == INSTRUMENT_FAMILIES
    assert len(set(inst)) == len(inst) == 14 and "organ" not in INSTRUMENT_FAMILIES
    assert tag_vocab() == (15, 4, 3, 3, 7)
    for k, name in enumerate(PROCEDURAL, 1):  # the indices the shipped models were trained with
        assert encode_tags({"instrument": name}).tolist() == [k, 0, 0, 0, 0]
    assert encode_tags({"instrument": "piano"})[0] == 7 and encode_tags({"instrument": "synth lead"})[0] == 14
    assert model_tag_fields(SHIPPED_VOCAB)["instrument"] == PROCEDURAL
    assert model_tag_fields(tag_vocab()) == TAG_FIELDS and model_tag_fields(()) == {}


def test_procedural_data_still_draws_the_six_timbres():
    labels = [compose_clip(seed, MelConfig()) for seed in range(200)]
    assert {lab.instrument for lab in labels} == set(PROCEDURAL)
    assert tags_tensor(labels)[:, 0].max() <= 6
    # the rendered repertoire's melody program: the same draw (timbre, then program) as before
    rng = np.random.default_rng(1234)
    assert [_melody_program(rng) for _ in range(16)] == [105, 11, 80, 73, 73, 60, 16, 19, 22, 6, 60,
                                                          80, 46, 79, 79, 25]


@pytest.mark.parametrize("program", sorted(GM_FAMILY))
def test_a_rendered_clip_is_tagged_with_its_gm_family(program):
    lab = ClipLabels(source="oneills1850/0001-0050#2", sample_rate=22050, hop_length=256, n_frames=8,
                     genre="folk tune", tempo="fast", mode="minor", dynamics="swell",
                     instrument=gm_name(program), has_drums=True)
    want = {"instrument": GM_FAMILY[program], "tempo": "fast", "mode": "minor", "drums": "drums",
            "dynamics": "swell"}
    assert tag_values(lab) == want
    assert tags_tensor([lab])[0, 0] == TAG_FIELDS["instrument"].index(GM_FAMILY[program]) + 1


def _old_model():
    cfg = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2,
                    tag_vocab=SHIPPED_VOCAB)
    return Denoiser(cfg).eval()


def test_a_model_trained_before_the_families_refuses_them_clearly():
    model = _old_model()
    ok = encode_tags({"instrument": "pluck", "dynamics": "loud"})
    assert check.tags("tags", ok, 2, model.cfg).shape == (2, 5)
    piano = encode_tags({"instrument": "piano"})
    with pytest.raises(ValueError) as e:
        check.tags("tags", piano, 2, model.cfg)
    msg = str(e.value)
    assert "instrument index 7 ('piano')" in msg and "(7, 4, 3, 3, 7)" in msg
    assert str(PROCEDURAL) in msg and "trained before" in msg and "'synth lead'" in msg
    with pytest.raises(ValueError, match=r"out of range: .*instrument index 7 \('piano'\)"):
        model(torch.zeros(1, 8, 16), torch.tensor([1.0]), piano[None])
    with pytest.raises(ValueError, match=r"instrument index 99 is not in this model's vocabulary"):
        check.tags("tags", torch.tensor([99, 0, 0, 0, 0]), 1, model.cfg)
    with pytest.raises(ValueError, match=r"tempo index 4 is not in"):  # not about the families
        check.tags("tags", torch.tensor([0, 4, 0, 0, 0]), 1, model.cfg)


def test_a_current_model_takes_every_class():
    cfg = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=tag_vocab())
    model = Denoiser(cfg).eval()
    tags = torch.stack([encode_tags({"instrument": c}) for c in TAG_FIELDS["instrument"]])
    n = len(tags)
    with torch.no_grad():
        out = model(torch.zeros(n, 8, 16), torch.ones(n), check.tags("t", tags, n, cfg))
    assert out.shape == (14, 8, 16) and torch.isfinite(out).all()


def test_every_instrument_class_has_words_and_prompts():
    inst = TAG_FIELDS["instrument"]
    assert set(INSTRUMENT_WORDS) == set(UNSEEN_INST) == set(inst)
    procedural_words = {w for c in PROCEDURAL for w in INSTRUMENT_WORDS[c]}
    for fam in INSTRUMENT_FAMILIES:
        assert len(INSTRUMENT_WORDS[fam]) >= 3 and not procedural_words & set(INSTRUMENT_WORDS[fam])
    for prompts in (clap.attribute_prompts, clap.judge_class_prompts):
        every = prompts("instrument", inst)
        assert list(every) == list(inst) and len(set(every.values())) == len(inst)
        # by default: the classes the scorers learn (procedural captions), so zero-shot and its
        # chance level stay those of the six timbres
        assert tuple(prompts("instrument")) == PROCEDURAL == clap.scorer_classes("instrument")
        for attr in clap.ATTRIBUTES:
            assert list(prompts(attr, TAG_FIELDS[attr])) == list(TAG_FIELDS[attr])
    assert clap.attribute_prompts("instrument", inst)["guitar & harp"] == "a guitar or harp melody"
    assert clap.judge_class_prompts("instrument", inst)["strings"] == "timbre: strings"
    with pytest.raises(ValueError, match="kazoo"):
        clap.attribute_prompts("instrument", ["sine", "kazoo"])
