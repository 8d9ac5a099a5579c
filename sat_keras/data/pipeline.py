"""Records -> `tf.data.Dataset` of training batches (DESIGN.md batch contract)."""

import bisect
import collections

import numpy as np
import tensorflow as tf

from sat_keras.data.images import load_image
from sat_keras.data.tokenization import CaptionTokenizer
from sat_keras.text import normalize_caption


def default_bucket_boundaries(max_length, width=4):
    """Boundaries for `bucket_by_sequence_length`: a bucket every `width` tokens.

    Bucket i holds lengths in [boundaries[i-1], boundaries[i]) and, padded to
    its boundary, gets length boundaries[i] - 1, so the last boundary is
    `max_length + 1` to make room for the longest sequence.
    """
    boundaries = list(range(width + 1, max_length + 1, width))
    return boundaries + [max_length + 1]


def count_batches(records, batch_size, max_length, bucket_boundaries=None,
                  drop_remainder=False):
    """Batches per epoch of `make_caption_dataset` with the same arguments.

    Bucketing depends on caption lengths only, not on the shuffle, so the
    count is exact; `model.fit(dataset.repeat(), steps_per_epoch=...)` then
    shows complete progress bars from the first epoch.
    """
    boundaries = bucket_boundaries or default_bucket_boundaries(max_length)
    bucket_sizes = collections.Counter()
    for caption in caption_pairs(records)[1]:
        length = min(len(normalize_caption(caption)), max_length - 1) + 1
        bucket_sizes[bisect.bisect_right(boundaries, length)] += 1
    rounding = (lambda n: n // batch_size) if drop_remainder else (
        lambda n: -(-n // batch_size))
    return sum(rounding(n) for n in bucket_sizes.values())


def caption_pairs(records):
    """Flattens records to parallel lists (image paths, captions)."""
    paths, captions = [], []
    for record in records:
        for caption in record.captions:
            paths.append(record.image_path)
            captions.append(caption)
    if not captions:
        raise ValueError(
            f"The {len(records)} records given hold no captions; nothing to train on."
        )
    return paths, captions


def make_caption_dataset(records, vocabulary, batch_size=64, image_size=64,
                         max_length=24, bucket_boundaries=None, shuffle=True,
                         seed=None, drop_remainder=False, features=None, from_epoch=None):
    """One element per (image, caption) pair, bucketed by caption length.

    Args:
        records: `CaptionRecord`s (usually one split).
        vocabulary: the `Vocabulary` to encode captions with.
        batch_size: captions per batch (every bucket).
        image_size: images are resized to image_size x image_size.
        max_length: the longest `token_ids` sequence (see `CaptionTokenizer`).
        bucket_boundaries: `bucket_by_sequence_length` boundaries; by default
            `default_bucket_boundaries(max_length)`. The last must be
            `max_length + 1` or more.
        shuffle: reshuffle the pairs every epoch.
        seed: shuffle seed.
        drop_remainder: drop each bucket's last partial batch. Under XLA every
            new batch shape compiles anew, and partial batches change size
            from epoch to epoch; reshuffling lets the dropped captions differ
            each epoch. False: every caption appears exactly once an epoch.
        features: a `features.CachedFeatures`: the batches then hold
            {"features": (B, L, D) float32} in place of images.
        from_epoch: None: one epoch, reshuffled each time it is iterated.
            An int e: endless epochs e, e+1, ..., epoch k shuffled by
            (seed, k) alone and bucketed on its own, so the stream is the
            same however often or wherever it is rebuilt (a resumed run
            sees the batches the interrupted one would have; distributed
            copies of the pipeline agree).

    Returns:
        A dataset of `({"images": (B, H, W, 3) uint8 or "features": (B, L, D),
        "token_ids": (B, T) int32}, target_ids (B, T) int32)`; within a batch
        T is the bucket's boundary - 1, and padding is 0.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive. Received: {batch_size}")
    boundaries = bucket_boundaries or default_bucket_boundaries(max_length)
    if boundaries[-1] <= max_length:
        raise ValueError(
            f"The last bucket boundary must exceed max_length so every caption "
            f"fits a bucket. Received: boundaries={boundaries}, "
            f"max_length={max_length}"
        )
    tokenizer = CaptionTokenizer(vocabulary, max_length)
    paths, captions = caption_pairs(records)
    if features is not None:
        paths = features.keys(paths)
    pairs = tf.data.Dataset.from_tensor_slices((paths, captions))

    def load(path, caption):
        token_ids, target_ids = tokenizer(caption)
        if features is not None:
            return {"features": features.lookup(path), "token_ids": token_ids}, target_ids
        return {"images": load_image(path, image_size), "token_ids": token_ids}, target_ids

    def caption_length(inputs, target_ids):
        return tf.shape(target_ids)[0]

    def bucketed(dataset):
        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.bucket_by_sequence_length(
            element_length_func=caption_length,
            bucket_boundaries=boundaries,
            # One more batch size than boundaries: the last bucket is unbounded.
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            pad_to_bucket_boundary=True,
            drop_remainder=drop_remainder,
        )

    if from_epoch is None:
        if shuffle:
            pairs = pairs.shuffle(len(captions), seed=seed, reshuffle_each_iteration=True)
        return bucketed(pairs).prefetch(tf.data.AUTOTUNE)
    base_seed = np.random.randint(2 ** 31) if seed is None else seed

    all_paths, all_captions = tf.constant(paths), tf.constant(captions)

    def epoch(index):
        if not shuffle:
            return bucketed(pairs)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(captions)), seed=tf.stack([tf.constant(base_seed, tf.int64), index]))
        return bucketed(tf.data.Dataset.from_tensor_slices(order).map(
            lambda i: (all_paths[i], all_captions[i])))

    epochs = tf.data.Dataset.range(from_epoch, 2 ** 62)
    return epochs.flat_map(epoch).prefetch(tf.data.AUTOTUNE)


def make_per_image_dataset(records, batch_size=64, image_size=64, shuffle=True, seed=None,
                           drop_remainder=False, features=None, from_epoch=None):
    """One element per image with its position in `records`, for sequence-level training.

    A sequence-level objective (`training.self_critical`) samples its own
    captions and scores them against all of an image's references, which it
    finds by the image's position in the same `records`.

    Args:
        records: `CaptionRecord`s; an image appears once per record.
        batch_size, image_size, shuffle, seed, drop_remainder, features,
            from_epoch: as in `make_caption_dataset` (no buckets: every
            element has the same shape).

    Returns:
        A dataset of `{"images": (B, H, W, 3) uint8 or "features": (B, L, D),
        "image_index": (B,) int32}`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive. Received: {batch_size}")
    if not records:
        raise ValueError("No records: nothing to train on.")
    paths = [record.image_path for record in records]
    if features is not None:
        paths = features.keys(paths)
    all_paths = tf.constant(paths)

    def load(index):
        path = all_paths[index]
        image = ({"features": features.lookup(path)} if features is not None
                 else {"images": load_image(path, image_size)})
        return {**image, "image_index": tf.cast(index, tf.int32)}

    def batched(indices):
        return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(
            batch_size, drop_remainder=drop_remainder)

    return _image_epochs(len(paths), batched, shuffle, seed, from_epoch)


def captions_per_image(records):
    """The most captions any record holds: the rows each image fills in a per-image batch."""
    most = max((len(record.captions) for record in records), default=0)
    if most == 0:
        raise ValueError(
            f"The {len(records)} records given hold no captions; nothing to train on.")
    return most


def _image_groups(records, batch_size):
    """(the records with captions, captions per image C, images per batch) of
    `make_image_group_dataset`."""
    records = [record for record in records if record.captions]
    per_image = captions_per_image(records)
    return records, per_image, max(1, batch_size // per_image)


def count_image_group_batches(records, batch_size, drop_remainder=False):
    """Batches per epoch of `make_image_group_dataset` with the same arguments."""
    records, _, images = _image_groups(records, batch_size)
    return len(records) // images if drop_remainder else -(-len(records) // images)


def make_image_group_dataset(records, vocabulary, batch_size=64, image_size=64,
                             max_length=24, shuffle=True, seed=None, drop_remainder=False,
                             features=None, from_epoch=None):
    """Batches that hold every caption of their images, each image once.

    When the encoder trains (the layers above a cached layer, say), a batch
    of captions from different images runs it once per caption; here it runs
    once per image. An image with fewer captions than the most any record
    holds (C) repeats its own, in order, to fill its C rows, so every image
    weighs the same.

    Args:
        batch_size: captions per batch: batch_size // C images (at least one).
        records, vocabulary, image_size, max_length, shuffle, seed,
            drop_remainder, features, from_epoch: as in `make_caption_dataset`
            (no buckets: a batch is padded to its longest caption).

    Returns:
        A dataset of `({"images": (N, H, W, 3) uint8 or "features": (N, L, D),
        "token_ids": (N * C, T) int32, "caption_image": (N * C,) int32},
        target_ids (N * C, T) int32)`: image n's captions are rows n * C to
        n * C + C - 1, and "caption_image" gives each row's image. Records
        without captions are left out.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive. Received: {batch_size}")
    records, per_image, images_per_batch = _image_groups(records, batch_size)
    tokenizer = CaptionTokenizer(vocabulary, max_length)
    paths = [record.image_path for record in records]
    if features is not None:
        paths = features.keys(paths)
    captions = [[record.captions[i % len(record.captions)] for i in range(per_image)]
                for record in records]
    all_paths, all_captions = tf.constant(paths), tf.constant(captions)

    def load(index):
        path = all_paths[index]
        tokens = [tokenizer(all_captions[index][i]) for i in range(per_image)]
        length = tf.reduce_max([tf.shape(ids)[0] for ids, _ in tokens])

        def padded(ids):
            return tf.pad(ids, [[0, length - tf.shape(ids)[0]]])

        token_ids = tf.stack([padded(ids) for ids, _ in tokens])  # (C, T_image)
        target_ids = tf.stack([padded(ids) for _, ids in tokens])
        image = ({"features": features.lookup(path)} if features is not None
                 else {"images": load_image(path, image_size)})
        return {**image, "token_ids": token_ids}, target_ids

    def flatten(inputs, target_ids):
        images = tf.shape(target_ids)[0]
        inputs = dict(inputs, token_ids=tf.reshape(inputs["token_ids"], (images * per_image, -1)),
                      caption_image=tf.repeat(tf.range(images, dtype=tf.int32), per_image))
        return inputs, tf.reshape(target_ids, (images * per_image, -1))

    def batched(indices):
        return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE).padded_batch(
            images_per_batch, drop_remainder=drop_remainder).map(flatten)

    return _image_epochs(len(paths), batched, shuffle, seed, from_epoch)


def _image_epochs(count, batched, shuffle, seed, from_epoch):
    """`batched` over the indices 0..count-1: one epoch reshuffled each time it is
    iterated (`from_epoch` None), or endless epochs as `make_caption_dataset`'s."""
    if from_epoch is None:
        indices = tf.data.Dataset.range(count)
        if shuffle:
            indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        return batched(indices).prefetch(tf.data.AUTOTUNE)
    base_seed = np.random.randint(2 ** 31) if seed is None else seed

    def epoch(index):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(base_seed, tf.int64), index]))
        return batched(tf.data.Dataset.from_tensor_slices(order))

    epochs = tf.data.Dataset.range(from_epoch, 2 ** 62)
    return epochs.flat_map(epoch).prefetch(tf.data.AUTOTUNE)
