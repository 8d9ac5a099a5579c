"""Train Show, Attend and Tell on the built-in synthetic data with `model.fit`.

    python examples/train_synthetic.py --output-dir /tmp/shapes --epochs 12
"""

import argparse

import keras

from sat_keras import ShowAttendTell
from sat_keras import Vocabulary
from sat_keras.data import generate_synthetic
from sat_keras.data import load_image_files
from sat_keras.data import make_caption_dataset
from sat_keras.data.records import select_split
from sat_keras.metrics import caption_metrics
from sat_keras.models.presets import preset_settings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", default="shapes_example")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    records = generate_synthetic(f"{args.output_dir}/data", num_images=3000, seed=0)
    train_records = select_split(records, "train")
    vocabulary = Vocabulary.build(c for r in train_records for c in r.captions)

    # The "synthetic" preset's architecture (a small CNN, 64 px images), with
    # one argument replaced; its training settings are kept apart from it.
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary,
                                       doubly_stochastic_weight=0.1)
    learning_rate = preset_settings("synthetic")["training"]["learning_rate"]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    model.fit(make_caption_dataset(train_records, vocabulary, seed=0),
              validation_data=make_caption_dataset(select_split(records, "val"), vocabulary,
                                                   shuffle=False),
              epochs=args.epochs)

    test_records = select_split(records, "test")
    paths = [r.image_path for r in test_records]
    images, _, _ = load_image_files(paths, image_size=model.image_size)
    captions = model.caption(images=images, max_length=20, beam_size=3)["captions"]
    scores = caption_metrics([r.captions for r in test_records], captions, with_meteor=False)
    print("test split, beam 3:", {name: round(value, 4) for name, value in scores.items()
                                  if value is not None})
    model.save(f"{args.output_dir}/shapes.keras")


if __name__ == "__main__":
    main()
