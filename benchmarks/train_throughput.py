"""Training throughput at the benchmark size against the machine's matmul rate.

    python benchmarks/train_throughput.py [--steps 40] [--jit-compile]
        [--mixed-precision mixed_bfloat16] [--batch-size 64]

Benchmark size: batch 64 captions, 196 locations x 512 features (cached
features, as training from `extract-features`), embedding 512, LSTM 512,
attention 512, vocabulary 5,000, the authors' options (deep output with
prev2out and ctx2out, scalar gating, dropout 0.5, lambda 1); caption lengths
spread evenly over 8-20 tokens, bucketed every 4 tokens as in real training
(`data.pipeline.default_bucket_boundaries`). Full training steps (forward,
backward, Adam) through `model.fit`, after one warm-up step per bucket.

Prints, from one run: the fp32 matmul rate (2048 x 2048) measured in this
process, captions/s and ms/step, the achieved rate in useful FLOPs (the count
of `sat_keras.flops`, real tokens only) and its ratio to the matmul rate, the
number of traces of the model's call, and the peak RSS.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from machine import describe_machine
from machine import matmul_gflops
from machine import peak_rss_mib
from sat_keras import ShowAttendTell
from sat_keras.data.pipeline import default_bucket_boundaries
from sat_keras.flops import Sizes
from sat_keras.flops import training_flops
from sat_keras.text import Vocabulary

SIZES = Sizes(locations=196, features=512, embedding=512, units=512, attention=512,
              vocabulary=5000)
MAX_LENGTH = 20
POOL = 256  # distinct feature maps the batches draw from


class CountingModel(ShowAttendTell):
    """Counts how often `call` is traced (not run eagerly)."""

    traces = 0

    def call(self, inputs, training=None):
        if not tf.executing_eagerly():
            CountingModel.traces += 1
        return super().call(inputs, training=training)


def caption_batches(batch_size, seed=0):
    """Endless bucketed batches: lengths uniform over 8..20, features from a pool."""
    rng = np.random.default_rng(seed)
    pool = tf.constant(rng.normal(size=(POOL, SIZES.locations, SIZES.features)), tf.float16)
    count = 64 * batch_size
    lengths = rng.integers(8, MAX_LENGTH + 1, count)
    tokens = [rng.integers(4, SIZES.vocabulary, length) for length in lengths]
    ragged = tf.ragged.constant(tokens, dtype=tf.int32)

    def example(index, words):
        token_ids = tf.concat([[1], words], 0)  # <start> w1..wn
        target_ids = tf.concat([words, [2]], 0)  # w1..wn <end>
        features = tf.cast(pool[index % POOL], tf.float32)
        return {"features": features, "token_ids": token_ids}, target_ids

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(count), ragged)).repeat()
    dataset = dataset.shuffle(4096, seed=seed).map(example, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = default_bucket_boundaries(MAX_LENGTH + 1)
    dataset = dataset.bucket_by_sequence_length(
        lambda inputs, targets: tf.shape(targets)[0], boundaries,
        [batch_size] * (len(boundaries) + 1), pad_to_bucket_boundary=True,
        drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def build(args):
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    vocabulary = Vocabulary(["<pad>", "<start>", "<end>", "<unk>"]
                            + [f"w{i}" for i in range(SIZES.vocabulary - 4)])
    keras.utils.set_random_seed(0)
    model = CountingModel(vocabulary, embedding_dim=SIZES.embedding, units=SIZES.units,
                          attention_dim=SIZES.attention, dropout=0.5)
    model.build({"features": (None, SIZES.locations, SIZES.features)})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.jit_compile)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    args = parser.parse_args()

    matmul = matmul_gflops()
    model = build(args)
    dataset = caption_batches(args.batch_size)
    warmup = len(default_bucket_boundaries(MAX_LENGTH + 1)) * 3
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)  # trace every bucket
    traces_after_warmup = CountingModel.traces

    # The same seed gives the same batches: one copy is timed, the other counted.
    started = time.perf_counter()
    model.fit(caption_batches(args.batch_size, seed=1), steps_per_epoch=args.steps, epochs=1,
              verbose=0)
    seconds = time.perf_counter() - started
    lengths, padded = [], 0
    for _, targets in caption_batches(args.batch_size, seed=1).take(args.steps):
        lengths.extend(tf.reduce_sum(tf.cast(targets > 0, tf.int32), 1).numpy().tolist())
        padded += int(np.prod(targets.shape))

    flops = training_flops(SIZES, lengths)
    achieved = flops / seconds / 1e9
    print(f"machine: {describe_machine()}")
    print(f"fp32 matmul 2048x2048: {matmul:.1f} GFLOP/s")
    print(f"benchmark size: batch {args.batch_size}, L={SIZES.locations} D={SIZES.features} "
          f"E={SIZES.embedding} U={SIZES.units} A={SIZES.attention} V={SIZES.vocabulary}, "
          f"lengths 8-20; jit_compile={args.jit_compile}, "
          f"precision={args.mixed_precision or 'float32'}")
    print(f"{args.steps} steps in {seconds:.2f} s: {1000 * seconds / args.steps:.0f} ms/step, "
          f"{len(lengths) / seconds:.0f} captions/s, {sum(lengths) / seconds:.0f} tokens/s "
          f"({sum(lengths) / padded:.0%} of the padded positions are real tokens)")
    print(f"useful work: {flops / args.steps / 1e9:.1f} GFLOP/step, achieved "
          f"{achieved:.1f} GFLOP/s = {achieved / matmul:.1%} of the matmul rate")
    print(f"traces of the model's call: {traces_after_warmup} in warm-up "
          f"({len(default_bucket_boundaries(MAX_LENGTH + 1)) + 1} buckets), "
          f"{CountingModel.traces - traces_after_warmup} while timed")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
