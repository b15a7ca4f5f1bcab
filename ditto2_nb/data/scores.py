"""The rendered repertoire's scores: the catalogue of music21's tunes and chorales, their groups
and splits, and each piece parsed into plain note lists (cached).

Collections (:data:`COLLECTIONS`; music21 10.5 ships them all)::

    essen    Essen folk songs (EsAC)            8,462 songs, one voice   "folk song"
    oneills  O'Neill's Music of Ireland (1850)  1,838 tunes, one voice   "folk tune"
    ryans    Ryan's Mammoth Collection          1,059 tunes, one voice   "fiddle tune"
    airds    Aird's Airs                         1,180 tunes, one voice   "folk tune"
    fife     American fife / Northumbrian tunes    185 tunes, one voice   "folk tune"
    bach     Bach's four-part chorales              408 chorales          "Bach chorale"

(13,132 pieces in ~10,600 groups; O'Neill's overlapping files are read once, music21's ABC test
files are left out; :func:`collection_counts` gives the pieces per split.)

Pieces and splits
    A piece belongs to exactly one split -- ``train`` (70 %), ``heldout`` (10 %) or ``evaluator``
    (20 %, the clips only the evaluators -- FD embedder, CLAP evaluator, attribute classifier --
    train on) -- decided by a hash of its *group*, never by the seed: pieces that share a
    normalised title (the same tune in two collections, the variants of an Essen ballad, the
    harmonisations of one chorale melody, read from music21's chorale list) or an identical ABC
    body are one group (union-find), so a tune never straddles two splits (the data card also
    counts identical melodies across splits, by a transposition-free fingerprint: 0 on the
    laptop preset). :func:`split_pieces` orders a split's pieces: each collection shuffled with the seed, then
    interleaved by :data:`COLLECTIONS`' weights.

Parsing
    ABC tunes are read with ABC 2.1 rules (accidentals carry through the bar) and turned into plain
    note lists (onset, duration in quarter notes, MIDI pitch; ties merged, grace notes dropped),
    bar lines, metre, key and a melody fingerprint; these are cached per piece (~20-70 ms per tune,
    ~0.2 s per chorale to parse; a failure is cached too, and listed). The key comes from the
    score: the ABC ``K:`` field (modes: dorian, phrygian, aeolian, locrian -> ``minor``; ionian,
    lydian, mixolydian -> ``major``; the exact name is kept in ``info["mode_name"]``); the Essen
    ``K:`` field names the final (tonic) only, so its mode is the tune's third above that tonic
    (minor when the minor third sounds longer than the major third); a chorale's tonic is its
    final bass note, read against the key signature (major or relative minor; otherwise the
    third rule); a tune without ``K:`` takes its final note as the tonic and the third rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .cache import _atomic_write, cache_root
from .corpus import _version
from .summaries import DataError

_SCORE_VERSION = "2"  # bump when the parsed note lists change (their cache folder)

# name -> (music21 corpus folder, genre, weight in a split's piece order, description)
COLLECTIONS: dict[str, tuple[str, str, float, str]] = {
    "essen": ("essenFolksong", "folk song", 0.30, "Essen folk songs (EsAC)"),
    "oneills": ("oneills1850", "folk tune", 0.20, "O'Neill's Music of Ireland (1850)"),
    "ryans": ("ryansMammoth", "fiddle tune", 0.18, "Ryan's Mammoth Collection"),
    "airds": ("airdsAirs", "folk tune", 0.10, "Aird's Airs"),
    "fife": ("miscFolk", "folk tune", 0.04, "American fife and Northumbrian tunes"),
    "bach": ("bach", "Bach chorale", 0.18, "Bach's four-part chorales"),
}
SPLITS = ("train", "heldout", "evaluator")
SPLIT_FRACTIONS = {"train": 0.70, "heldout": 0.10, "evaluator": 0.20}


# ----------------------------------------------------------------------------- the catalogue


class Piece(NamedTuple):
    """One piece of the catalogue (read from the files without parsing the music)."""

    id: str  # "essenFolksong/altdeu10#1", "bach/bwv269"
    collection: str  # a key of COLLECTIONS
    path: str
    number: int | None  # the ABC tune's X: number
    title: str
    group: str  # pieces of one group always share a split


_ARTICLES = {"the", "a", "an", "der", "die", "das"}


def _norm_title(title: str, words: int | None = None) -> str:
    """Lower case, no parentheses, punctuation or articles ("Groves Hornpipe, The" = "The Groves
    Hornpipe"); the first ``words`` words only when given (chorale titles are listed both whole
    and cut after their first line)."""
    t = title.lower().split("--")[0]
    t = re.sub(r"\(.*?\)", " ", t)
    t = [w for w in re.sub(r"[^\w]+", " ", t).split() if w not in _ARTICLES]
    return " ".join(t[:words])


_GENERIC_TITLES = {"", "a do", "do", "another", "the same", "untitled", "no title", "titel unbekannt"}


def _abc_tunes(path: Path) -> list[tuple[int, str, str]]:
    """(X number, first title, normalised body) of each tune in an ABC file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    out, seen = [], set()
    for chunk in re.split(r"(?m)^(?=X:)", text):
        m = re.match(r"X:\s*(\d+)", chunk)
        if not m or int(m.group(1)) in seen:  # a repeated X: number: the first tune is the piece
            continue
        seen.add(int(m.group(1)))
        title = next((ln[2:].strip() for ln in chunk.splitlines() if ln.startswith("T:")), "")
        body = "".join(ln.strip() for ln in chunk.splitlines()
                       if ln.strip() and not re.match(r"^[A-Za-z]:|^%", ln.strip()))
        out.append((int(m.group(1)), title, re.sub(r"\s+", "", body)))
    return out


def _chorale_titles() -> dict[str, str]:
    try:
        from music21.corpus import chorales

        return {str(k): v["title"] for k, v in chorales.ChoraleListRKBWV().byBWV.items()}
    except Exception:  # noqa: BLE001 - titles only sharpen the grouping
        return {}


@lru_cache(maxsize=2)
def _catalogue() -> tuple[Piece, ...]:
    """Every piece of every collection, with its group (union of shared titles and ABC bodies)."""
    from music21 import corpus

    root = Path(corpus.__file__).parent
    entries: list[tuple[str, str, str, int | None, str, list[str]]] = []
    for name, (folder, *_rest) in COLLECTIONS.items():
        if name == "bach":
            titles = _chorale_titles()
            seen: set[str] = set()
            paths = sorted(corpus.getComposer("bach"), key=lambda p: (p.stem, p.suffix != ".mxl"))
            for p in paths:
                if p.suffix not in (".mxl", ".xml", ".musicxml", ".krn") or p.stem in seen:
                    continue
                bwv = p.stem[3:].split("-")[0]
                if not re.match(r"bwv\d+\.\d+", p.stem) and bwv not in titles:
                    continue  # neither a cantata's chorale nor a listed chorale (bwv846: a prelude)
                seen.add(p.stem)
                title = titles.get(bwv, "")
                keys = [f"chorale:{_norm_title(title, 4)}"] if title else []
                entries.append((f"bach/{p.stem}", name, str(p), None, title,
                                keys + [f"bach:bwv{bwv}"]))
            continue
        numbers: set[int] = set()
        for p in sorted((root / folder).glob("*.abc")):
            if name == "essen" and p.stem.startswith("test"):  # music21's parser test files
                continue
            for number, title, body in _abc_tunes(p):
                if name == "oneills":  # X: is O'Neill's tune number; its files overlap (1701-1780,
                    if number in numbers:  # 1710-1750...): the first copy is the piece
                        continue
                    numbers.add(number)
                keys = [f"abc:{hashlib.sha1(body.encode()).hexdigest()[:16]}"] if body else []
                nt = _norm_title(title)
                if nt not in _GENERIC_TITLES and len(nt) > 2:
                    keys.append(f"title:{nt}")
                entries.append((f"{folder}/{p.stem}#{number}", name, str(p), number, title, keys))
    # union-find over shared keys
    parent = list(range(len(entries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, e in enumerate(entries):
        for k in e[5]:
            if k in owner:
                a, b = find(i), find(owner[k])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[k] = i
    rep: dict[int, str] = {}
    for i, e in enumerate(entries):
        r = find(i)
        rep[r] = min(rep.get(r, e[0]), e[0])
    return tuple(Piece(e[0], e[1], e[2], e[3], e[4], rep[find(i)]) for i, e in enumerate(entries))


def repertoire_pieces(collections: Iterable[str] | None = None) -> list[Piece]:
    """The catalogue's pieces (of ``collections``, default all), in a fixed order."""
    names = _collections(collections)
    return [p for p in _catalogue() if p.collection in names]


def _collections(collections: Iterable[str] | None) -> tuple[str, ...]:
    names = tuple(COLLECTIONS) if collections is None else tuple(collections)
    bad = [c for c in names if c not in COLLECTIONS]
    if bad or not names:
        raise ValueError(f"collections must be a non-empty subset of {list(COLLECTIONS)}, got {names!r}")
    return tuple(c for c in COLLECTIONS if c in names)


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16) / float(16**13)


def piece_split(piece: Piece | str) -> str:
    """The split of a piece (from its group; a piece id alone is its own group)."""
    group = piece.group if isinstance(piece, Piece) else piece
    u, acc = _unit("ditto2-repertoire-split:" + group), 0.0
    for split in ("heldout", "evaluator", "train"):
        acc += SPLIT_FRACTIONS[split]
        if u < acc:
            return split
    return "train"


def split_pieces(split: str, collections: Iterable[str] | None = None, seed: int = 0) -> list[Piece]:
    """The pieces of ``split`` in rendering order: each collection shuffled with ``seed``, then
    interleaved by the collections' weights (a seeded draw per position)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    names = _collections(collections)
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    queues = {}
    for c in names:
        ps = [p for p in repertoire_pieces([c]) if piece_split(p) == split]
        queues[c] = [ps[i] for i in rng.permutation(len(ps))]
    order, pos = [], dict.fromkeys(names, 0)
    while True:
        live = [c for c in names if pos[c] < len(queues[c])]
        if not live:
            return order
        w = np.array([COLLECTIONS[c][2] for c in live])
        c = live[int(rng.choice(len(live), p=w / w.sum()))]
        order.append(queues[c][pos[c]])
        pos[c] += 1


def collection_counts() -> dict[str, dict[str, int]]:
    """Pieces per collection and split: ``{"essen": {"train": ..., "heldout": ..., ...}, ...}``."""
    out: dict[str, dict[str, int]] = {}
    for p in _catalogue():
        d = out.setdefault(p.collection, dict.fromkeys(("pieces", *SPLITS), 0))
        d["pieces"] += 1
        d[piece_split(p)] += 1
    return out


# ----------------------------------------------------------------------------- parsing


def _scores_dir(cache_dir: str | os.PathLike | None) -> Path:
    return cache_root(cache_dir) / "repertoire" / f"scores-v{_SCORE_VERSION}-music21-{_version('music21')}"


def _score_file(piece: Piece, cache_dir: str | os.PathLike | None) -> Path:
    safe = re.sub(r"[^\w.#-]", "_", piece.id).replace("/", "__")
    return _scores_dir(cache_dir) / piece.collection / f"{safe}.json"


@lru_cache(maxsize=8)
def _abc_file_tunes(path: str) -> dict[int, str]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    out: dict[int, str] = {}
    for chunk in re.split(r"(?m)^(?=X:)", text):
        m = re.match(r"X:\s*(\d+)", chunk)
        if m:
            out.setdefault(int(m.group(1)), chunk)
    return out


def _tune_text(path: str, number: int) -> str:
    text = _abc_file_tunes(path).get(number)
    if text is None:
        raise DataError(f"tune X:{number} not found in {path}")
    return text


def _parse_m21(piece: Piece) -> Any:
    if piece.number is not None:
        from music21.abcFormat import ABCFile, translate

        text = _tune_text(piece.path, piece.number)
        handler = ABCFile(abcVersion=(2, 1, 0)).readstr(text)  # ABC 2.1: accidentals carry in the bar
        return translate.abcToStreamScore(handler)
    from music21 import converter

    return converter.parse(piece.path)


def _third_mode(melody: np.ndarray, tonic: int) -> str:
    pcs = (melody[:, 2].astype(int) - tonic) % 12
    return "minor" if melody[pcs == 3, 1].sum() > melody[pcs == 4, 1].sum() else "major"


_MAJORISH = {"major", "ionian", "lydian", "mixolydian"}
_MINORISH = {"minor", "aeolian", "dorian", "phrygian", "locrian"}


def _extract(score: Any, piece: Piece) -> dict[str, Any]:
    """music21 score -> plain note lists (quarter notes), bars, metre, key, fingerprint."""
    from music21 import key as m21key
    from music21 import meter

    parts = list(getattr(score, "parts", [])) or [score]
    notes_by_part, names = [], []
    for part in parts:
        rows = []
        for n in part.stripTies().flatten().notes:
            ql = float(n.quarterLength)
            if ql <= 0 or not hasattr(n, "pitches"):
                continue  # grace notes, unpitched
            for p in n.pitches:
                rows.append((round(float(n.offset), 6), round(ql, 6), int(p.midi)))
        if rows:
            notes_by_part.append(sorted(rows))
            names.append(str(part.partName or ""))  # never part.id: a default id is id(), not a name
    if not notes_by_part:
        raise DataError("no pitched notes")
    melody_idx = next((i for i, nm in enumerate(names) if "soprano" in nm.lower()), 0)
    melody = np.array(notes_by_part[melody_idx], dtype=np.float64)
    end = max(max(on + d for on, d, _ in rows) for rows in notes_by_part)
    end = max(end, float(parts[0].highestTime))
    measures = sorted({round(float(m.offset), 6) for m in parts[0].getElementsByClass("Measure")})
    measures = [m for m in measures if m < end] or [0.0]
    sigs = [ts for ts in parts[0].flatten().getElementsByClass(meter.TimeSignature)
            if ts.denominator <= 8 and ts.barDuration.quarterLength >= 1.0]
    if sigs:
        ts = Counter((s.ratioString, float(s.beatDuration.quarterLength),
                      float(s.barDuration.quarterLength)) for s in sigs).most_common(1)[0][0]
        metre, beat_ql, bar_ql = ts
    else:
        lengths = np.diff(measures + [end])
        bar_ql = float(np.median(lengths)) if len(lengths) else 4.0
        metre, beat_ql = "none", 1.0
    # key: from the score (see the module docstring)
    ks = next(iter(parts[0].flatten().getElementsByClass(m21key.KeySignature)), None)
    if piece.collection == "bach":
        sharps = int(ks.sharps) if ks is not None else 0
        major = (7 * sharps) % 12
        bass = min(notes_by_part, key=lambda r: np.mean([x[2] for x in r]))
        final = int(max(bass, key=lambda x: (x[0] + x[1], -x[2]))[2]) % 12
        if final == major:
            tonic, mode, source = major, "major", "final bass = major tonic of the signature"
        elif final == (major + 9) % 12:
            tonic, mode, source = final, "minor", "final bass = minor tonic of the signature"
        else:
            tonic, source = final, "final bass; mode from the third"
            mode = _third_mode(melody, tonic)
        mode_name = mode
    elif ks is None:  # no K: field: the final note is the tonic
        tonic = int(max(melody.tolist(), key=lambda x: (x[0] + x[1], -x[2]))[2]) % 12
        mode = mode_name = _third_mode(melody, tonic)
        source = "final note; mode from the third"
    else:
        k = ks if isinstance(ks, m21key.Key) else ks.asKey("major")
        tonic, mode_name = int(k.tonic.pitchClass), str(k.mode)
        if piece.collection == "essen" or mode_name not in _MAJORISH | _MINORISH:
            mode, source = _third_mode(melody, tonic), "K: tonic; mode from the third"
            mode_name = mode if piece.collection == "essen" else mode_name
        else:
            mode, source = ("major" if mode_name in _MAJORISH else "minor"), "K: field"
    # fingerprint: transposition-invariant intervals and durations of the melody's top line
    top: dict[float, tuple[float, int]] = {}
    for on, d, m in melody:
        if on not in top or m > top[on][1]:
            top[on] = (d, int(m))
    seq = [top[k] for k in sorted(top)]
    fp = [(b[1] - a[1], round(a[0] * 12)) for a, b in zip(seq, seq[1:], strict=False)]
    form = ""
    if piece.number is not None:
        chunk = _tune_text(piece.path, piece.number)
        form = next((ln[2:].strip().lower() for ln in chunk.splitlines() if ln.startswith("R:")), "")
        form = form.split(",")[0].strip()
    if not form and "--" in piece.title:
        form = piece.title.split("--")[-1].strip(" .").lower()
    return {"id": piece.id, "parts": notes_by_part, "part_names": names, "melody": melody_idx,
            "measures": measures, "end": round(end, 6), "metre": metre, "beat_ql": beat_ql,
            "bar_ql": bar_ql, "tonic": tonic, "mode": mode, "mode_name": mode_name,
            "key_source": source, "form": form,
            "fingerprint": hashlib.sha1(json.dumps(fp).encode()).hexdigest()[:16]}


def load_score(piece: Piece | str, cache_dir: str | os.PathLike | None = None,
               use_cache: bool = True) -> dict[str, Any]:
    """The parsed note lists of a piece (cached per piece); raises :class:`DataError` when it
    does not parse (the failure is cached too: it is the same next time)."""
    if isinstance(piece, str):
        piece = next((p for p in _catalogue() if p.id == piece), None) or _missing(piece)
    path = _score_file(piece, cache_dir)
    if use_cache and path.is_file():
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            d = None
        if d is not None and d.get("id") == piece.id:
            if "error" in d:
                raise DataError(d["error"])
            return d
    try:
        d = _extract(_parse_m21(piece), piece)
    except Exception as e:  # noqa: BLE001 - any failure is the piece's, listed by the caller
        d = {"id": piece.id, "error": f"{type(e).__name__}: {e}"[:300]}
    if use_cache:
        text = json.dumps(d).encode()
        _atomic_write(path, lambda f: f.write(text))
    if "error" in d:
        raise DataError(d["error"])
    return d


def _missing(piece_id: str) -> Piece:
    raise ValueError(f"no piece {piece_id!r} in the repertoire (see repertoire_pieces())")

