"""The Flickr8k recipe: CNN features, soft attention, optional SCST, caption metrics on dev.

    python examples/train_flickr8k.py --data-dir ../shared/data/flickr8k \\
        --encoder-weights ../shared/weights/mobilenet_1_0_224_imagenet_no_top.weights.h5 \\
        --work-dir runs/flickr8k --max-minutes 45

1. extract the encoder's features once into work-dir/features (skipped when
   already there): MobileNet conv_pw_11 by default (14x14x512, the paper's
   VGG conv5_4 grid), or any `--encoder` of `sat_keras.encoders`, e.g.
   resnet50_conv4 (14x14x1024) with ResNet50 ImageNet weights;
2. train on them with greedy BLEU-4 on part of dev computed every epoch:
   the learning rate halves whenever it does not rise, training stops after
   `--patience` epochs without a better one or at the wall-clock budget,
   and the best epoch's model is kept;
3. with `--scst-epochs N`, fine-tune it with self-critical sequence training
   on the CIDEr-D reward (`sat_keras.training.self_critical`), keeping the
   epoch with the best greedy dev CIDEr-D, within what is left of the budget;
4. evaluate the model on the whole dev split with beam search, and save it
   (with the encoder, so it captions image files) to work-dir/model.keras.
"""

import argparse
import json
import os
import time

import keras

from sat_keras import ShowAttendTell
from sat_keras import Vocabulary
from sat_keras.data.features import CachedFeatures
from sat_keras.data.features import extract_features
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import select_split
from sat_keras.encoders import PretrainedEncoder
from sat_keras.evaluation import format_metrics
from sat_keras.metrics import caption_metrics
from sat_keras.models.presets import preset_settings
from sat_keras.training.callbacks import CaptionMetricsCallback
from sat_keras.training.callbacks import TimeBudget
from sat_keras.training.fit import train as train_stage
from sat_keras.training.rewards import CiderDReward
from sat_keras.training.self_critical import SelfCriticalSettings

PRESET = "flickr8k_mobilenet"  # the architecture; its training settings below
TRAINING = preset_settings(PRESET)["training"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--encoder", default="mobilenet",
                        help="an encoder name of sat_keras.encoders, e.g. resnet50_conv4")
    parser.add_argument("--encoder-weights", default="imagenet")
    parser.add_argument("--work-dir", default="runs/flickr8k")
    parser.add_argument("--max-minutes", type=float, default=45.0, help="training budget")
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--batch-size", type=int, default=TRAINING["batch_size"])
    parser.add_argument("--max-length", type=int, default=TRAINING["max_length"])
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--validation-images", type=int, default=TRAINING["validation_images"],
                        help="dev images scored every epoch for early stopping")
    parser.add_argument("--patience", type=int, default=4,
                        help="epochs without a better dev BLEU-4 before stopping")
    parser.add_argument("--scst-epochs", type=int, default=0,
                        help="epochs of self-critical training after cross-entropy")
    parser.add_argument("--scst-learning-rate", type=float, default=5e-5)
    args = parser.parse_args()
    started = time.perf_counter()
    keras.utils.set_random_seed(0)

    records = read_flickr8k(args.data_dir)
    train, dev = select_split(records, "train"), select_split(records, "val")
    vocabulary = Vocabulary.build((c for r in train for c in r.captions),
                                  min_count=TRAINING["min_count"])
    print(f"{len(train)} train / {len(dev)} dev images, vocabulary {len(vocabulary)}")

    encoder = PretrainedEncoder(args.encoder, weights=args.encoder_weights)
    feature_dir = os.path.join(args.work_dir, "features")
    if not os.path.exists(os.path.join(feature_dir, "features.json")):
        extract_features([r.image_path for r in records], encoder, feature_dir,
                         image_size=encoder.image_size)
    features = CachedFeatures(feature_dir)
    if features.index["encoder"]["config"].get("backbone") != encoder.backbone:
        raise ValueError(f"{feature_dir} holds features of another encoder; use a new "
                         "--work-dir for each encoder.")
    print(f"features ready after {(time.perf_counter() - started) / 60:.1f} min")

    model = ShowAttendTell.from_preset(PRESET, vocabulary=vocabulary, encoder=encoder)
    model.build({"images": (None, encoder.image_size, encoder.image_size, 3)})
    model.compile(optimizer=keras.optimizers.Adam(TRAINING["learning_rate"], clipnorm=5.0))
    best_path = os.path.join(args.work_dir, "best.keras")
    callbacks = [
        CaptionMetricsCallback(dev[: args.validation_images], max_length=args.max_length),
        # One epoch's BLEU-4 on 250 images is noisy: a learning rate halved
        # on a plateau and a few epochs of patience keep a dip from ending
        # the run (with patience 3 and no decay it stopped at 0.156 dev).
        keras.callbacks.ReduceLROnPlateau(monitor="val_bleu_4", mode="max", factor=0.5,
                                          patience=1, min_lr=1e-5),
        keras.callbacks.EarlyStopping(monitor="val_bleu_4", mode="max", patience=args.patience),
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_bleu_4", mode="max",
                                        save_best_only=True),
        TimeBudget(args.max_minutes),
    ]
    training_started = time.perf_counter()
    history = model.fit(
        make_caption_dataset(train, vocabulary, batch_size=args.batch_size,
                             max_length=args.max_length, seed=0, features=features),
        validation_data=make_caption_dataset(dev, vocabulary, batch_size=args.batch_size,
                                             max_length=args.max_length, shuffle=False,
                                             features=features),
        epochs=args.epochs, callbacks=callbacks, shuffle=False)
    minutes = (time.perf_counter() - training_started) / 60
    print(f"trained {len(history.history['loss'])} epochs in {minutes:.1f} min; "
          f"val_bleu_4 per epoch: {[round(v, 4) for v in history.history['val_bleu_4']]}")

    model = keras.models.load_model(best_path)
    if args.scst_epochs:
        left = args.max_minutes - (time.perf_counter() - training_started) / 60
        self_critical(model, train, dev[: args.validation_images], features, args, left)
    dev_features = {"features": features.lookup([r.image_path for r in dev])}
    for beam_size in sorted({1, args.beam_size}):
        result = model.caption(features=dev_features["features"].numpy(),
                               max_length=args.max_length, beam_size=beam_size)
        scores = caption_metrics([r.captions for r in dev], result["captions"])
        print(f"dev ({len(dev)} images), beam {beam_size}: {format_metrics(scores)}")
    model.save(os.path.join(args.work_dir, "model.keras"))
    with open(os.path.join(args.work_dir, "history.json"), "w") as file:
        json.dump(history.history, file)
    print(f"whole recipe: {(time.perf_counter() - started) / 60:.1f} min")


def self_critical(model, train, dev, features, args, minutes):
    """SCST on the CIDEr-D reward, keeping the epoch with the best greedy dev CIDEr-D."""
    settings = SelfCriticalSettings(args.scst_epochs, learning_rate=args.scst_learning_rate)
    reward = CiderDReward([r.captions for r in train], model.vocabulary)
    stage_started = time.perf_counter()
    history = train_stage(
        model, train, dev, batch_size=args.batch_size, learning_rate=settings.learning_rate,
        epochs=settings.epochs, max_length=args.max_length, image_size=model.image_size,
        features=features, run_dir=os.path.join(args.work_dir, "self_critical"),
        clip_norm=5.0, self_critical=settings.objective(reward, args.max_length),
        callbacks=[CaptionMetricsCallback(dev, max_length=args.max_length, features=features),
                   keras.callbacks.EarlyStopping(monitor="val_cider", mode="max",
                                                 patience=args.patience,
                                                 restore_best_weights=True),
                   TimeBudget(max(minutes, 0.0))])
    print(f"self-critical: {len(history.history['reward'])} epochs in "
          f"{(time.perf_counter() - stage_started) / 60:.1f} min; val_cider per epoch: "
          f"{[round(v, 4) for v in history.history['val_cider']]}")


if __name__ == "__main__":
    main()
