"""Human-readable reports of a training run: the summary train.py prints and MODEL_CARD.md.

Both come from the same ``metrics.json`` content, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["summary_table", "intensity_table", "render_model_card"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


DEGRADATION_NAMES = {
    "noise_10db": "white noise, 10 dB SNR",
    "telephone": "telephone band, 8 kHz",
    "opus_12k": "Opus, 12 kbit/s",
    "mp3_32k": "MP3, 32 kbit/s",
}


def _compare_row(name: str, si: dict, rs: dict | None) -> str:
    random = _pct(rs["accuracy"]) if rs else "n/a"
    return (
        f"| {name} | {_pct(si['mean']['accuracy'])} | {_pct(si['mean']['uar'])} | {_pct(si['worst']['uar'])} "
        f"| {si['mean']['ece']:.3f} | {random} |"
    )


def _ece(x: float) -> str:
    return f"{x:.3f}"


def _fold_rows(block: dict, extra: tuple[tuple[str, str, Callable[[float], str]], ...]) -> list[str]:
    """A Markdown table of a cross-validation: a row a fold (test actors, accuracy, UAR, then each
    ``(header, key, format)`` of ``extra``) and the mean, with the spread of accuracy and UAR."""
    lines = [
        "| fold | test actors | accuracy | UAR | " + " | ".join(header for header, _, _ in extra) + " |",
        "| --- " * (4 + len(extra)) + "|",
    ]
    for i, f in enumerate(block["folds"], 1):
        actors = ", ".join(str(a) for a in f["test_actors"])
        cells = [_pct(f["accuracy"]), _pct(f["uar"]), *(fmt(f[key]) for _, key, fmt in extra)]
        lines.append(f"| {i} | {actors} | " + " | ".join(cells) + " |")
    m, s = block["mean"], block["std"]
    cells = [
        f"**{_pct(m['accuracy'])}** ± {_pct(s['accuracy'])}",
        f"**{_pct(m['uar'])}** ± {_pct(s['uar'])}",
        *(fmt(m[key]) for _, key, fmt in extra),
    ]
    lines.append("| **mean** | | " + " | ".join(cells) + " |")
    return lines


def summary_table(metrics: dict) -> str:
    """Markdown tables: speaker-independent folds, mean, worst, per-class recall, random split."""
    lines: list[str] = []
    si = metrics.get("speaker_independent")
    if si:
        lines += [
            f"Speaker-independent ({si['protocol']}), architecture `{metrics['architecture']}`:",
            "",
            *_fold_rows(si, (("macro-F1", "macro_f1", _pct), ("ECE", "ece", _ece))),
        ]
        w = si["worst"]
        lines += [
            "",
            f"Worst fold: {w['fold']} (actors {', '.join(map(str, w['test_actors']))}), UAR {_pct(w['uar'])}.",
            "",
        ]
        lines += ["| class | recall (mean over folds) |", "| --- | --- |"]
        lines += [f"| {label} | {_pct(r)} |" for label, r in si["per_class_recall"].items()]
        lines.append("")
    if si and si.get("degraded"):
        lines += [
            "Degraded audio, same held-out folds (the same models, test recordings degraded before analysis):",
            "",
            "| condition | accuracy | UAR |",
            "| --- | --- | --- |",
            f"| clean | {_pct(si['mean']['accuracy'])} | {_pct(si['mean']['uar'])} |",
        ]
        lines += [
            f"| {DEGRADATION_NAMES.get(k, k)} | {_pct(v['accuracy'])} | {_pct(v['uar'])} |"
            for k, v in si["degraded"].items()
        ]
        lines.append("")
    base = metrics.get("seed", metrics.get("baseline"))  # "baseline" in bundles built before the rename
    if base and base.get("speaker_independent"):
        b, bs = base["speaker_independent"], base.get("speaker_dependent_random_split")
        lines += [
            "Compared with the seed design (`seed`: 105 features, dense 512-256-128-64 network), same protocol:",
            "",
            "| model | mean accuracy | mean UAR | worst-fold UAR | ECE | random split (speaker-dependent) |",
            "| --- | --- | --- | --- | --- | --- |",
            _compare_row(
                f"{metrics['architecture']} on {metrics.get('features', 'seed')} features (shipped)",
                si,
                metrics.get("speaker_dependent_random_split"),
            ),
            _compare_row("seed design", b, bs),
            "",
        ]
    rs = metrics.get("speaker_dependent_random_split")
    if rs:
        lines += [
            f"For comparison only ({rs['protocol']}): "
            f"accuracy {_pct(rs['accuracy'])}, UAR {_pct(rs['uar'])}. The gap to the figure above is "
            "the network recognising the actors, not the emotions.",
            "",
        ]
    final = metrics.get("final_model") or {}
    if "c" in final:
        lines.append(
            f"Shipped model: C = {final['c']} and temperature {final['temperature']:.2f}, both chosen on inner actor folds."
        )
    timing = metrics.get("timing")
    if timing:
        lines.append(f"Training took {timing['total_seconds']:.0f} s in all, feature cache included.")
    return "\n".join(lines).rstrip() + "\n"


def calibration_table(metrics: dict) -> str:
    """The adapted model's numbers: RAVDESS k-fold by actor and leave-one-corpus-out, each with the
    default model, relative to 1, 2 and 4 reference clips, and same-speaker on balanced and
    one-emotion-dominated sessions."""
    cal = metrics.get("calibration")
    if not cal:
        return ""
    lines = [
        "| evaluation | uncalibrated | 1 reference | 2 references | 4 references | "
        "same-speaker, balanced | same-speaker, one emotion dominating (uncalibrated on the same clips) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, name in _calibration_rows(cal):
        block = cal[key].get("mean", cal[key])
        refs = block.get("calibrated", {})
        balanced, dominated = block["balanced_sessions"], block["dominated_sessions"]
        lines.append(
            f"| {name} | {_pct(block['uncalibrated']['uar'])} | "
            + " | ".join(_pct(refs[k]["uar"]) if k in refs else "–" for k in ("1", "2", "4"))
            + f" | {_pct(balanced['same_speaker']['uar'])} | {_pct(dominated['same_speaker']['uar'])} "
            f"({_pct(dominated['uncalibrated']['uar'])}) |"
        )
    notes = [cal[key]["protocol"] for key, _ in _calibration_rows(cal)]
    return (
        "\n".join(lines)
        + "\n\nUAR over the classes present. The uncalibrated column is the default model as it would serve the "
        "held-out speakers (its own cross-validation on RAVDESS, the shipped RAVDESS-only model on the other "
        "corpora, the default recipe trained on the other corpora when RAVDESS is held out); reference clips are "
        "the speaker's own neutral recordings and are not scored; with 4 references no RAVDESS neutral clip is "
        "left to score. " + "; ".join(notes) + ".\n"
    )


def _calibration_rows(cal: dict) -> list[tuple[str, str]]:
    rows = [("ravdess_kfold", "RAVDESS, k-fold by actor (7 classes)")]
    rows += [(key, f"trained {key.replace('_', ' ')}, scored on it") for key in cal if key.startswith("without_")]
    return [(key, name) for key, name in rows if key in cal]


def intensity_table(metrics: dict) -> str:
    """The intensity model's speaker-independent numbers: folds, mean, recall of each level."""
    block = metrics.get("intensity")
    if not block:
        return ""
    lines = _fold_rows(
        block,
        (
            ("UAR given the true emotion", "true_emotion_uar", _pct),
            ("called neutral (no intensity shown)", "called_neutral", _pct),
        ),
    )
    recall = ", ".join(f"{level} {_pct(r)}" for level, r in block["per_level_recall"].items())
    return "\n".join(lines) + f"\n\nRecall of each level (mean over folds): {recall}. {block['protocol']}.\n"


def _intensity_section(metrics: dict) -> str:
    table = intensity_table(metrics)
    model = metrics.get("intensity_model")
    if not model:
        return "This bundle has no intensity model: verdicts carry no intensity.\n"
    return (
        "Each verdict says how strongly the emotion is expressed: `normal` or `strong`, as RAVDESS's actors were "
        "asked to deliver it, with a strength from 0 to 1 (the probability of strong delivery; strong from 0.5). "
        "Trained on RAVDESS only (EmoDB has no intensity labels), on the same features as the emotion model: one "
        f"class-balanced logistic head per emotion ({', '.join(model['emotions'])}), C = {model['c']} chosen on "
        "inner actor folds, each head weighted by the emotion model's probability of its emotion. Neutral speech "
        "has no strong version in RAVDESS, so a neutral verdict carries no intensity (null).\n\n"
        + table
        + "\nThe design (a head per emotion) was chosen among four by comparing them on these same folds; only C is "
        "chosen inside them, so the numbers above are optimistic. `benchmarks/intensity_nested.py` measures the "
        "estimate with the design chosen on inner actor folds as well; the README gives it for the shipped bundle.\n"
    )


def _augmentation(training: dict, data: dict) -> str:
    aug = training.get("augment_config") or {}
    if not training.get("augment", False):
        return "No augmentation."
    copies = [
        "a time-stretched",
        "a pitch-shifted",
        f"a noisy ({aug['noise_snr_db'][0]:g}-{aug['noise_snr_db'][1]:g} dB SNR)",
    ]
    if aug.get("channel"):
        copies.append("a band-passed (a random cheap-microphone or phone-line band)")
    return (
        f"Augmentation, training actors only: {', '.join(copies)} copy of each recording, "
        f"{data['rows_with_augmentation']} rows in all."
    )


CORPUS_CITATIONS = {
    "emodb": "EmoDB (Burkhardt et al., 2005, Proc. Interspeech 1517-1520; German, distributed by its authors for "
    "research; a copy resampled to 22.05 kHz and cut to 2 s)",
    "nemo": "nEMO (Christop, 2024, Proc. LREC-COLING 12111-12116; Polish, CC BY-NC-SA 4.0; a 16 kHz copy without "
    "its sad recordings)",
}


def _calibration_section(metrics: dict) -> str:
    table = calibration_table(metrics)
    model = metrics.get("adapted_model")
    if not model:
        return "This bundle has no adapted model.\n"
    others = [
        f"{CORPUS_CITATIONS[key]}: {block['files']} files of {len(block['speakers'])} speakers"
        for key, block in metrics["data"].items()
        if key in CORPUS_CITATIONS
    ]
    corpora = "RAVDESS" + "".join(f", {o}" for o in others)
    return (
        "A second model judges each clip normalised by the speaker's own voice: the location and spread of their "
        "features, estimated from a few neutral recordings (`calibrate`, `--reference`), from the recordings being "
        "judged once they hold enough speech (`adapt`, `--same-speaker`, the demo learning a visitor's voice), or "
        "from both; each estimate is shrunk toward the training population by how much it says. It is trained on "
        f"{corpora}, each training speaker's clips normalised the same ways (half the units from 1, 2 or 4 of "
        "their neutral clips, half from all their clips), with every corpus and every class weighted explicitly: "
        f"corpus exponent alpha = {model.get('alpha')}, class balance {model.get('balance')}, C = {model.get('c')}, "
        f"temperature {model.get('temperature', float('nan')):.2f}, all chosen on inner speaker folds.\n\n" + table
    )


def _other_corpora(data: dict) -> str:
    names = [CORPUS_CITATIONS[key] for key in data if key in CORPUS_CITATIONS]
    return "; ".join(names) if names else "no other corpus"


def render_model_card(metrics: dict, training: dict) -> str:
    """MODEL_CARD.md: what the model is, the data and its licence, the protocol, the numbers, the limits."""
    labels = ", ".join(metrics["classes"])
    data = metrics["data"]
    model = metrics.get("model", {})
    return f"""# Model card: speech emotion classifier (`{metrics["architecture"]}`)

## What it does
Classifies a speech recording into one of {len(metrics["classes"])} emotions: {labels}.
Input: any common audio format, mixed to mono, resampled to 16 kHz, silence trimmed,
peak-normalised, padded or cropped to 3.5 s; longer speech is judged window by window.
Features: `{metrics.get("features", "seed")}`, {metrics.get("n_features", 105):,} utterance statistics
(see docs/FEATURES.md), standardised with the training set's statistics.
Model: `{metrics["architecture"]}` ({model.get("parameters", "?"):,} parameters), served as TensorFlow Lite
({model.get("tflite_bytes", 0) / 1e6:.2f} MB).

## Training data
RAVDESS (Livingstone & Russo, 2018, PLoS ONE 13(5): e0196391), speech only, actors
{data["actors"][0]:02d}–{data["actors"][-1]:02d}, {data["files"]} files of acted English sentences
("Kids are talking by the door", "Dogs are sitting by the door"), 16 kHz FLAC; its sad recordings
are left out (sad is not one of the classes). The default model learns from RAVDESS alone; the
adapted model (below) also from {_other_corpora(data)}.
Licence of the data: RAVDESS and nEMO are CC BY-NC-SA 4.0, EmoDB is distributed by its authors for
research; the models inherit the non-commercial, share-alike terms. {_augmentation(training, data)}

## Evaluation
{summary_table(metrics)}
Training configuration: `{training}`.

## Intensity
{_intensity_section(metrics)}
## Speaker adaptation
{_calibration_section(metrics)}
## Limits
- Acted emotions from {len(data["actors"])} North American actors reading two neutral sentences:
  spontaneous speech, other languages, accents, children and noisy rooms will score lower.
- The speaker-independent figure is the one to expect on a new voice; the random-split
  figure is inflated by speakers shared between training and test.
- "Calm" and "neutral" are hard to tell apart, even for people.
- Not for decisions about people (hiring, health, policing): it reads acted emotion cues,
  not a person's inner state.
"""
