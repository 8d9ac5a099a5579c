"""Training on the built-in synthetic data: `sat-keras train` and `sat-keras demo`."""

import os
import time

import keras

from sat_keras import training
from sat_keras.data.records import select_split
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.models.configs import get_config
from sat_keras.runs import start_run
from sat_keras.text import Vocabulary


def train_synthetic(data_dir, output_dir, config_name="synthetic", epochs=None,
                    batch_size=None, learning_rate=None, num_images=None, seed=0,
                    verbose="auto", print_fn=print, strategy=None, backup_every_steps=100,
                    clip_norm=None, mixed_precision=None):
    """Generates (or reuses) synthetic data, trains, reports test BLEU, saves.

    Args:
        data_dir: the synthetic dataset's directory, generated if missing.
        output_dir: the run directory (`runs.py`): `model.keras`,
            `vocabulary.json`, the config, metrics, TensorBoard logs and,
            while training, a backup; a run killed part way resumes from
            it when started again with the same arguments.
        config_name: a set from `sat_keras.models.configs`.
        epochs, batch_size, learning_rate, num_images: override the config.
        seed: seeds data generation, shuffling and weight initialisation.
        verbose: Keras `fit` verbosity (progress bars by default).
        print_fn: where the report lines go.
        strategy: a `tf.distribute` strategy (default: the current one).
        backup_every_steps, clip_norm: see `training.train`.
        mixed_precision: "mixed_float16" or "mixed_bfloat16" (the global Keras
            policy: layers compute in 16 bits, weights and the loss stay float32).

    Returns:
        dict with "bleu_1".."bleu_4", "rouge_l", "cider_d" (test split,
        free-running greedy, `metrics.caption_metrics` without METEOR),
        "model", "model_dir", "train_seconds", "test_records", "captions".
    """
    config = get_config(config_name, epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate, num_images=num_images)
    settings = config["training"]
    keras.utils.set_random_seed(seed)
    print_fn(f"Synthetic data: {settings['num_images']} images in {data_dir}")
    records = generate_synthetic(data_dir, num_images=settings["num_images"], seed=seed,
                                 image_size=settings["image_size"])
    train_records = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train_records for c in r.captions)
    print_fn(f"{len(train_records)} training images, vocabulary of {len(vocabulary)} tokens")
    strategy, chief = start_run(
        output_dir, {"dataset": "synthetic", "config_name": config_name, "seed": seed, **config},
        strategy, mixed_precision)
    with strategy.scope():
        model = training.build_model(vocabulary, config)
    val_records = select_split(records, "val")
    started = time.perf_counter()
    training.train(model, train_records, val_records,
                   batch_size=settings["batch_size"],
                   learning_rate=settings["learning_rate"], epochs=settings["epochs"],
                   max_length=settings["max_length"], image_size=settings["image_size"],
                   seed=seed, verbose=verbose, strategy=strategy, run_dir=output_dir,
                   backup_every_steps=backup_every_steps, clip_norm=clip_norm,
                   sample_records=val_records[:4], print_fn=print_fn)
    train_seconds = time.perf_counter() - started
    print_fn(f"Trained for {settings['epochs']} epochs in {train_seconds:.0f} s")
    test_records = select_split(records, "test")
    scores, outputs = training.evaluate_records(model, test_records, settings["max_length"])
    print_fn(f"Test split ({len(test_records)} images), free-running greedy captions: "
             + ", ".join(f"BLEU-{n} {scores[f'bleu_{n}']:.4f}" for n in range(1, 5))
             + f", ROUGE-L {scores['rouge_l']:.4f}, CIDEr-D {scores['cider_d']:.4f}")
    if chief:
        training.save_captioner(model, output_dir)
        print_fn(f"Model saved to {output_dir}")
    return {**scores, "model": model, "model_dir": output_dir,
            "train_seconds": train_seconds, "test_records": test_records,
            "captions": outputs["captions"]}


def run_demo(output_dir="sat_keras_demo", epochs=None, num_images=None, seed=0,
             verbose="auto", print_fn=print):
    """`train_synthetic` into `output_dir/{data,model}`, then sample captions."""
    result = train_synthetic(os.path.join(output_dir, "data"),
                             os.path.join(output_dir, "model"), epochs=epochs,
                             num_images=num_images, seed=seed, verbose=verbose,
                             print_fn=print_fn)
    print_fn("Sample test captions:")
    for record, caption in list(zip(result["test_records"], result["captions"]))[:3]:
        print_fn(f"  {record.image_path}: {caption!r}\n    reference: {record.captions[0]!r}")
    print_fn(f"Caption your own images with:\n"
             f"  sat-keras caption IMAGE... --model {result['model_dir']}")
    return result
