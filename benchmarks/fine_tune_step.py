"""ms per training step: the decoder on frozen conv5 features against conv5 fine-tuned on conv4's.

    python benchmarks/fine_tune_step.py [--steps 20] [--length 12]

The flickr8k_resnet50 decoder and vocabulary size (2,539 words), one
repeated in-memory batch (no input pipeline), after 3 warm-up steps, in one
run:

- frozen: 64 captions with their images' cached conv5_block3_out features
  (49 x 2048), the decoder alone (the recipe's first stage);
- fine-tuned: 12 images' cached conv4_block6_out features (14 x 14 x 1024)
  through ResNet50's conv5 stage (trained, batch normalisation frozen) and
  their 5 captions each (60 captions), `--batch-by-image` as
  `--fine-tune-from conv4_block6_out` trains;
- the same 60 captions, but one conv5 run per caption (per-caption batches,
  what the stage would cost without per-image batches).

ResNet50's weights are random: the time does not depend on them.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from sat_keras import ShowAttendTell
from sat_keras.encoders import PretrainedEncoder
from sat_keras.training.optimizers import FineTuningAdam

WORDS = 2539


def _ms_per_step(model, inputs, targets, steps, optimizer):
    model.compile(optimizer=optimizer)
    dataset = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    model.fit(dataset, steps_per_epoch=3, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, verbose=0)
    return 1000 * (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--length", type=int, default=12, help="caption tokens")
    args = parser.parse_args()
    vocabulary = ["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(WORDS - 4)]
    rng = np.random.default_rng(0)

    def captions(count):
        return (rng.integers(4, WORDS, (count, args.length)),
                rng.integers(4, WORDS, (count, args.length)))

    keras.utils.set_random_seed(0)
    frozen = ShowAttendTell.from_preset("flickr8k_resnet50", vocabulary=vocabulary,
                                        encoder_weights=None)
    token_ids, targets = captions(64)
    frozen_ms = _ms_per_step(
        frozen, {"features": rng.normal(size=(64, 49, 2048)).astype("float32"),
                 "token_ids": token_ids}, targets, args.steps, "adam")

    def tuned_model():
        keras.utils.set_random_seed(0)
        encoder = PretrainedEncoder("resnet50", weights=None, trainable=True,
                                    cache_layer="conv4_block6_out")
        return ShowAttendTell.from_preset("flickr8k_resnet50", vocabulary=vocabulary,
                                          encoder=encoder, image_size=224)

    token_ids, targets = captions(60)
    conv4 = rng.normal(size=(12, 196, 1024)).astype("float32")
    per_image_ms = _ms_per_step(
        tuned_model(), {"features": conv4, "token_ids": token_ids,
                        "caption_image": np.repeat(np.arange(12), 5)},
        targets, args.steps, FineTuningAdam(1e-4, encoder_multiplier=0.1))
    per_caption_ms = _ms_per_step(
        tuned_model(), {"features": np.repeat(conv4, 5, axis=0), "token_ids": token_ids},
        targets, args.steps, FineTuningAdam(1e-4, encoder_multiplier=0.1))
    print(f"frozen conv5, 64 captions: {frozen_ms:.0f} ms a step, "
          f"{frozen_ms / 64:.1f} ms a caption")
    print(f"conv5 fine-tuned, 12 images x 5 captions: {per_image_ms:.0f} ms a step, "
          f"{per_image_ms / 60:.1f} ms a caption ({per_image_ms / 60 / (frozen_ms / 64):.1f}x "
          f"frozen)")
    print(f"conv5 fine-tuned, 60 captions each with its own conv5 run: {per_caption_ms:.0f} ms "
          f"a step ({per_caption_ms / per_image_ms:.1f}x per-image batches)")


if __name__ == "__main__":
    main()
