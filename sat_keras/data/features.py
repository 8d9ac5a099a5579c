"""Encoder features extracted once into sharded TFRecord files, and read back.

Layout of a feature folder:
    features.json                      the index: encoder, dtype, shape, shards,
                                       the folder extraction ran in
    features-00000-of-00003.tfrecord   tf.train.Examples {"image_path", "features"}
Shards are written to a temporary name and renamed when complete, and the
index is written last, so a half-written extraction is never read.

Images are found by file, not by spelling: features extracted for
`data/flickr8k/x.jpg` serve `/home/me/data/flickr8k/x.jpg` and
`./data/flickr8k/x.jpg` too.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from sat_keras.data.images import make_image_dataset

INDEX_FILE = "features.json"
_FORMAT = "sat_keras.features"
_FORMAT_VERSION = 1
DTYPES = ("float16", "float32")


def _example(path, features):
    return tf.train.Example(features=tf.train.Features(feature={
        "image_path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode()])),
        "features": tf.train.Feature(bytes_list=tf.train.BytesList(value=[features.tobytes()])),
    })).SerializeToString()


def extract_features(image_paths, encoder, output_dir, image_size, batch_size=32,
                     shard_size=1000, dtype="float16", verbose=1, print_fn=print):
    """Runs `encoder` over every image once and writes the annotations.

    Args:
        image_paths: image files (duplicates are extracted once).
        encoder: a layer mapping uint8 (batch, S, S, 3) to (batch, L, D).
        output_dir: the feature folder (created).
        image_size: S, the side images are resized to.
        batch_size: images per encoder call.
        shard_size: images per TFRecord file.
        dtype: "float16" (half the disk and memory) or "float32" (exact).
        verbose: 1 shows a progress bar.

    Returns:
        dict: "count", "seconds", "images_per_second", "shape" (L, D).

    Raises:
        ValueError: every image got the same features (an encoder whose
            weights were not loaded), as soon as the first batch shows it.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}. Received: {dtype!r}")
    paths = list(dict.fromkeys(image_paths))
    if not paths:
        raise ValueError("No images to extract features from.")
    os.makedirs(output_dir, exist_ok=True)
    num_shards = -(-len(paths) // shard_size)
    progress = keras.utils.Progbar(len(paths), unit_name="image") if verbose else None
    shards, shape, writer, written = [], None, None, 0
    reference, varied = None, False
    advice = "Check that the encoder's weights are loaded"
    started = time.perf_counter()
    # One compiled graph (at most two shapes: full and last batch), not op-by-op eager calls.
    encode = tf.function(lambda images: tf.cast(encoder(images, training=False), dtype),
                         reduce_retracing=True)
    for images in make_image_dataset(paths, image_size, batch_size=batch_size):
        annotations = keras.ops.convert_to_numpy(encode(images))
        if not varied:  # checked until one image's features differ from the first's
            reference = annotations[0] if reference is None else reference
            varied = not _all_equal([reference, *annotations])
            if not varied and written == 0 and len(annotations) > 1:  # fail fast
                raise _constant_error(f"the first {len(annotations)} images", advice)
        shape = list(annotations.shape[1:])
        for features in annotations:
            if written % shard_size == 0:
                if writer is not None:
                    writer.close()
                    os.replace(shards[-1] + ".tmp", shards[-1])
                shards.append(os.path.join(
                    output_dir, f"features-{len(shards):05d}-of-{num_shards:05d}.tfrecord"))
                writer = tf.io.TFRecordWriter(shards[-1] + ".tmp")
            writer.write(_example(paths[written], features))
            written += 1
        if progress:
            progress.update(written)
    writer.close()
    os.replace(shards[-1] + ".tmp", shards[-1])
    if not varied and written > 1:  # the index is not written: the folder is never read
        raise _constant_error(f"all {written} images", advice)
    seconds = time.perf_counter() - started
    index = {"format": _FORMAT, "version": _FORMAT_VERSION, "count": written, "dtype": dtype,
             "shape": shape, "image_size": image_size,
             "encoder": keras.saving.serialize_keras_object(encoder),
             "shards": [os.path.basename(s) for s in shards],
             "working_dir": os.getcwd()}  # what relative image paths are relative to
    with open(os.path.join(output_dir, INDEX_FILE + ".tmp"), "w", encoding="utf-8") as file:
        json.dump(index, file)
    os.replace(os.path.join(output_dir, INDEX_FILE + ".tmp"), os.path.join(output_dir, INDEX_FILE))
    rate = written / seconds if seconds > 0 else float("inf")
    print_fn(f"Extracted features of {written} images {tuple(shape)} in {seconds:.1f} s "
             f"({rate:.1f} images/s) into {output_dir}")
    return {"count": written, "seconds": seconds, "images_per_second": rate, "shape": shape}


def _all_equal(arrays):
    return all(np.array_equal(array, arrays[0]) for array in arrays[1:])


def _constant_error(what, advice):
    """The error for images that all have the same features.

    Distinct images never give identical annotations from a working encoder;
    identical ones (typically all zeros) mean it ran with weights that were
    never loaded, and a captioner trained on them learns nothing of the images.
    """
    return ValueError(f"Every one of {what} has the same features: they carry nothing "
                      f"about the images. {advice}.")


class CachedFeatures:
    """Features read back from `extract_features`' folder, looked up by image path in-graph.

    All features are held in memory (a non-trainable `tf.Variable`, so they
    stay out of traced graphs): Flickr8k's 8,000 14x14x512 grids take 1.6 GB
    in float16.

    Args:
        feature_dir: the folder `extract_features` wrote.
        allow_constant: accept a folder whose images all have the same
            features (an image-blind baseline); by default that is an error.
    """

    def __init__(self, feature_dir, allow_constant=False):
        index_path = os.path.join(feature_dir, INDEX_FILE)
        if not os.path.exists(index_path):
            raise FileNotFoundError(
                f"{index_path} does not exist: extract the features first "
                f"(`sat-keras extract-features` or data.features.extract_features).")
        with open(index_path, encoding="utf-8") as file:
            self.index = json.load(file)
        if self.index.get("format") != _FORMAT:
            raise ValueError(f"{index_path} is not a sat_keras feature index.")
        dtype, shape = self.index["dtype"], tuple(self.index["shape"])
        paths, arrays = [], []
        files = [os.path.join(feature_dir, shard) for shard in self.index["shards"]]
        for record in tf.data.TFRecordDataset(files):
            example = tf.io.parse_single_example(record, {
                "image_path": tf.io.FixedLenFeature([], tf.string),
                "features": tf.io.FixedLenFeature([], tf.string)})
            paths.append(example["image_path"].numpy().decode())
            arrays.append(np.frombuffer(example["features"].numpy(), dtype).reshape(shape))
        if len(paths) != self.index["count"]:
            raise ValueError(
                f"{feature_dir}: the index lists {self.index['count']} images but the shards "
                f"hold {len(paths)}; extract the features again.")
        if not allow_constant and len(arrays) > 1 and _all_equal(arrays):
            raise _constant_error(
                f"the {len(arrays)} images in {feature_dir}",
                "Extract them again with an encoder whose weights are loaded, or pass "
                "allow_constant=True for an image-blind baseline")
        self.paths = paths
        self.shape = shape
        self._positions = {path: position for position, path in enumerate(paths)}
        # Relative paths were relative to the extraction's folder (indexes
        # written before it was recorded: assumed to be the current one).
        working_dir = self.index.get("working_dir", os.getcwd())
        self._keys_by_file = {_file(os.path.join(working_dir, path)): path for path in paths}
        self._features = tf.Variable(np.stack(arrays), trainable=False)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(paths),
                                                tf.range(len(paths), dtype=tf.int64)),
            default_value=-1)

    def keys(self, image_paths):
        """The key under which each image's features are stored, for `lookup` in a graph.

        A path's key is itself when extraction saw that spelling, else the
        stored path that names the same file.

        Raises:
            ValueError: naming the images that have no features here.
        """
        keys = [path if path in self._positions else self._keys_by_file.get(_file(path))
                for path in image_paths]
        absent = list(dict.fromkeys(p for p, key in zip(image_paths, keys) if key is None))
        if absent:
            raise ValueError(
                f"{len(absent)} images have no cached features, e.g. {absent[:3]}; "
                f"extract features for this dataset first.")
        return keys

    def lookup(self, image_paths):
        """float32 features, (L, D) for one path or (N, L, D) for N.

        Python strings are matched by file (`keys`); string tensors, as in a
        `tf.data` map, must hold `keys` already.
        """
        if isinstance(image_paths, str):
            image_paths = self.keys([image_paths])[0]
        elif isinstance(image_paths, (list, tuple)):
            image_paths = self.keys(image_paths)
        position = self._table.lookup(tf.convert_to_tensor(image_paths, tf.string))
        return tf.cast(tf.gather(self._features, position), tf.float32)


def _file(path):
    """One spelling per file: absolute, normalized, symbolic links resolved."""
    return os.path.realpath(os.path.abspath(path))
