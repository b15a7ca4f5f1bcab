"""Tests for ditto2_nb.data: procedural clips with true labels, corpus rendering, folders, caches."""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ditto2_nb import data
from ditto2_nb.core.config import DataConfig, MelConfig, get_preset
from ditto2_nb.data import corpus
from ditto2_nb.data.captions import INSTRUMENT_WORDS, TEMPO_WORDS
from ditto2_nb.data.composition import _compose_score
from ditto2_nb.data.labels import _pitch_per_frame
from ditto2_nb.data.synthesis import _synthesize, _triad_pcs

CI = get_preset("ci").mel  # 64 frames x 256 hop at 16 kHz (1.02 s)
LONG = 4.0  # seconds: the label-truth checks use longer clips, as the benchmark does


# ----------------------------------------------------------------------------- helpers


def chroma(wave: np.ndarray, sr: int, hop: int, f_lo: float = 250.0,
           f_hi: float = 4000.0) -> np.ndarray:
    """Chroma ``[12, T]`` of the STFT power between ``f_lo`` and ``f_hi`` (bass and pad dropped).

    Independent of the generator: a Hann-windowed 2048-point STFT, each bin mapped to its
    nearest equal-tempered pitch class. Frame ``t`` is centred on sample ``t * hop``.
    """
    n_fft = 2048
    padded = np.pad(wave, n_fft // 2)
    n_frames = len(wave) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2  # [T, F]
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    keep = (freqs >= f_lo) & (freqs <= f_hi)
    pc = np.round(12 * np.log2(freqs[keep] / 440.0) + 69).astype(int) % 12
    out = np.zeros((12, n_frames))
    np.add.at(out, pc, power[:, keep].T)
    return out


def smoothed_level_db(wave: np.ndarray, hop: int, n_frames: int, width: int = 31) -> np.ndarray:
    """Frame RMS in dB (1024-sample frames centred on ``t * hop``), moving-averaged ``[T]``."""
    padded = np.pad(wave, 512)
    frames = np.lib.stride_tricks.sliding_window_view(padded, 1024)[::hop][:n_frames]
    db = 10 * np.log10((frames**2).mean(axis=1) + 1e-10)
    kernel = np.ones(width) / width
    return np.convolve(np.pad(db, width // 2, mode="edge"), kernel, mode="valid")


def seeds_where(pred, n: int, start: int = 0, cfg: MelConfig = CI,
                seconds: float | None = LONG) -> list[int]:
    """First ``n`` seeds whose composed labels satisfy ``pred`` (composition only: fast)."""
    out, seed = [], start
    while len(out) < n:
        if pred(data.compose_clip(seed, cfg, seconds)):
            out.append(seed)
        seed += 1
    return out


def same_labels(a: data.ClipLabels, b: data.ClipLabels) -> bool:
    return a.to_dict() == b.to_dict()


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_waves_and_labels():
    w1, l1 = data.generate_clips(3, 7, CI)
    w2, l2 = data.generate_clips(3, 7, CI)
    np.testing.assert_array_equal(w1, w2)
    assert all(same_labels(a, b) for a, b in zip(l1, l2, strict=True))
    assert not np.array_equal(w1[0], w1[1])


def test_clip_k_is_independent_of_batch_size():
    big, big_labels = data.generate_clips(5, 10, CI)
    small, _ = data.generate_clips(2, 13, CI)
    one, one_labels = data.generate_clips(1, 14, CI)
    np.testing.assert_array_equal(big[3:], small)
    np.testing.assert_array_equal(big[4], one[0])
    assert same_labels(big_labels[4], one_labels[0]) and big_labels[4].seed == 14


def test_shapes_and_levels():
    waves, labels = data.generate_clips(12, 0, CI)
    assert waves.shape == (12, CI.n_samples) and waves.dtype == np.float32
    assert np.isfinite(waves).all() and np.abs(waves).max() <= data.PEAK_LIMIT + 1e-6
    rms = np.sqrt((waves**2).mean(axis=1))
    assert (20 * np.log10(rms) > -45).all()  # even "soft" clips are audible
    for lab in labels:
        for name in ("pitch", "pitch_class", "intensity_db", "section"):
            assert getattr(lab, name).shape == (CI.frames,)
    w4, l4 = data.generate_clips(2, 0, CI, seconds=LONG)
    assert w4.shape == (2, 64_000) and l4[0].n_frames == 250


def test_mels_have_config_frames():
    waves, _ = data.generate_clips(3, 0, CI)
    mels = data.waves_to_mels(waves, CI, batch_size=2)
    assert mels.shape == (3, CI.n_mels, CI.frames) and mels.dtype == torch.float32
    assert mels.min() >= -1 and mels.max() <= 1 and not mels.requires_grad


# ----------------------------------------------------------------------------- labels are true


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([None, 2.0, 4.0]))
def test_composed_labels_are_consistent(seed, seconds):
    lab = data.compose_clip(seed, CI, seconds)
    dur = lab.n_frames * lab.hop_length / lab.sample_rate
    lo, hi = data.MELODY_RANGE
    onsets = [n.onset for n in lab.notes]
    assert onsets == sorted(onsets) and lab.notes, "melody must have notes, in order"
    for a, b in zip(lab.notes[:-1], lab.notes[1:], strict=True):
        assert a.onset + a.duration <= b.onset + 1e-9  # monophonic
    scale = {(lab.tonic + s) % 12 for s in data.SCALES[lab.mode]}
    for nt in lab.notes:
        assert lo <= nt.midi <= hi and nt.midi % 12 in scale
        assert 0 <= nt.onset < dur + 1e-9 and nt.duration > 0
    for c in lab.chords:
        assert set(_triad_pcs(c)) <= scale  # diatonic
    times = lab.frame_times()
    np.testing.assert_array_equal(lab.pitch, _pitch_per_frame(lab.notes, times))
    np.testing.assert_array_equal(lab.pitch_class, np.where(lab.pitch > 0, lab.pitch % 12, -1))
    assert (lab.pitch > 0).mean() > 0.5, "mostly notes, some rests"
    assert lab.tempo == data.tempo_class(lab.bpm)
    assert lab.key == data.key_name(lab.tonic, lab.mode)
    assert np.all(np.diff(lab.section) >= 0) and lab.section[0] == 0
    assert lab.section.max() < len(lab.structure) and lab.structure in data.STRUCTURES
    assert [s.letter for s in lab.sections] == list(lab.structure)
    assert all(s.duration > 0 for s in lab.sections)
    assert (lab.drum_pattern is not None) == lab.has_drums


def test_chroma_argmax_matches_pitch_class_labels():
    waves, labels = data.generate_clips(12, 200, CI, seconds=LONG)
    agree, voiced = [], []
    for wave, lab in zip(waves, labels, strict=True):
        c = chroma(wave, lab.sample_rate, lab.hop_length)
        on = lab.pitch_class >= 0
        agree.append(float((c.argmax(axis=0)[on] == lab.pitch_class[on]).mean()))
        voiced.append(int(on.sum()))
    overall = float(np.average(agree, weights=voiced))
    print(f"chroma/pitch-class agreement: overall {overall:.3f}, per clip {np.round(agree, 2)}")
    assert min(agree) >= 0.7 and overall >= 0.9


def test_loudness_follows_intensity_envelope():
    varying = ("crescendo", "decrescendo", "swell", "sudden")
    seeds = seeds_where(lambda lab: lab.dynamics in varying, 8, start=300)
    corr = []
    for seed in seeds:
        wave, lab = data.synthesize_clip(seed, CI, LONG)
        level = smoothed_level_db(wave, lab.hop_length, lab.n_frames)
        corr.append(float(np.corrcoef(level, lab.intensity_db)[0, 1]))
    print(f"loudness/intensity correlation: {np.round(corr, 3)}")
    assert min(corr) > 0.8


def test_intensity_label_is_the_applied_gain_exactly():
    seed, n = 5, CI.n_samples
    rng = np.random.default_rng(seed)
    lab = _compose_score(rng, seed, CI, n)
    state = rng.bit_generator.state
    wave, gain_db = _synthesize(lab, rng, n)
    rng.bit_generator.state = state
    flat = dataclasses.replace(lab, intensity_db=np.zeros_like(lab.intensity_db))
    wave0, gain0_db = _synthesize(flat, rng, n)
    t = np.arange(n) / CI.sample_rate
    expected = 10 ** ((np.interp(t, lab.frame_times(), lab.intensity_db) + gain_db - gain0_db)
                      / 20)
    big = np.abs(wave0) > 1e-3
    np.testing.assert_allclose(wave[big] / wave0[big], expected[big], rtol=1e-3)


def test_soft_clips_are_quieter_than_loud_clips():
    loud = seeds_where(lambda lab: lab.dynamics == "loud", 4, start=50)
    soft = seeds_where(lambda lab: lab.dynamics == "soft", 4, start=50)

    def level(seed):
        w, _ = data.synthesize_clip(seed, CI, LONG)
        return 20 * np.log10(np.sqrt((w**2).mean()))

    assert np.mean([level(s) for s in loud]) > np.mean([level(s) for s in soft]) + 10


def section_chroma_distance(c: np.ndarray, section: np.ndarray, i: int, j: int) -> float:
    """Mean cosine distance between frame-aligned chroma ``[12, T]`` of sections ``i`` and ``j``."""
    c = c / (np.linalg.norm(c, axis=0, keepdims=True) + 1e-12)
    span = min(np.sum(section == i), np.sum(section == j))
    a = c[:, int(np.argmax(section == i)):][:, :span]
    b = c[:, int(np.argmax(section == j)):][:, :span]
    return float(1 - (a * b).sum(axis=0).mean())


def section_material(lab: data.ClipLabels, i: int, length: float) -> list[tuple[float, int]]:
    """(onset from the section start, pitch) of the notes starting in the first ``length`` s."""
    s = lab.sections[i]
    return [(round(n.onset - s.onset, 6), n.midi) for n in lab.notes
            if s.onset <= n.onset < s.onset + length]


def test_repeated_sections_sound_alike():
    seeds = seeds_where(lambda lab: lab.structure == "ABA", 3, start=0)
    for seed in seeds:
        wave, lab = data.synthesize_clip(seed, CI, LONG)
        c = chroma(wave, lab.sample_rate, lab.hop_length)
        same = section_chroma_distance(c, lab.section, 0, 2)
        other = section_chroma_distance(c, lab.section, 0, 1)
        print(f"seed {seed}: chroma distance A-A' {same:.3f}, A-B {other:.3f}")
        assert same < other
        length = min(lab.sections[0].duration, lab.sections[2].duration)
        assert section_material(lab, 0, length) == section_material(lab, 2, length)
        assert section_material(lab, 0, length) != section_material(lab, 1, length)


# ----------------------------------------------------------------------------- captions


def test_captions_mention_the_labels():
    _, labels = data.generate_clips(8, 40, CI)
    for lab in labels:
        first = data.caption(lab)
        assert first == data.caption(lab, 0)
        assert lab.key in first and TEMPO_WORDS[lab.tempo][0] in first
        assert INSTRUMENT_WORDS[lab.instrument][0] in first
        assert ("with drums" in first) == lab.has_drums
        texts = [data.caption(lab, t) for t in range(data.N_CAPTION_TEMPLATES)]
        assert len(set(texts)) == data.N_CAPTION_TEMPLATES
        assert all(lab.key in t for t in texts)
        assert data.random_caption(lab, np.random.default_rng(0)) in texts
    with pytest.raises(ValueError, match="template"):
        data.caption(labels[0], data.N_CAPTION_TEMPLATES)


def test_caption_example_shape():
    lab = data.compose_clip(0, CI)
    lab = dataclasses.replace(lab, tempo="fast", dynamics="loud", instrument="square", tonic=9,
                              mode="minor", has_drums=True)
    assert data.caption(lab) == "a fast, loud square-wave melody in A minor with drums"


# ----------------------------------------------------------------------------- folder loader


def _write_folder(folder, sr=16_000):
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(folder / "good.wav", tone.astype(np.float32), sr)
    sf.write(folder / "silent.wav", np.zeros(sr * 2, np.float32), sr)
    sf.write(folder / "short.wav", tone[: sr // 5].astype(np.float32), sr)
    (folder / "corrupt.wav").write_bytes(rng.bytes(3000))
    t44 = np.arange(int(2.2 * 44_100)) / 44_100
    stereo = np.stack([0.2 * np.sin(2 * np.pi * 330 * t44), 0.2 * np.sin(2 * np.pi * 550 * t44)], 1)
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "stereo.flac", stereo.astype(np.float32), 44_100)
    (folder / "notes.txt").write_text("not audio")


def test_folder_loader_counts_bad_files(tmp_path):
    _write_folder(tmp_path)
    waves, labels, summary = data.load_audio_folder(tmp_path, CI)
    assert summary.n_files == 5 and summary.n_loaded == 2
    assert summary.counts == {"unreadable": 1, "silent": 1, "too short": 1}
    assert summary.skipped["corrupt.wav"][0] == "unreadable"
    assert summary.skipped["silent.wav"][0] == "silent"
    assert summary.skipped["short.wav"][0] == "too short"
    n_good = int(2.5 * 16_000) // CI.n_samples
    n_stereo = int(2.2 * 16_000) // CI.n_samples  # resampled to 16 kHz, then cut
    assert waves.shape == (n_good + n_stereo, CI.n_samples) and len(labels) == len(waves)
    assert summary.n_clips == len(waves)
    stereo = [i for i, lab in enumerate(labels) if lab.source.endswith("stereo.flac")]
    assert len(stereo) == n_stereo and labels[stereo[1]].start_s == pytest.approx(CI.seconds)
    assert np.abs(waves[stereo]).max() > 0.1  # both channels averaged, not silent
    text = str(summary)
    assert "corrupt.wav" in text and "2 of 5" in text and "1 silent" in text


def test_folder_loader_pads_files_above_min_seconds(tmp_path):
    _write_folder(tmp_path)
    _, labels, summary = data.load_audio_folder(tmp_path, CI, min_seconds=0.1, recursive=False)
    assert summary.n_files == 4 and "short.wav" not in summary.skipped
    assert any(lab.source.endswith("short.wav") for lab in labels)


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_audio_folder(tmp_path / "nope", CI)
    with pytest.raises(data.DataError, match="no audio files"):
        data.load_audio_folder(tmp_path, CI)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(data.DataError, match="no usable clips"):
        data.load_audio_folder(tmp_path, CI)


def test_folder_dataset_is_cached(tmp_path):
    folder, cache = tmp_path / "audio", tmp_path / "cache"
    folder.mkdir()
    _write_folder(folder)
    first = data.folder_dataset(folder, CI, cache_dir=cache)
    second = data.folder_dataset(folder, CI, cache_dir=cache)
    assert not first.from_cache and second.from_cache
    torch.testing.assert_close(first.mels, second.mels)
    assert isinstance(second.summary, data.FolderSummary)
    assert second.summary.counts == first.summary.counts and str(second.summary) == str(
        first.summary)
    assert second.captions[0].startswith("a recording") and "good" in second.captions[0]


# ----------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus_cache")


def _check_corpus(clips: data.CorpusClips, renderer: str):
    assert clips.summary.n_rendered == 2 and not clips.summary.failed
    assert clips.summary.renderer == renderer and len(clips.waves) == len(clips.labels) > 10
    rms_db = 20 * np.log10(np.sqrt((clips.waves**2).mean(axis=1)) + 1e-10)
    assert np.median(rms_db) > -40 and np.abs(clips.waves).max() <= 1.0
    voiced = np.mean([(lab.pitch > 0).mean() for lab in clips.labels])
    assert voiced > 0.5
    lab = clips.labels[0]
    assert lab.key is not None and lab.genre == "Bach chorale" and lab.bpm > 0
    assert lab.pitch.shape == (CI.frames,) and lab.notes
    assert "chorale" in data.caption(lab) and lab.key in data.caption(lab)


def test_chorales_render_with_builtin_synth(corpus_cache):
    clips = data.render_corpus(CI, "bach", limit=2, renderer="additive", cache_dir=corpus_cache)
    _check_corpus(clips, "additive")
    start = time.perf_counter()
    again = data.render_corpus(CI, "bach", limit=2, renderer="additive", cache_dir=corpus_cache)
    assert time.perf_counter() - start < 1.0
    np.testing.assert_allclose(again.waves, clips.waves, atol=1 / 32767)
    assert same_labels(again.labels[3], clips.labels[3])


@pytest.mark.skipif(not data.fluidsynth_available(), reason="libfluidsynth not installed")
def test_chorales_render_with_fluidsynth(corpus_cache):
    _check_corpus(data.render_corpus(CI, "bach", limit=2, renderer="fluidsynth",
                                     cache_dir=corpus_cache, use_cache=False), "fluidsynth")


def test_missing_libfluidsynth_falls_back_to_additive(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "fluidsynth", None)  # import now fails
    assert not data.fluidsynth_available()
    assert corpus._resolve_renderer("auto") == "additive"
    with pytest.raises(data.DataError, match="libfluidsynth"):
        corpus._resolve_renderer("fluidsynth")


def test_corpus_failures_are_counted_not_fatal(monkeypatch, corpus_cache):
    real = corpus._parse_piece
    bad = data.corpus_pieces("bach", 2)[0]

    def flaky(piece):
        if piece == bad:
            raise ValueError("malformed repeat")
        return real(piece)

    monkeypatch.setattr(corpus, "_parse_piece", flaky)
    clips = data.render_corpus(CI, "bach", limit=2, renderer="additive", use_cache=False)
    assert clips.summary.n_rendered == 1 and "malformed repeat" in clips.summary.failed[bad]
    assert bad in str(clips.summary) and len(clips.waves) > 0


def test_chorale_dataset_caps_clips(corpus_cache):
    ds = data.chorale_dataset(CI, limit=2, renderer="additive", max_clips=5,
                              cache_dir=corpus_cache)
    assert ds.mels.shape == (5, CI.n_mels, CI.frames)
    assert ds.frame_labels("pitch").shape == (5, CI.frames)


# ----------------------------------------------------------------------------- cache and datasets


def test_procedural_dataset_cache_is_fast_and_equal(tmp_path):
    start = time.perf_counter()
    first = data.procedural_dataset(CI, 48, seed=3, cache_dir=tmp_path)
    built = time.perf_counter() - start
    start = time.perf_counter()
    second = data.procedural_dataset(CI, 48, seed=3, cache_dir=tmp_path)
    loaded = time.perf_counter() - start
    assert not first.from_cache and second.from_cache
    assert loaded < built / 3, (loaded, built)
    torch.testing.assert_close(first.mels, second.mels, rtol=0, atol=0)
    assert all(same_labels(a, b) for a, b in zip(first.labels, second.labels, strict=True))
    assert first.captions == second.captions
    waves, _ = data.generate_clips(2, 3, CI)
    torch.testing.assert_close(first.mels[:2], data.waves_to_mels(waves, CI))
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npz"]


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    first = data.procedural_dataset(CI, 8, seed=1, cache_dir=tmp_path)
    path = first.cache_path
    raw = bytearray(path.read_bytes())
    if damage == "garbage":
        raw = bytearray(np.random.default_rng(0).bytes(len(raw)))
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 3] ^= 0xFF  # inside the mel array: caught by the zip CRC
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="rebuilding"):
        again = data.procedural_dataset(CI, 8, seed=1, cache_dir=tmp_path)
    assert not again.from_cache
    torch.testing.assert_close(again.mels, first.mels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.procedural_dataset(CI, 8, seed=1, cache_dir=tmp_path).from_cache


def test_cache_key_separates_configs_and_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("DITTO2_CACHE", str(tmp_path / "env"))
    assert data.cache_root() == tmp_path / "env"
    assert data.cache_root(tmp_path / "arg") == tmp_path / "arg"
    a = data.procedural_dataset(CI, 4, seed=0)
    b = data.procedural_dataset(dataclasses.replace(CI, n_mels=32), 4, seed=0)
    assert a.cache_path.parent == tmp_path / "env" and a.cache_path != b.cache_path
    assert b.mels.shape == (4, 32, CI.frames)


def test_mel_dataset_batches_and_frame_labels(tmp_path):
    ds = data.procedural_dataset(CI, 6, seed=0, cache_dir=tmp_path)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["mel"].shape == (4, CI.n_mels, CI.frames) and len(batch["caption"]) == 4
    assert ds.frame_labels("intensity_db").shape == (6, CI.frames)
    with pytest.raises(ValueError, match="per-frame"):
        ds.frame_labels("tempo")
    both = ds.subset([0, 1]) + ds.subset([5])
    assert len(both) == 3 and both.labels[2].seed == 5
    assert len(ds.random_captions(np.random.default_rng(1))) == 6


def test_splits_use_disjoint_seeds(tmp_path):
    train, held = data.procedural_splits(CI, DataConfig(n_train=4, n_heldout=2, seed=9), tmp_path)
    assert [lab.seed for lab in train.labels] == [9, 10, 11, 12]
    assert [lab.seed for lab in held.labels] == [9 + data.HELDOUT_SEED_OFFSET + k for k in (0, 1)]
