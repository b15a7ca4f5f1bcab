"""MiniCLAP and its evaluator: held-out text-to-audio retrieval and zero-shot attribute accuracy.

    python benchmarks/eval_clap.py [--preset laptop] [--n 256] [--vocoded 64]

For both scorers (the loss scorer and the independent evaluator), on ``n`` held-out clips:

* text-to-audio retrieval (recall@1, recall@5, median rank, match@1) with four caption sets: the
  data module's template-0 captions, MiniCLAP-style paraphrases naming every attribute, an
  *unseen* phrasing (words and sentence frames neither scorer trained on), and the evaluator's own
  attribute-list wording (the evaluator's text encoder is its own, trained from scratch on that
  wording only, so the first three test how far it reads other phrasings);
* zero-shot accuracy per attribute (instrument, tempo, mode, drums, dynamics): the class whose
  prompt scores highest;
* the same on the first ``vocoded`` clips after a Griffin-Lim round trip and librosa re-analysis
  (how generated, vocoded audio is scored);
* how much the two scorers agree: correlation of their clip-caption similarity matrices.

Writes benchmarks/results/clap_<preset>.json and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ditto2_nb import clap, data
from ditto2_nb.audio import GriffinLimVocoder, reanalyse_mel
from ditto2_nb.clap.paraphrase import _data_template_masks
from ditto2_nb.core.assets import machine
from ditto2_nb.core.config import get_preset
from ditto2_nb.data import heldout_data, tag_values
from ditto2_nb.data.captions import UNSEEN_DYN, UNSEEN_INST, UNSEEN_TEMPO

OUT = Path(__file__).parent / "results"


def caption_sets(labels, seed: int = 123) -> dict[str, tuple[list[str], np.ndarray]]:
    """Caption set name -> (one caption per clip, mention masks)."""
    out = {"template0": ([data.caption(x) for x in labels],
                         np.stack([_data_template_masks()[0]] * len(labels)))}
    for style in ("full", "unseen"):
        pairs = [clap.clap_caption(x, np.random.default_rng([seed, i]), style) for i, x in enumerate(labels)]
        name = "paraphrase" if style == "full" else "unseen"
        out[name] = ([t for t, _ in pairs], np.stack([m for _, m in pairs]))
    pairs = [clap.judge_caption(x) for x in labels]  # the evaluator's own wording (attribute lists)
    out["evaluator_wording"] = ([t for t, _ in pairs], np.stack([m for _, m in pairs]))
    return out


@torch.no_grad()
def evaluate(scorer, mels, labels, captions) -> dict:
    audio = clap.embed_mels(scorer, mels)
    values = clap.field_values(labels)
    retrieval = {}
    for name, (texts, masks) in captions.items():
        try:
            retrieval[name] = clap.retrieval_metrics(scorer, mels, texts, values, masks, audio_emb=audio)
        except ValueError as e:  # a scorer with its own vocabulary may know no word of some caption
            print(f"{scorer.name}, {name}: {e}")
    zero_shot = clap.zero_shot_accuracy(scorer, mels, labels, audio_emb=audio)
    return {"retrieval": retrieval, "zero_shot": zero_shot}


@torch.no_grad()
def vocoded(mels: torch.Tensor, cfg) -> torch.Tensor:
    """Griffin-Lim round trip and librosa re-analysis, as for decoded samples."""
    voc = GriffinLimVocoder(cfg)
    waves = torch.cat([voc(mels[i: i + 16]) for i in range(0, len(mels), 16)])
    return reanalyse_mel(waves, cfg)


@torch.no_grad()
def agreement(a, b, mels, texts) -> float:
    """Pearson correlation of the two scorers' [text, clip] cosine matrices."""
    sims = [(s.embed_text(texts).cpu() @ clap.embed_mels(s, mels).T).flatten() for s in (a, b)]
    return float(torch.corrcoef(torch.stack(sims))[0, 1])


UNSEEN_WORDS = {"instrument": UNSEEN_INST, "tempo": UNSEEN_TEMPO, "dynamics": UNSEEN_DYN}


@torch.no_grad()
def zero_shot_unseen_words(scorer, mels, labels) -> dict:
    """Zero-shot accuracy with prompts made of words never used in training ("a rapid melody")."""
    audio = clap.embed_mels(scorer, mels)
    truth = [tag_values(x) for x in labels]
    out = {}
    for attr, words in UNSEEN_WORDS.items():
        classes = list(words)
        prompts = [f"a {words[c][0]} melody" for c in classes]
        pred = (audio @ scorer.embed_text(prompts).T).argmax(1)
        out[attr] = float(np.mean([classes[int(k)] == t[attr] for k, t in zip(pred, truth)]))
    drums = ["a melody, no percussion at all", "a melody featuring a drum kit"]  # no drums, drums
    pred = (audio @ scorer.embed_text(drums).T).argmax(1)
    out["drums"] = float(np.mean([int(k) == int(t["drums"] == "drums") for k, t in zip(pred, truth)]))
    return out


def minilm_rate(labels, n: int = 1000) -> float:
    """Captions per second of the frozen MiniLM text encoder (fresh captions, not cached)."""
    texts, _ = clap.caption_pool(labels, max(1, n // len(labels)), seed=999)
    t0 = time.perf_counter()
    clap.minilm_embed(texts[:n])
    return len(texts[:n]) / (time.perf_counter() - t0)


def chance(n: int) -> dict:
    zs = {a: 1 / len(clap.attribute_prompts(a)) for a in clap.ATTRIBUTES}
    return {"recall@1": 1 / n, "recall@5": min(5, n) / n, "median_rank": (n + 1) / 2, "zero_shot": zs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--vocoded", type=int, default=64, help="clips also scored after Griffin-Lim (0 = off)")
    a = ap.parse_args(argv)
    p = get_preset(a.preset)
    held = heldout_data(p)
    n = min(a.n, len(held))
    mels, labels = held.mels[:n], held.labels[:n]
    captions = caption_sets(labels)
    scorers = {"miniclap": clap.load_miniclap(a.preset),
               "evaluator": clap.load_miniclap(a.preset, evaluator=True)}
    result = {"preset": a.preset, "machine": machine(), "n": n, "chance": chance(n),
              "examples": {k: v[0][:3] for k, v in captions.items()}, "scorers": {}}
    if a.vocoded:
        t0 = time.perf_counter()
        voc_mels = vocoded(mels[: a.vocoded], p.mel)
        result["vocoded_seconds"] = round(time.perf_counter() - t0, 1)
        voc_caps = {k: (t[: a.vocoded], m[: a.vocoded]) for k, (t, m) in captions.items()}
        result["chance_vocoded"] = chance(len(voc_mels))
        result["n_vocoded"] = len(voc_mels)
    rate = minilm_rate(labels)
    n_captions = len(clap.caption_pool(labels[:1], clap.clap_recipe(p).captions_per_clip)[0]) * p.data.n_train
    result["minilm"] = {"captions_per_second": round(rate, 1), "training_captions": n_captions,
                        "estimated_seconds_for_training_captions": round(n_captions / rate, 1)}
    for name, s in scorers.items():
        meta = s.meta
        row = {"file": f"ditto2_nb/assets/{meta['kind']}_{a.preset}.safetensors",
               "arch": meta["clap"]["arch"], "text_encoder": s.text_encoder_name,
               "parameters": meta.get("parameters"), "train_seconds": meta.get("train_seconds"),
               "caption_seconds": meta.get("caption_seconds"), "steps": meta.get("steps"),
               "seed": meta["train"]["seed"], "trained_on": meta.get("machine"),
               "heldout": evaluate(s, mels, labels, captions)}
        try:
            row["heldout"]["zero_shot_unseen_words"] = zero_shot_unseen_words(s, mels, labels)
        except ValueError as e:
            row["heldout"]["zero_shot_unseen_words"] = {}
            print(f"{name}: unseen-word prompts unreadable ({e})")
        if a.vocoded:  # the same clips, clean and after a Griffin-Lim round trip
            row["clean_subset"] = evaluate(s, mels[: a.vocoded], labels[: a.vocoded], voc_caps)
            row["vocoded"] = evaluate(s, voc_mels, labels[: a.vocoded], voc_caps)
        result["scorers"][name] = row
    result["agreement_template0"] = agreement(scorers["miniclap"], scorers["evaluator"], mels,
                                              captions["template0"][0])
    OUT.mkdir(exist_ok=True)
    path = OUT / f"clap_{a.preset}.json"
    path.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    print(f"wrote {path}")


def markdown(r: dict) -> str:
    ch = r["chance"]
    lines = [f"MiniCLAP scorers, preset `{r['preset']}`, {r['n']} held-out clips; {r['machine']}", "",
             "| scorer | captions | recall@1 | recall@5 | median rank | match@1 |",
             "|---|---|---|---|---|---|"]
    for name, row in r["scorers"].items():
        for cap, m in row["heldout"]["retrieval"].items():
            lines.append(f"| {name} | {cap} | {m['recall@1']:.3f} | {m['recall@5']:.3f} "
                         f"| {m['median_rank']:.0f} | {m['match@1']:.3f} |")
    lines.append(f"| chance | | {ch['recall@1']:.3f} | {ch['recall@5']:.3f} | {ch['median_rank']:.0f} | |")
    lines += ["", "| scorer | " + " | ".join(clap.ATTRIBUTES) + " |",
              "|---" * (len(clap.ATTRIBUTES) + 1) + "|"]
    lines.append("| chance | " + " | ".join(f"{ch['zero_shot'][x]:.2f}" for x in clap.ATTRIBUTES) + " |")
    for name, row in r["scorers"].items():
        for where, key in (("heldout", "zero_shot"), ("heldout", "zero_shot_unseen_words"),
                           ("clean_subset", "zero_shot"), ("vocoded", "zero_shot")):
            if where in row:
                zs = row[where][key]
                cells = " | ".join(f"{zs[x]:.2f}" if x in zs else "-" for x in clap.ATTRIBUTES)
                label = {"zero_shot_unseen_words": "held-out, unseen words", "heldout": "held-out",
                         "clean_subset": f"first {r.get('n_vocoded')} clips",
                         "vocoded": f"same {r.get('n_vocoded')}, Griffin-Lim + librosa"}
                lines.append(f"| {name} ({label[key if key != 'zero_shot' else where]}) | {cells} |")
    lines.append("")
    lines.append(f"Agreement of the two scorers (correlation of clip-caption cosines): "
                 f"{r['agreement_template0']:.2f}")
    mini = r["minilm"]
    for name, row in r["scorers"].items():
        lines.append(f"{name}: {row['arch']}, {row['parameters']} parameters, {row['steps']} steps in "
                     f"{row['train_seconds'] / 60:.1f} min on one thread")
    lines.append(f"Embedding the {mini['training_captions']} training captions with MiniLM once (cached, "
                 f"shared by both scorers): about "
                 f"{mini['estimated_seconds_for_training_captions'] / 60:.1f} min "
                 f"({mini['captions_per_second']:.0f} captions/s)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
