"""Training throughput at the benchmark size against the machine's matmul rate.

    python benchmarks/train_throughput.py [--steps 40] [--chunks 5] [--jit-compile]
        [--mixed-precision mixed_bfloat16] [--batch-size 64]

Benchmark size: batch 64 captions, 196 locations x 512 features (cached
features, as training from `extract-features`), embedding 512, LSTM 512,
attention 512, vocabulary 5,000, the authors' options (deep output with
prev2out and ctx2out, scalar gating, dropout 0.5, lambda 1); caption lengths
spread evenly over 8-20 tokens, bucketed every 4 tokens as in real training
(`data.pipeline.default_bucket_boundaries`). Full training steps (forward,
backward, Adam) through `model.fit`, after one warm-up step per bucket.

Prints, from one run: captions/s and ms/step, the achieved rate in useful
FLOPs (the count of `benchmarks/flops.py`, real tokens only) and its ratio to the
fp32 matmul rate (2048 x 2048), the number of traces of the model's call, and
the peak RSS. The timed steps run in `--chunks` epochs, each right after its
own measurement of the matmul rate, so that every ratio compares two figures
taken in the same minute of a shared machine whose speed drifts; the
headline is the median of the chunks' ratios.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf
from flops import Sizes
from flops import training_flops
from machine import describe_machine
from machine import matmul_gflops
from machine import peak_rss_mib

from sat_keras import ShowAttendTell
from sat_keras.data.pipeline import default_bucket_boundaries
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


def benchmark_model(model_class, vocabulary_class, jit_compile=False):
    """The benchmark-size model of `model_class`, built and compiled (Adam 1e-3)."""
    vocabulary = vocabulary_class(["<pad>", "<start>", "<end>", "<unk>"]
                                  + [f"w{i}" for i in range(SIZES.vocabulary - 4)])
    keras.utils.set_random_seed(0)
    # The 0.2 keywords (deprecated since 0.3, not decoder={...}): the A/B scripts
    # build this model from older checkouts too.
    model = model_class(vocabulary, embedding_dim=SIZES.embedding, units=SIZES.units,
                        attention_dim=SIZES.attention, dropout=0.5)
    model.build({"features": (None, SIZES.locations, SIZES.features)})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


def build(args):
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    return benchmark_model(CountingModel, Vocabulary, jit_compile=args.jit_compile)


class ChunkTimer(keras.callbacks.Callback):
    """Measures the matmul rate before each epoch, then times the epoch."""

    def __init__(self):
        super().__init__()
        self.matmul, self.seconds = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.matmul.append(matmul_gflops(trials=2))
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def caption_lengths(batch_size, steps, seed):
    """Real tokens per caption of the first `steps` batches, and the padded positions."""
    lengths, padded = [], []
    for _, targets in caption_batches(batch_size, seed=seed).take(steps):
        lengths.append(tf.reduce_sum(tf.cast(targets > 0, tf.int32), 1).numpy().tolist())
        padded.append(int(np.prod(targets.shape)))
    return lengths, padded


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=5, help="epochs the timed steps form")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    args = parser.parse_args()
    if args.steps % args.chunks:
        parser.error("--steps must be a multiple of --chunks")
    per_chunk = args.steps // args.chunks

    model = build(args)
    dataset = caption_batches(args.batch_size)
    warmup = len(default_bucket_boundaries(MAX_LENGTH + 1)) * 3
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)  # trace every bucket
    traces_after_warmup = CountingModel.traces

    # The same seed gives the same batches: one copy is timed, the other counted.
    timer = ChunkTimer()
    model.fit(caption_batches(args.batch_size, seed=1), steps_per_epoch=per_chunk,
              epochs=args.chunks, verbose=0, callbacks=[timer])
    lengths, padded = caption_lengths(args.batch_size, args.steps, seed=1)

    print(f"machine: {describe_machine()}")
    print(f"benchmark size: batch {args.batch_size}, L={SIZES.locations} D={SIZES.features} "
          f"E={SIZES.embedding} U={SIZES.units} A={SIZES.attention} V={SIZES.vocabulary}, "
          f"lengths 8-20; jit_compile={args.jit_compile}, "
          f"precision={args.mixed_precision or 'float32'}")
    ratios = []
    for chunk, (seconds, matmul) in enumerate(zip(timer.seconds, timer.matmul)):
        steps = slice(chunk * per_chunk, (chunk + 1) * per_chunk)
        achieved = training_flops(SIZES, sum(lengths[steps], [])) / seconds / 1e9
        ratios.append(achieved / matmul)
        print(f"chunk {chunk + 1}: {1000 * seconds / per_chunk:.0f} ms/step, "
              f"{achieved:.1f} GFLOP/s useful, matmul {matmul:.1f} GFLOP/s: {ratios[-1]:.1%}")
    seconds, all_lengths = sum(timer.seconds), sum(lengths, [])
    flops = training_flops(SIZES, all_lengths)
    print(f"{args.steps} steps in {seconds:.2f} s: {1000 * seconds / args.steps:.0f} ms/step, "
          f"{len(all_lengths) / seconds:.0f} captions/s, {sum(all_lengths) / seconds:.0f} "
          f"tokens/s ({sum(all_lengths) / sum(padded):.0%} of the padded positions are real "
          f"tokens)")
    print(f"useful work: {flops / args.steps / 1e9:.1f} GFLOP/step, achieved "
          f"{flops / seconds / 1e9:.1f} GFLOP/s; fp32 matmul 2048x2048: "
          f"{min(timer.matmul):.1f}-{max(timer.matmul):.1f} GFLOP/s")
    print(f"ratio to the matmul rate of the same chunk: median {np.median(ratios):.1%} "
          f"(chunks: {min(ratios):.1%}-{max(ratios):.1%})")
    print(f"traces of the model's call: {traces_after_warmup} in warm-up "
          f"({len(default_bucket_boundaries(MAX_LENGTH + 1)) + 1} buckets), "
          f"{CountingModel.traces - traces_after_warmup} while timed")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
