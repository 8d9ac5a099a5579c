"""`sat-keras evaluate`: every caption metric of a saved model on a dataset split."""

import json
import os

from sat_keras import metrics
from sat_keras import training
from sat_keras.data.datasets import read_dataset
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import read_synthetic_objects
from sat_keras.data.synthetic_attention import attention_in_objects

METRIC_NAMES = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3",
                "bleu_4": "BLEU-4", "meteor": "METEOR", "rouge_l": "ROUGE-L",
                "cider_d": "CIDEr-D"}


def format_metrics(scores):
    """One line: "BLEU-1 0.9736, ..., METEOR unavailable, ..."."""
    return ", ".join(
        f"{label} {scores[name]:.4f}" if scores.get(name) is not None
        else f"{label} unavailable" for name, label in METRIC_NAMES.items())


def evaluate(model_path, dataset, data_dir, split="test", beam_size=3, max_length=20,
             output_path=None, batch_size=64, with_meteor=True, tokenization="auto",
             captions_file=None, missing="error", print_fn=print, verbose=1):
    """Captions a split (with a progress bar when `verbose`), scores it, writes JSON.

    `tokenization` "auto" uses coco-caption's PTB tokenizer where Java and
    pycocoevalcap are installed, else `text.normalize_caption`; the results
    record which. `dataset`, `data_dir`, `captions_file` and `missing` are those of
    `data.datasets.read_dataset`. On the synthetic dataset the results also
    hold `attention_in_object` (`synthetic_attention.attention_in_objects`).

    Returns:
        dict: "model", "dataset", "split", "beam_size", "max_length",
        "num_images", "metrics", optionally "attention_in_object", and
        "captions": [{"image", "caption", "score", "references"}].
    """
    if tokenization == "auto":
        tokenization = "ptb" if metrics.coco_tools_available() else "normalize"
        if tokenization == "normalize":
            print_fn("PTB tokenizer unavailable (needs Java and pycocoevalcap): "
                     "comparing normalised words instead.")
    model = training.load_captioner(model_path)
    records = select_split(read_dataset(dataset, data_dir, captions_file=captions_file,
                                        missing=missing, report=print_fn), split)
    scores, outputs = training.evaluate_records(model, records, max_length, beam_size,
                                                batch_size, with_meteor, tokenization,
                                                verbose=verbose)
    results = {"model": model_path, "dataset": dataset, "split": split,
               "beam_size": beam_size, "max_length": max_length,
               "tokenization": tokenization,
               "num_images": len(records), "metrics": scores}
    print_fn(f"{dataset} {split} ({len(records)} images), beam {beam_size}: "
             + format_metrics(scores))
    diversity = metrics.caption_diversity(outputs["captions"])
    results["diversity"] = diversity
    print_fn(f"captions: {diversity['distinct_captions']:.1%} distinct, "
             f"{diversity['vocabulary_used']} different words, "
             f"{diversity['mean_length']:.1f} words on average")
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
