"""DataConfig.source: what a preset's models train and are judged on, and the record they keep."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ditto2_nb.core.config import DATA_SOURCES, DataConfig, get_preset, to_dict
from ditto2_nb.data import heldout_data, training_data
from ditto2_nb.data.repertoire import RepertoireDataset
from ditto2_nb.data.sources import training_record


def _ci(source: str):
    p = get_preset("ci")
    return dataclasses.replace(p, data=dataclasses.replace(p.data, source=source))


def test_an_unknown_source_is_refused_by_name():
    with pytest.raises(ValueError, match=r"DataConfig.source='midi'.*procedural"):
        DataConfig(source="midi")
    assert DATA_SOURCES == ("procedural", "repertoire", "mixed")


def test_the_default_source_leaves_older_configs_unchanged():
    assert "source" not in to_dict(DataConfig())  # checkpoints written before the field still match
    assert to_dict(DataConfig(source="mixed"))["source"] == "mixed"


def test_repertoire_and_mixed_sources_train_on_rendered_pieces_and_hold_out_others():
    rep, mixed, proc = _ci("repertoire"), _ci("mixed"), _ci("procedural")
    train, held = training_data(rep), heldout_data(rep)
    assert isinstance(train, RepertoireDataset) and isinstance(held, RepertoireDataset)
    assert {x.source for x in train.labels}.isdisjoint({x.source for x in held.labels})
    both, alone = training_data(mixed), training_data(proc)
    assert len(both) == len(alone) + len(train)
    # each part keeps its own captions and tags: procedural first, then the rendered clips
    assert both.captions == alone.captions + train.captions
    assert torch.equal(both.tags(), torch.cat([alone.tags(), train.tags()]))
    assert torch.equal(both.mels, torch.cat([alone.mels, train.mels]))
    assert isinstance(heldout_data(mixed), RepertoireDataset)  # judged on music it never heard


def test_the_training_record_names_the_data_and_hashes_the_clips():
    rep, proc = _ci("repertoire"), _ci("procedural")
    a, b = training_record(rep, training_data(rep)), training_record(rep, training_data(rep))
    assert a == b and len(a["training_data_sha256"]) == 16
    assert a["training_data"].startswith("rendered repertoire: ") and "pieces" in a["training_data"]
    c = training_record(proc, training_data(proc))
    assert c["training_data"].startswith("procedural: ")
    assert c["training_data_sha256"] != a["training_data_sha256"]
    mixed = _ci("mixed")
    assert " + " in training_record(mixed, training_data(mixed))["training_data"]
