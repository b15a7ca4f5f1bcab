"""Tests for ditto2_nb.data.repertoire: the rendered repertoire's catalogue and split by piece,
exact labels (a rendered note's pitch is the score's), the fallbacks, the cache and the CLI."""

import json
import sys
from dataclasses import replace

import numpy as np
import pytest

from ditto2_nb import cli
from ditto2_nb.controls.melody import chroma
from ditto2_nb.core.config import DataConfig, MelConfig, from_dict, get_preset, to_dict
from ditto2_nb.data import repertoire as R
from ditto2_nb.data import tags as data_tags
from ditto2_nb.data import waves_to_mels
from ditto2_nb.data.arranging import gm_name
from ditto2_nb.data.summaries import DataError
from ditto2_nb.data.tags import TAG_FIELDS
from ditto2_nb.data.theory import GM_FAMILY

CI = get_preset("ci").mel
FLUID = R._libfluidsynth() and (R.find_soundfont() or R.timgm_soundfont_path()) is not None
needs_fluidsynth = pytest.mark.skipif(not FLUID, reason="libfluidsynth or a GM soundfont is missing")
TUNES = ("oneills1850/0001-0050#2", "essenFolksong/altdeu10#1", "ryansMammoth/IndeedThenYouShantJig#1")


@pytest.fixture(scope="module")
def ci_splits():
    """The ci preset's three rendered splits (96 / 32 / 96 clips) and their data card."""
    sets, card = R.render_preset("ci")
    return sets, card


def _chroma_agreement(outs, cfg: MelConfig) -> float:
    """Share of voiced frames whose strongest chroma class (the melody control's chroma) is the
    label's pitch class."""
    hits = []
    for out in outs:
        guess = chroma(waves_to_mels(out.waves, cfg), cfg).argmax(1).numpy()
        hits += [guess[k][lab.pitch > 0] == lab.pitch_class[lab.pitch > 0]
                 for k, lab in enumerate(out.labels)]
    return float(np.concatenate(hits).mean())


def _spectral_peaks_match(outs, cfg: MelConfig) -> float:
    """Share of notes (>= 0.15 s) whose strongest spectral peak has the score's pitch class."""
    sr, ok = cfg.sample_rate, []
    pairs = [(w, lab) for out in outs for w, lab in zip(out.waves, out.labels, strict=True)]
    for wave, lab in pairs:
        for note in lab.notes:
            if note.duration < 0.15:
                continue
            a, b = int((note.onset + 0.04) * sr), int((note.onset + note.duration - 0.02) * sr)
            spec = np.abs(np.fft.rfft(wave[a:b] * np.hanning(b - a), 8192))
            freq = np.fft.rfftfreq(8192, 1 / sr)
            peak = freq[150:][spec[150:].argmax()]
            semis = 69 + 12 * np.log2(peak / 440.0) - note.midi
            ok.append(abs((semis + 6) % 12 - 6) < 0.5)
    assert len(ok) >= 3, "too few long notes to check"
    return float(np.mean(ok))


# ----------------------------------------------------------------------------- catalogue, split


def test_catalogue_has_the_collections_and_each_piece_one_split():
    counts = R.collection_counts()
    assert set(counts) == set(R.COLLECTIONS)
    assert counts["essen"]["pieces"] > 8000 and counts["oneills"]["pieces"] > 1800
    assert counts["ryans"]["pieces"] > 1000 and counts["bach"]["pieces"] > 300
    pieces = R.repertoire_pieces()
    assert len({p.id for p in pieces}) == len(pieces)
    split_of_group = {}
    for p in pieces:  # a group (shared title or ABC body) never straddles two splits
        assert split_of_group.setdefault(p.group, R.piece_split(p)) == R.piece_split(p), p
    share = {s: np.mean([R.piece_split(p) == s for p in pieces]) for s in R.SPLITS}
    for s, f in R.SPLIT_FRACTIONS.items():
        assert abs(share[s] - f) < 0.05, (s, share[s])


def test_split_order_is_seeded_and_splits_are_disjoint():
    a, b = R.split_pieces("heldout", seed=0), R.split_pieces("heldout", seed=1)
    assert [p.id for p in a] == [p.id for p in R.split_pieces("heldout", seed=0)]
    assert [p.id for p in a] != [p.id for p in b] and {p.id for p in a} == {p.id for p in b}
    ids = {s: {p.id for p in R.split_pieces(s, seed=3)} for s in R.SPLITS}
    assert not ids["train"] & ids["heldout"] and not ids["train"] & ids["evaluator"]
    assert not ids["heldout"] & ids["evaluator"]
    assert {p.collection for p in R.split_pieces("evaluator", ["bach"])} == {"bach"}
    with pytest.raises(ValueError, match="collections"):
        R.split_pieces("train", ["nope"])


def test_ci_preset_splits_share_no_piece(ci_splits):
    sets, card = ci_splits
    sizes = R.repertoire_sizes(get_preset("ci").data)
    assert sizes == {"train": 96, "heldout": 32, "evaluator": 96}
    for name, ds in sets.items():
        assert len(ds) == sizes[name] and ds.mels.shape == (sizes[name], CI.n_mels, CI.frames)
        assert {x["split"] for x in ds.info} == {name}
        assert all(R.piece_split(x["group"]) == name for x in ds.info)
        split = card["splits"][name]
        assert split["clips"] == sizes[name] and split["pieces"] >= sizes[name] // 3
        assert split["seconds"] == pytest.approx(sizes[name] * CI.seconds, rel=1e-3)
        assert split["instruments"] and all(isinstance(i, str) for i in split["instruments"])
    assert card["pieces_shared_across_splits"] == 0
    assert card["groups_shared_across_splits"] == 0
    assert card["melodies_shared_across_splits"] == 0
    pieces = [{x["piece"] for x in ds.info} for ds in sets.values()]
    assert not (pieces[0] & pieces[1] or pieces[0] & pieces[2] or pieces[1] & pieces[2])
    again = R.repertoire_splits("ci")
    assert all(again[s].from_cache and again[s].mels.equal(sets[s].mels) for s in R.SPLITS)


def test_the_data_config_asks_for_the_repertoire():
    assert DataConfig().n_repertoire == 0  # nothing changes for the shipped presets
    data = DataConfig(n_train=10, n_heldout=4, n_repertoire=30, n_repertoire_heldout=6)
    assert R.repertoire_sizes(data) == {"train": 30, "heldout": 6, "evaluator": 30}
    with pytest.raises(ValueError, match="n_repertoire"):
        DataConfig(n_repertoire=-1)
    # left out of the metadata while 0: checkpoints written before the fields existed still resume
    assert "n_repertoire" not in to_dict(DataConfig()) and to_dict(data)["n_repertoire"] == 30
    assert from_dict(DataConfig, to_dict(data)) == data


# ----------------------------------------------------------------------------- labels


def test_labels_are_the_scores(ci_splits):
    sets, _ = ci_splits
    ds = sets["train"]
    for lab, info in zip(ds.labels, ds.info, strict=True):
        assert lab.n_frames == CI.frames and lab.pitch.shape == (CI.frames,)
        assert lab.intensity_db.shape == (CI.frames,) and lab.dynamics in R.DYNAMICS
        assert lab.tempo == R.tempo_class(lab.bpm) and lab.mode in ("major", "minor")
        score = R.load_score(lab.source)
        assert lab.tonic == (score["tonic"] + info["transpose"]) % 12
        assert lab.instrument == gm_name(info["program"]) and lab.instrument in info["instruments"]
        assert np.array_equal(lab.pitch, R._pitch_per_frame(lab.notes, lab.frame_times()))
        assert all(0 <= n.onset < lab.duration and n.duration > 0 for n in lab.notes)
        assert lab.instrument.lower() in info["caption"] or R.spoken_name(lab.instrument) in info["caption"]
        assert lab.key in info["caption"]
    tags = ds.tags()
    assert tags.shape == (len(ds), len(TAG_FIELDS)) and (tags > 0).all()
    # the instrument tag is the melody program's GM family (not the nearest procedural timbre)
    families = [TAG_FIELDS["instrument"][k - 1] for k in tags[:, 0].tolist()]
    assert families == [GM_FAMILY[info["program"]] for info in ds.info]
    assert families == [data_tags.tag_values(lab)["instrument"] for lab in ds.labels]
    assert ds.captions[0] == ds.info[0]["caption"] and ds[0]["caption"] == ds.info[0]["caption"]


def test_a_score_transposes_by_its_drawn_interval():
    piece = R.repertoire_pieces(["oneills"])[1]
    score = R.load_score(piece)
    out = R.render_piece(piece, CI, renderer="additive", transpose=3, accompaniment="none",
                         start_bar=0, bpm=100.0)
    lab = out.labels[0]
    melody = np.array(score["parts"][score["melody"]])
    first = melody[np.argmin(melody[:, 0])]
    assert lab.notes[0].midi == int(first[2]) + 3 and lab.tonic == (score["tonic"] + 3) % 12
    assert lab.bpm == 100.0 and out.info[0]["transpose"] == 3


@needs_fluidsynth
@pytest.mark.parametrize("program", [73, 40, 0])  # flute, violin, piano
def test_a_rendered_notes_pitch_is_the_scores(program):
    outs = [R.render_piece(tune, CI, program=program, accompaniment="none", drums=False,
                           dynamics="loud", clips=3) for tune in TUNES]
    assert all(out.summary.renderer == "fluidsynth" and len(out.labels) == 3 for out in outs)
    assert _chroma_agreement(outs, CI) > 0.8
    assert _spectral_peaks_match(outs, CI) > 0.8


def test_additive_fallback_when_no_soundfont(monkeypatch):
    monkeypatch.setattr(R, "find_soundfont", lambda: None)
    monkeypatch.setattr(R, "timgm_soundfont_path", lambda: None)
    with pytest.warns(UserWarning, match="additive"):
        assert R.resolve_renderer("auto") == ("additive", None)
    if R._libfluidsynth():
        with pytest.raises(DataError, match="no soundfont"):
            R.resolve_renderer("fluidsynth")
    with pytest.warns(UserWarning, match="additive"):
        out = R.render_piece(TUNES[0], CI, program=73, accompaniment="none", drums=False,
                             dynamics="loud", clips=2)
    assert out.info[0]["renderer"] == "additive" and out.waves.shape == (2, CI.n_samples)
    assert _chroma_agreement([out], CI) > 0.9


def test_missing_libfluidsynth_is_announced(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # import now fails
    with pytest.warns(UserWarning, match="libfluidsynth"):
        assert R.resolve_renderer("auto")[0] == "additive"
    with pytest.raises(DataError, match="libfluidsynth"):
        R.resolve_renderer("fluidsynth")


@needs_fluidsynth
def test_timgm_fallback_is_announced(monkeypatch):
    monkeypatch.setattr(R, "find_soundfont", lambda: None)
    with pytest.warns(UserWarning, match="TimGM6mb"):
        renderer, sf = R.resolve_renderer("auto")
    assert renderer == "fluidsynth" and sf.name == "TimGM6mb.sf2"


# ----------------------------------------------------------------------------- cache, clip length


def test_rebuild_is_byte_identical_and_cached(tmp_path):
    a = R.render_repertoire(CI, "heldout", 7, cache_dir=tmp_path)
    b = R.render_repertoire(CI, "heldout", 7, cache_dir=tmp_path, use_cache=False)
    assert a.waves.tobytes() == b.waves.tobytes() and a.info == b.info
    assert all(np.array_equal(x.pitch, y.pitch) and x.notes == y.notes for x, y in zip(a.labels, b.labels))
    prefix = R.render_repertoire(CI, "heldout", 4, cache_dir=tmp_path, use_cache=False)
    assert prefix.waves.tobytes() == a.waves[:4].tobytes()  # a piece's clips do not depend on n
    hit = R.render_repertoire(CI, "heldout", 7, cache_dir=tmp_path)
    # the cache keeps 16-bit PCM and the first call returns that very form: a training resumed on a
    # cache hit sees the data of the run it resumes (the vocoder's data fingerprint)
    assert hit.waves.tobytes() == a.waves.tobytes()
    assert np.array_equal(np.round(a.waves * 32767), a.waves * 32767)
    other = R._key(CI, "heldout", 7, 0, tuple(R.COLLECTIONS), "additive", None, 3, 1)
    same = R._key(CI, "heldout", 7, 0, tuple(R.COLLECTIONS), "additive", None, 3, 1)
    assert other == same and R._key(replace(CI, frames=128), "heldout", 7, 0, tuple(R.COLLECTIONS),
                                    "additive", None, 3, 1) != same


def test_four_second_clips():
    cfg = MelConfig(frames=256)
    out = R.render_repertoire(cfg, "train", 4, collections=["essen", "bach"], use_cache=False)
    assert out.waves.shape == (4, 256 * 256) and all(x.n_frames == 256 for x in out.labels)
    assert all(x.duration == pytest.approx(4.096) for x in out.labels)


def test_failed_pieces_are_skipped_and_listed(monkeypatch):
    real = R.load_score
    bad = R.split_pieces("heldout")[0].id

    def load(piece, *a, **k):
        if getattr(piece, "id", piece) == bad:
            raise DataError("cannot parse this one")
        return real(piece, *a, **k)

    monkeypatch.setattr(R, "load_score", load)
    out = R.render_repertoire(CI, "heldout", 5, use_cache=False, renderer="additive")
    assert out.summary.failed == {bad: "parse: cannot parse this one"} and len(out.labels) == 5
    assert bad not in {x["piece"] for x in out.info}


def test_cli_render_writes_the_data_card(tmp_path, capsys):
    card = tmp_path / "card.json"
    cli.main(["render", "--preset", "ci", "--train", "6", "--heldout", "3", "--evaluator", "3",
              "--card", str(card), "--no-progress"])
    assert "wrote" in capsys.readouterr().out
    d = json.loads(card.read_text())
    assert set(d["splits"]) == {"train", "heldout", "evaluator"}
    for s, n in (("train", 6), ("heldout", 3), ("evaluator", 3)):
        assert d["splits"][s]["clips"] == n
        assert {"clips", "pieces", "instruments", "seconds"} <= set(d["splits"][s])
    assert d["pieces_shared_across_splits"] == 0
    with pytest.raises(SystemExit):
        cli.main(["render", "--preset", "ci", "--workers", "0"])
