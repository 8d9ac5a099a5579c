"""The Flickr8k recipe, from JPEGs to a captioner scored on dev, in one command.

    python examples/train_flickr8k.py --data-dir DATA_DIR \\
        --encoder resnet50 --encoder-weights RESNET50_WEIGHTS --work-dir runs/flickr8k

1. extract the encoder's features once into work-dir/features (skipped when
   already there): ResNet50 conv5_block3_out by default (7x7x2048, which
   captions better than conv4_block6_out's 14x14x1024 grid, the paper's
   VGG conv5_4 shape: `--encoder resnet50_conv4`; see docs/results/flickr8k.md), or any
   `--encoder` of `sat_keras.encoders`, e.g. mobilenet (conv_pw_11, 14x14x512);
2. train soft attention on them with `sat_keras.recipes.train_recipe`, the
   recipe behind `sat-keras train` (the flickr8k_resnet50 preset: embedding
   256, LSTM 512, attention 256, dropout 0.5, lambda 1; Adam 1e-3 with
   cosine decay over `--epochs`; greedy BLEU-4 on 250 dev images every
   epoch, comparing epochs from half the schedule on (`--select-from`),
   stopping after `--patience` epochs without a better one and keeping the
   best); `--doubly-stochastic-weight 0` drops the attention
   penalty (sharper attention, no better scores in docs/results/flickr8k.md);
3. with `--scst-epochs N`, fine-tune it with self-critical sequence training
   on the CIDEr-D reward (`sat_keras.training.self_critical`), keeping the
   epoch with the best greedy dev CIDEr-D;
4. with `--attention hard` (or `--hard-epochs N`), train hard attention in
   work-dir/hard, its decoder started from the soft model's weights (a warm
   start, `sat_keras.training.warm_start`) with the flickr8k_resnet50_hard
   preset's warm-start schedule: 3 epochs (`--hard-epochs`) at a peak
   learning rate of 2e-4 (`--hard-learning-rate`), every epoch compared. On
   Flickr8k it scores level with soft attention and attends more sharply,
   where hard attention from scratch scores far lower (docs/results/flickr8k.md);
5. with `--fine-tune-epochs N` (ResNet50 only), fine-tune ResNet50's conv5
   stage with the decoder in work-dir/fine_tuned: conv4_block6_out's
   features (14x14x1024) are extracted once into work-dir/features_conv4,
   and conv5 (with its ImageNet weights, batch normalisation frozen) and
   the decoder, started from the soft model, train on them at the
   `models.presets.FINE_TUNE_STAGE` schedule (peak 2e-4, conv5 at a tenth
   of it), in batches that hold all five captions of each image, so that
   conv5 runs once per image. It costs about 8 min of extraction and 15 min
   an epoch on 2 CPU cores (docs/results/flickr8k.md, "Fine-tuning ResNet50's
   conv5 stage");
6. score the model on the whole dev split with greedy search and with the
   decoding the preset chose on dev (beam 5, length penalty 1, `<unk>` never
   written; see docs/results/flickr8k.md), which the model is saved with
   (coco-caption PTB tokenization and METEOR where Java and pycocoevalcap
   are installed), with how varied its captions and how focused its
   attention are, and print the minutes of each stage.

The model (with its encoder, so it captions image files) is
work-dir/model.keras: `sat-keras evaluate --model WORK_DIR --dataset flickr8k
--data-dir D --split test` scores any split the data dir lists with the same
decoding, and `sat-keras caption` and `export` decode as it does too.
"""

import argparse
import os
import time

from sat_keras.data.features import CachedFeatures
from sat_keras.data.features import extract_features
from sat_keras.data.flickr8k import read_flickr8k
from sat_keras.data.records import select_split
from sat_keras.decoding import SearchSettings
from sat_keras.encoders import PretrainedEncoder
from sat_keras.evaluation import attention_statistics
from sat_keras.evaluation import evaluate_records
from sat_keras.evaluation import format_metrics
from sat_keras.metrics import caption_diversity
from sat_keras.metrics import coco_tools_available
from sat_keras.models.presets import FINE_TUNE_FEATURES
from sat_keras.models.presets import FINE_TUNE_STAGE
from sat_keras.models.presets import WARM_START
from sat_keras.recipes import train_recipe
from sat_keras.training.self_critical import SelfCriticalSettings
from sat_keras.training.settings import DataSettings
from sat_keras.training.settings import RunSettings

PRESET = "flickr8k_resnet50"  # the decoder and its training settings


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--encoder", default="resnet50",
                        help="an encoder name of sat_keras.encoders, e.g. mobilenet")
    parser.add_argument("--encoder-weights", default="imagenet",
                        help='a weights file, or "imagenet" (downloads)')
    parser.add_argument("--work-dir", default="runs/flickr8k")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="training budget (both stages); default: all epochs")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the preset's (64)")
    parser.add_argument("--patience", type=int, default=None,
                        help="epochs without a better dev BLEU-4 before stopping "
                             "(default: the preset's, 3)")
    parser.add_argument("--select-from", type=float, default=None, metavar="FRACTION",
                        help="compare epochs only from this fraction of the schedule on "
                             "(default: the preset's, 0.5; 0 compares them all)")
    parser.add_argument("--doubly-stochastic-weight", type=float, default=None,
                        help="lambda of the attention penalty (default: the preset's, 1)")
    parser.add_argument("--label-smoothing", type=float, default=None,
                        help="label smoothing of the targets (default: the preset's, 0)")
    parser.add_argument("--scst-epochs", type=int, default=0,
                        help="epochs of self-critical training after cross-entropy")
    parser.add_argument("--scst-learning-rate", type=float, default=None,
                        help="default: SelfCriticalSettings' (5e-5)")
    parser.add_argument("--attention", choices=("soft", "hard"), default="soft",
                        help="hard: the soft model, then hard attention started from it, "
                             "in WORK_DIR/hard")
    parser.add_argument("--hard-epochs", type=int, default=None,
                        help="epochs of that hard attention (default: the hard preset's "
                             "warm start, 3, with --attention hard; else none)")
    parser.add_argument("--hard-learning-rate", type=float, default=None,
                        help="their peak learning rate (default: the preset's, 2e-4)")
    parser.add_argument("--fine-tune-epochs", type=int, default=0,
                        help="then fine-tune ResNet50's conv5 stage with the decoder for N "
                             f"epochs (the preset's schedule has {FINE_TUNE_STAGE['epochs']}), "
                             "in WORK_DIR/fine_tuned")
    parser.add_argument("--beam-size", type=int, default=None,
                        help="default: the preset's chosen decoding (5)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="of decoded captions (default: the preset's, 20)")
    args = parser.parse_args()
    if args.fine_tune_epochs and args.encoder != "resnet50":
        parser.error("--fine-tune-epochs fine-tunes ResNet50's conv5 stage: use --encoder "
                     "resnet50.")
    if args.hard_epochs is None:
        args.hard_epochs = WARM_START["epochs"] if args.attention == "hard" else 0
    started = time.perf_counter()

    feature_dir = os.path.join(args.work_dir, "features")
    extract(args.data_dir, args.encoder, args.encoder_weights, feature_dir)
    print(f"features ready after {minutes_since(started):.1f} min", flush=True)

    chosen = {"learning_rate": args.scst_learning_rate} if args.scst_learning_rate else {}
    self_critical = (SelfCriticalSettings(args.scst_epochs, **chosen)
                     if args.scst_epochs else None)
    training = {"epochs": args.epochs, "batch_size": args.batch_size,
                "patience": args.patience, "select_from": args.select_from,
                "encoder_weights": args.encoder_weights}
    model = {"doubly_stochastic_weight": args.doubly_stochastic_weight,
             "label_smoothing": args.label_smoothing}
    result = train_recipe(
        DataSettings("flickr8k", args.data_dir, features_dir=feature_dir),
        RunSettings(args.work_dir, max_minutes=args.max_minutes, verbose=2),
        preset=PRESET, self_critical=self_critical,
        overrides={"encoder": {"name": args.encoder}, "training": given(training),
                   "model": given(model)})
    print(f"trained after {minutes_since(started):.1f} min", flush=True)

    evaluate_on_dev(result["model"], args.data_dir, feature_dir, args.beam_size,
                    args.max_length)
    if args.hard_epochs:
        left = args.max_minutes - minutes_since(started) if args.max_minutes else None
        hard = train_hard_from_soft(args, feature_dir, left)
        print(f"hard attention trained after {minutes_since(started):.1f} min", flush=True)
        evaluate_on_dev(hard, args.data_dir, feature_dir, args.beam_size, args.max_length)
    if args.fine_tune_epochs:
        conv4_dir = os.path.join(args.work_dir, "features_conv4")
        extract(args.data_dir, FINE_TUNE_FEATURES, args.encoder_weights, conv4_dir)
        print(f"conv4 features ready after {minutes_since(started):.1f} min", flush=True)
        left = args.max_minutes - minutes_since(started) if args.max_minutes else None
        tuned = fine_tune_conv5(args, conv4_dir, left)
        print(f"conv5 fine-tuned after {minutes_since(started):.1f} min", flush=True)
        evaluate_on_dev(tuned, args.data_dir, conv4_dir, args.beam_size, args.max_length)
    print(f"whole recipe: {minutes_since(started):.1f} min")


def fine_tune_conv5(args, conv4_dir, max_minutes):
    """ResNet50's conv5 stage and the decoder, from the soft model in work-dir, trained
    together on conv4_block6_out's cached features for `--fine-tune-epochs`."""
    training = {**FINE_TUNE_STAGE, "epochs": args.fine_tune_epochs,
                "patience": args.patience, "encoder_weights": args.encoder_weights,
                "init_from": args.work_dir}
    result = train_recipe(
        DataSettings("flickr8k", args.data_dir, features_dir=conv4_dir),
        RunSettings(os.path.join(args.work_dir, "fine_tuned"), max_minutes=max_minutes,
                    verbose=2),
        preset=PRESET,
        overrides={"encoder": {"name": args.encoder}, "training": given(training),
                   "model": given({"label_smoothing": args.label_smoothing,
                                   "doubly_stochastic_weight": args.doubly_stochastic_weight})})
    return result["model"]


def train_hard_from_soft(args, feature_dir, max_minutes):
    """Hard attention for `--hard-epochs`, warm-started from the soft model in work-dir."""
    training = {"epochs": args.hard_epochs, "learning_rate": args.hard_learning_rate,
                "batch_size": args.batch_size, "patience": args.patience,
                "encoder_weights": args.encoder_weights, "init_from": args.work_dir}
    result = train_recipe(
        DataSettings("flickr8k", args.data_dir, features_dir=feature_dir),
        RunSettings(os.path.join(args.work_dir, "hard"), max_minutes=max_minutes, verbose=2),
        preset=PRESET + "_hard",
        overrides={"encoder": {"name": args.encoder}, "training": given(training),
                   "model": given({"label_smoothing": args.label_smoothing})})
    return result["model"]


def given(values):
    """The values of flags that were given: the preset keeps its own for the rest."""
    return {name: value for name, value in values.items() if value is not None}


def extract(data_dir, encoder_name, weights, feature_dir):
    """The encoder's features of every listed photo, once."""
    encoder = PretrainedEncoder(encoder_name, weights=weights)
    if not os.path.exists(os.path.join(feature_dir, "features.json")):
        records = read_flickr8k(data_dir)
        extract_features([r.image_path for r in records], encoder, feature_dir,
                         image_size=encoder.image_size)
    index = CachedFeatures(feature_dir).index
    if index["encoder"]["config"].get("backbone") != encoder.backbone:
        raise ValueError(f"{feature_dir} holds features of another encoder; use a new "
                         "--work-dir for each encoder.")


def evaluate_on_dev(model, data_dir, feature_dir, beam_size, max_length):
    """Dev scores with greedy search, then with the model's chosen decoding."""
    dev = select_split(read_flickr8k(data_dir), "val")
    tokenization = "ptb" if coco_tools_available() else "normalize"
    features = CachedFeatures(feature_dir)
    chosen = model.settings_for(one_caption=True, beam_size=beam_size, max_length=max_length)
    greedy = SearchSettings(max_length=chosen.max_length)
    for search in [greedy] + ([chosen] if chosen != greedy else []):
        stage_started = time.perf_counter()
        scores, outputs = evaluate_records(model, dev, search, with_meteor=True,
                                           tokenization=tokenization, features=features)
        diversity = caption_diversity(outputs["captions"])
        focus = attention_statistics(outputs["attention_weights"])
        print(f"dev ({len(dev)} images), {search.describe()}, "
              f"{tokenization} tokenization: "
              f"{format_metrics(scores)}\n"
              f"  {diversity['distinct_captions']:.1%} distinct captions, "
              f"{diversity['vocabulary_used']} words used, mean length "
              f"{diversity['mean_length']:.1f}; attention entropy "
              f"{focus['mean_entropy']:.3f} (uniform {focus['uniform_entropy']:.3f}), "
              f"max alpha {focus['mean_max_alpha']:.4f} "
              f"({minutes_since(stage_started):.1f} min)", flush=True)


def minutes_since(start):
    return (time.perf_counter() - start) / 60


if __name__ == "__main__":
    main()
