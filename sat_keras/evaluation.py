"""Free-running evaluation: captioning records and scoring them (`sat-keras evaluate`)."""

import json
import os

import keras
import numpy as np

from sat_keras import metrics
from sat_keras.data.datasets import read_dataset
from sat_keras.data.images import make_image_dataset
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import read_synthetic_objects
from sat_keras.data.synthetic_attention import attention_in_objects
from sat_keras.models.saving import load_captioner

METRIC_NAMES = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3",
                "bleu_4": "BLEU-4", "meteor": "METEOR", "rouge_l": "ROUGE-L",
                "cider_d": "CIDEr-D"}


def caption_records(model, records, search=None, batch_size=64, features=None, verbose=0):
    """Captions each record's image, in order, one caption each.

    The decoding is `model.settings_for(search)`: the model's own (None), a
    `decoding.SearchSettings`, or a dict of fields merged into its own; one
    caption each (the best, whatever `num_captions` says). With `features`
    (a `data.features.CachedFeatures`) the cached features are decoded
    instead of the image files. `verbose` 1 shows a progress bar.

    Returns:
        dict: "captions" (list of str), "scores" (N,), "attention_weights"
        (N, max_length, L).
    """
    search = model.settings_for(search, one_caption=True)
    paths = [r.image_path for r in records]
    if features is not None:
        batches = ({"features": features.lookup(paths[start:start + batch_size]).numpy()}
                   for start in range(0, len(paths), batch_size))
    else:
        batches = ({"images": images} for images in
                   make_image_dataset(paths, model.image_size, batch_size=batch_size))
    progress = keras.utils.Progbar(len(paths), unit_name="image") if verbose else None
    outputs = []
    for batch in batches:
        outputs.append(model.caption(**batch, search=search, batch_size=batch_size))
        if progress:
            progress.add(len(outputs[-1]["captions"]))
    return {
        "captions": [caption for output in outputs for caption in output["captions"]],
        "scores": np.concatenate([output["scores"] for output in outputs]),
        "attention_weights": np.concatenate([o["attention_weights"] for o in outputs]),
    }


def evaluate_records(model, records, search=None, batch_size=64, with_meteor=False,
                     tokenization="normalize", features=None, verbose=0):
    """`metrics.caption_metrics` of free-running captions, and `caption_records`' outputs."""
    outputs = caption_records(model, records, search, batch_size, features, verbose)
    references = [record.captions for record in records]
    scores = metrics.caption_metrics(references, outputs["captions"], with_meteor,
                                     tokenization)
    return scores, outputs


def format_metrics(scores):
    """One line: "BLEU-1 0.9736, ..., METEOR not computed, ...".

    A metric is not computed when it was not asked for (METEOR during
    training) or could not run (METEOR without Java: a warning says why).
    """
    return ", ".join(
        f"{label} {scores[name]:.4f}" if scores.get(name) is not None
        else f"{label} not computed" for name, label in METRIC_NAMES.items())


def attention_statistics(attention_weights):
    """How focused the attention of decoded captions is, against uniform attention.

    Args:
        attention_weights: alpha (N, T, L) as the searches return it: a
            distribution over L locations for every emitted token (`<end>`
            included), zero rows after `<end>`.

    Returns:
        dict: "mean_entropy" of alpha per token, "uniform_entropy" (log L,
        its most), "mean_max_alpha" (the weight of the most attended
        location, averaged over tokens), "uniform_max_alpha" (1 / L),
        "locations" (L) and "tokens" (how many were averaged). A captioner
        whose attention stays uniform has an entropy near log L and shows
        nothing on an attention map.
    """
    alpha = np.asarray(attention_weights, np.float64)
    rows = alpha.reshape(-1, alpha.shape[-1])
    rows = rows[rows.sum(axis=-1) > 0.5]  # emitted tokens only
    if not len(rows):
        raise ValueError("No emitted token has attention weights.")
    entropy = -np.sum(rows * np.log(np.maximum(rows, 1e-12)), axis=-1)
    return {"mean_entropy": float(entropy.mean()),
            "uniform_entropy": float(np.log(alpha.shape[-1])),
            "mean_max_alpha": float(rows.max(axis=-1).mean()),
            "uniform_max_alpha": 1.0 / alpha.shape[-1], "locations": int(alpha.shape[-1]),
            "tokens": int(len(rows))}


def evaluate(model_path, dataset, data_dir, split="test", search=None, output_path=None,
             batch_size=64, with_meteor=True, tokenization="auto", captions_file=None,
             missing="error", print_fn=print, verbose=1):
    """Captions a split (with a progress bar when `verbose`), scores it, writes JSON.

    The decoding is the model's own (`search_settings`: an export's, or the
    one a trained model was saved with), changed by `search`: a dict of
    `decoding.SearchSettings` fields (a None value is not given) or a whole
    `SearchSettings`; one caption each.
    `tokenization` "auto" uses coco-caption's PTB tokenizer where Java and
    pycocoevalcap are installed, else `text.normalize_caption`; the results
    record which. `dataset`, `data_dir`, `captions_file` and `missing` are those of
    `data.datasets.read_dataset`. On the synthetic dataset the results also
    hold `attention_in_object` (`synthetic_attention.attention_in_objects`).

    Returns:
        dict: "model", "dataset", "split", "search" (the decoding's fields),
        "tokenization", "num_images", "metrics", "diversity", "attention"
        (`attention_statistics`), optionally "attention_in_object", and
        "captions": [{"image", "caption", "score", "references"}].
    """
    if tokenization == "auto":
        tokenization = "ptb" if metrics.coco_tools_available() else "normalize"
        if tokenization == "normalize":
            print_fn("PTB tokenizer unavailable (needs Java and pycocoevalcap): "
                     "comparing normalised words instead.")
    model = load_captioner(model_path)
    search = model.settings_for(search, one_caption=True)
    records = select_split(read_dataset(dataset, data_dir, captions_file=captions_file,
                                        missing=missing, report=print_fn), split)
    scores, outputs = evaluate_records(model, records, search, batch_size, with_meteor,
                                       tokenization, verbose=verbose)
    results = {"model": model_path, "dataset": dataset, "split": split,
               "search": search.to_config(), "tokenization": tokenization,
               "num_images": len(records), "metrics": scores}
    print_fn(f"{dataset} {split} ({len(records)} images), {search.describe()}: "
             + format_metrics(scores))
    diversity = metrics.caption_diversity(outputs["captions"])
    results["diversity"] = diversity
    print_fn(f"captions: {diversity['distinct_captions']:.1%} distinct, "
             f"{diversity['vocabulary_used']} different words, "
             f"{diversity['mean_length']:.1f} words on average, "
             f"{diversity['repeated_bigrams']:.1%} repeating a bigram")
    focus = attention_statistics(outputs["attention_weights"])
    results["attention"] = focus
    print_fn(f"attention per token: entropy {focus['mean_entropy']:.3f} (uniform: "
             f"log {focus['locations']} = {focus['uniform_entropy']:.3f}), max alpha "
             f"{focus['mean_max_alpha']:.4f} (uniform: {focus['uniform_max_alpha']:.4f})")
    if dataset == "synthetic":
        objects = read_synthetic_objects(data_dir)
        share = attention_in_objects(outputs["captions"], outputs["attention_weights"],
                                     [objects[r.image_path] for r in records],
                                     model.image_size)
        results["attention_in_object"] = share
        if share["mean_share"] is not None:
            roles = ", ".join(f"{role} {value:.4f}" for role, value in share["by_role"].items())
            print_fn(f"attention inside the named object: {share['mean_share']:.4f} "
                     f"({roles}; uniform attention: {share['uniform_share']:.4f}; "
                     f"{share['scored_words']} words scored, {share['unscored_phrases']} "
                     f"phrases naming no object)")
    results["captions"] = [
        {"image": r.image_path, "caption": caption, "score": float(score),
         "references": list(r.captions)}
        for r, caption, score in zip(records, outputs["captions"], outputs["scores"])]
    if output_path:
        temporary_path = output_path + ".tmp"
        with open(temporary_path, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=1)
        os.replace(temporary_path, output_path)
        print_fn(f"Results written to {output_path}")
    return results
