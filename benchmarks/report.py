"""Render benchmarks/results/*.json into README.md's results section (between the markers).

    python benchmarks/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def teacher_section(r: dict) -> list[str]:
    out = ["### Teacher (EDM, laptop preset)", "",
           f"Measured on {r['machine']}; {r['n']} generated clips, {r['sampler']}, Frechet distance "
           f"with the **{r['embedder']}** embedder (per-bin mean and std over time). Normalised FD: "
           "0 = real data vs real data, 1 = average spectrum plus noise.", "",
           "| samples | FD | normalised FD |", "|---|---|---|",
           f"| real data vs held-out (floor) | {r['fd_uncond']['fd_floor']:.2f} | 0 |",
           f"| average spectrum + noise (ceiling) | {r['fd_uncond']['fd_ceiling']:.2f} | 1 |",
           f"| teacher, unconditional | {r['fd_uncond']['fd_model']:.2f} | "
           f"{r['fd_uncond']['fd_norm']:.3f} |"]
    for key in sorted(k for k in r if k.startswith("fd_cond_w")):
        w = key.removeprefix("fd_cond_w")
        out.append(f"| teacher, held-out tags, CFG w = {w} | {r[key]['fd_model']:.2f} | "
                   f"{r[key]['fd_norm']:.3f} |")
    if "tag_fields" in r:
        fields = r["tag_fields"]
        out += ["", "Tag accuracy of an attribute classifier trained on real clips:", "",
                "| | " + " | ".join(fields) + " |", "|---" * (len(fields) + 1) + "|",
                "| chance | " + " | ".join(f"{c:.2f}" for c in r["chance"]) + " |",
                "| real held-out clips | " + " | ".join(f"{a:.2f}" for a in r["acc_real_heldout"])
                + " |"]
        for key in sorted(k for k in r if k.startswith("acc_cond_w")):
            out.append(f"| teacher, CFG w = {key.removeprefix('acc_cond_w')} | "
                       + " | ".join(f"{a:.2f}" for a in r[key]) + " |")
    out += ["", f"Speed: training {r.get('train_samples_per_s', float('nan')):.0f} clips/s "
            f"({r.get('train_seconds', 0) / 60:.1f} min in all); one network evaluation "
            f"{r['ms_per_eval_b1']:.1f} ms at batch 1, {r['ms_per_eval_b16']:.1f} ms at batch 16; "
            f"sampling {1000 * r['sample_seconds_per_clip']:.0f} ms per clip (batched); peak memory "
            f"{r['peak_rss_mb']:.0f} MB (evaluation process)."]
    return out


def distill_summary(r: dict) -> str:
    rows = r["fd_vs_nfe"]
    best = min(x["fd_norm"] for x in rows if x["model"] == "teacher")
    teacher_12 = min(x["fd_norm"] for x in rows if x["model"] == "teacher" and x["steps"] <= 2)

    def pick(model, sampler, steps):
        return next(x["fd_norm"] for x in rows if x["model"] == model and x["sampler"] == sampler
                    and x["steps"] == steps)

    ctm2 = pick("ctm", "gamma=0", 2)
    return (f"Teacher's best normalised FD {best:.3f}; at 1-2 steps it is {teacher_12:.3f} or worse. "
            f"CM: {pick('cm', 'multistep', 1):.3f} at 1 step, {pick('cm', 'multistep', 2):.3f} at 2. "
            f"CTM (gamma 0): {pick('ctm', 'gamma=0', 1):.3f} at 1 step, {ctm2:.3f} at 2 "
            f"({ctm2 / best:.2f}x the teacher's best; the goal was 1.5x). Distillation time: CM "
            f"{r['train_seconds_cm'] / 60:.0f} min, CTM {r['train_seconds_ctm'] / 60:.0f} min on 2 CPU cores "
            "(both partly shared with other jobs).")


def ditto_section(r: dict) -> list[str]:
    out = ["### DITTO vs DITTO-2: speed, real-time factor, memory (benchmarks/bench_ditto.py)", "",
           f"One target per control at the paper's iteration counts, the same initial noise; DITTO through "
           f"the teacher's {r['ditto_steps']}-step Euler sampler with CFG w = {r['cfg_w']:g} (checkpointed); "
           "DITTO-2 through the 1-step student, then a 2-step decode (R = decode-aware refinement "
           "iterations through that decode). Wall time includes the Griffin-Lim vocoder. "
           f"Machine: {r['machine']}, {r['torch_threads']} torch threads.", "",
           "| control | method | iterations | wall time | speed-up | network calls / iteration | "
           "surrogate | decoded |", "|---|---|---|---|---|---|---|---|"]
    for row in r.get("speed", []):
        sur = f"{row['surrogate']:.2f}" if "surrogate" in row else "-"
        out.append(f"| {row['control']} ({row['metric']}) | {row['method']} | {row['iterations']} | "
                   f"{row['wall_s']:.1f} s | {row['speedup_vs_ditto']:.0f}x | "
                   f"{row['nfe_per_iteration']:.1f} | {sur} | {row['decoded']:.3f} |")
    if r.get("note"):
        out += ["", "Note: " + r["note"]]
    if r.get("rtf"):
        out += ["", f"Real-time factor of DITTO-2 (CTM, intensity, 70 iterations, vocoder included; "
                f"{r['clip_seconds']:.2f} s clips): " + "; ".join(
                    f"{x['rtf_per_clip']:.3f} per clip at batch {x['batch']} ({x['wall_s']:.1f} s)"
                    for x in r["rtf"]) + "."]
    if r.get("memory"):
        out += ["", "DITTO memory vs S (2 iterations in a fresh process; autograd's saved tensors of one "
                "sampler pass):", "", "| S | checkpointed | peak RSS | after loading | kept for backward |",
                "|---|---|---|---|---|"]
        for m in r["memory"]:
            out.append(f"| {m['steps']} | {'yes' if m['checkpointed'] else 'no'} | "
                       f"{m['peak_rss_mb']:.0f} MB | {m['rss_after_loading_mb']:.0f} MB | "
                       f"{m['saved_for_backward_mb']:.1f} MB |")
    return out


def controls_section(r: dict) -> list[str]:
    controls = list(r["iterations"])
    setting = ", ".join(f"{c} {r['iterations'][c]} iterations (DITTO S = {r['ditto_steps'][c]})"
                        for c in controls)
    out = ["### Control quality over many targets (benchmarks/eval_controls.py)", "",
           f"{r['targets']} held-out targets per control (their tags and melodies; intensity shapes and "
           f"structures cycled), the same initial noise for every method: {setting}; DITTO uses 10 "
           "Euler steps for the 150-iteration controls to fit the CPU budget. DITTO-2 decodes with 2 "
           "student steps. Errors measured with librosa on the Griffin-Lim audio (intensity MSE in dB^2 "
           "and SSM MSE: lower is better; melody frame accuracy: higher is better), mean (median). "
           f"Machine: {r['machine']}.", "",
           "| method | " + " | ".join(controls) + " |", "|---" * (1 + len(controls)) + "|"]
    methods: dict[str, dict] = {}
    for row in r["rows"].values():
        name = row["method"]
        if name.startswith(("teacher", "DITTO S")):
            name = name.split(" S=")[0] + (" (no optimisation)" if "no optimisation" in name else "")
        methods.setdefault(name, {})[row["control"]] = (f"{row['decoded_mean']:.3f} "
                                                        f"({row['decoded_median']:.3f})")
    for name, cells in methods.items():
        out.append(f"| {name} | " + " | ".join(cells.get(c, "-") for c in controls) + " |")
    if "fd" in r:
        out += ["", "Frechet distance of each method's outputs (all controls pooled) to held-out clips, "
                "**mel-stats** embedder, normalised (0 = real data, 1 = average spectrum + noise):", "",
                "| method | clips | normalised FD |", "|---|---|---|"]
        for m, x in r["fd"].items():
            out.append(f"| {m} | {x['n']} | {x['fd_norm']:.3f} |")
    return out


def clap_section(r: dict) -> list[str]:
    out = ["### Text-audio scorers (benchmarks/eval_clap.py)", "",
           f"Held-out text-to-audio retrieval among {r['n']} clips (chance R@1 "
           f"{r['chance']['recall@1']:.3f}, R@5 {r['chance']['recall@5']:.3f}) with the dataset's "
           "captions, paraphrases, and unseen words "
           "and sentence frames; zero-shot attribute accuracy (the best-scoring class prompt). "
           f"Machine: {r['machine']}.", "",
           "| scorer | params | train time | R@1 / R@5 captions | paraphrases | unseen wording | "
           "instrument, tempo, mode, drums, dynamics |", "|---|---|---|---|---|---|---|"]
    for name, x in r["scorers"].items():
        ret, zs = x["heldout"]["retrieval"], x["heldout"]["zero_shot"]
        cells = [f"{ret[k]['recall@1']:.2f} / {ret[k]['recall@5']:.2f}"
                 for k in ("template0", "paraphrase", "unseen")]
        out.append(f"| {name} ({x['arch']}) | {x['parameters'] / 1e6:.2f} M | "
                   f"{x['train_seconds'] / 60:.1f} min | " + " | ".join(cells) + " | "
                   + ", ".join(f"{v:.2f}" for v in zs.values()) + " |")
    return out


def text_section(r: dict) -> list[str]:
    out = ["### Text control of the unconditional model (benchmarks/eval_text.py)", "",
           f"{r['prompts'] // 2} held-out clips, each prompted twice: a dataset caption (\"template\") and "
           "an unseen paraphrase. Scores by the independent evaluator scorer on the re-analysed audio: "
           "CLAP score (cosine) and agreement of its zero-shot reading of the five attributes with the "
           "prompt's labels. The conditional models get the clip's tags (a perfect text-to-tag parser, "
           f"their best case); the optimised one gets only the text ({r['iterations']} DITTO-2 "
           f"iterations, MiniCLAP loss). FD: mel-stats, normalised, {r['prompts']} clips (noisy at this "
           f"size). Machine: {r['machine']}.", "",
           "| method | CLAP score: template / unseen | attribute agreement: template / unseen | FD | "
           "seconds per clip |", "|---|---|---|---|---|"]
    for x in r["rows"]:
        t, u = x["template"], x["unseen"]
        out.append(f"| {x['method']} | {t['clap_score']:.3f} / {u['clap_score']:.3f} | "
                   f"{t['attribute_agreement_mean']:.2f} / {u['attribute_agreement_mean']:.2f} | "
                   f"{x['fd']['fd_norm']:.3f} | {x['seconds_per_clip']:.2f} |")
    return out


def data_section(r: dict) -> list[str]:
    m = r["machine"]
    return ["### Procedural data generation (benchmarks/bench_data.py)", "",
            f"{r['n_clips']} clips of {r['seconds_per_clip']:g} s at {r['sample_rate']} Hz, median "
            f"of {r['repeats']} runs on {m['cpu_count']} CPU cores ({m['processor']}), "
            f"{'GPU ' + str(m['gpu']) if m.get('gpu') else 'no GPU'}, {m['torch_threads']} torch "
            f"threads (load average at start {m['load_average_at_start'][0]:.2f}):", "",
            "| what | median | clips/s |", "|---|---|---|",
            f"| waveforms | {r['waves']['median_s']:.1f} s | {r['waves']['clips_per_s']:.0f} |",
            f"| waveforms + mels | {r['waves_mels']['median_s']:.1f} s | "
            f"{r['waves_mels']['clips_per_s']:.0f} |"]


def render() -> str:
    lines = ["## Results", ""]
    if (r := _load("teacher_laptop.json")) is not None:
        lines += teacher_section(r) + [""]
    if (RESULTS / "distill_laptop.md").exists():
        lines += ["### Distillation (laptop preset, benchmarks/eval_distill.py)", ""]
        if (r := _load("distill_laptop.json")) is not None:
            distill_plot(r)
            lines += [distill_summary(r), "", "![distillation](benchmarks/results/distill_laptop.png)", ""]
        lines += [(RESULTS / "distill_laptop.md").read_text(), ""]
    if (r := _load("ditto_laptop.json")) is not None and "speed" in r:
        lines += ditto_section(r) + [""]
    if (r := _load("controls_laptop.json")) is not None:
        lines += controls_section(r) + [""]
    if (r := _load("clap_laptop.json")) is not None:
        lines += clap_section(r) + [""]
    if (r := _load("text_laptop.json")) is not None:
        lines += text_section(r) + [""]
    if (r := _load("train_memory_laptop.json")) is not None:
        lines += ["### Training memory (benchmarks/bench_train_memory.py)", "",
                  "Peak resident memory of training each laptop model (a short run in a fresh process; "
                  f"the peak is reached in the first steps), {r['machine']}: "
                  + ", ".join(f"{k} {v:.0f} MB" for k, v in r["peak_rss_mb"].items()) + ".", ""]
    if (r := _load("data.json")) is not None:
        lines += data_section(r) + [""]
    return "\n".join(lines)


def distill_plot(r: dict) -> Path:
    """FD vs NFE, and the 2-step gap vs distillation steps: benchmarks/results/distill_laptop.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    curves: dict[str, list] = {}
    for x in r["fd_vs_nfe"]:
        if x["fd_norm"] < 2:  # the 2- and 4-step Heun blow-ups are off the chart
            curves.setdefault(f"{x['model']} {x['sampler']}", []).append((x["nfe"], x["fd_norm"]))
    for name, pts in curves.items():
        a.plot(*zip(*sorted(pts)), marker="o", label=name)
    a.set(xscale="log", xlabel="network evaluations", ylabel="normalised FD (mel-stats)",
          title="quality vs NFE")
    a.legend(fontsize=7)
    for kind in ("cm", "ctm"):
        pts = [(x["steps_trained"], x["intensity_mse_db2"]) for x in r.get(f"snapshots_{kind}", [])]
        if pts:
            b.plot(*zip(*pts), marker="o", label=kind)
    b.set(xlabel="distillation steps", ylabel="intensity MSE (dB^2)",
          title="2-step decode vs 1-step jump (sigma_mid 2.5)")
    b.legend()
    fig.tight_layout()
    path = RESULTS / "distill_laptop.png"
    fig.savefig(path, dpi=80)
    return path


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + render() + "\n" + END + tail)
    print("README results section updated")


if __name__ == "__main__":
    main()
