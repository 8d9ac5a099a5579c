"""Image files -> uint8 RGB arrays: the decoding training, captioning and export share."""

import os

import numpy as np
import tensorflow as tf

from sat_keras.tf_errors import op_error_text


def decode_and_resize(data, image_size):
    """One encoded image (JPEG/PNG/GIF/BMP, any channels) -> uint8 RGB (S, S, 3).

    `image_size` None keeps the image's own size.
    """
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    if image_size is None:
        return image

    def resize():
        resized = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    # An image already of the size is kept as it is: its pixels exactly, and
    # without the antialiased resize's cost (3/4 of a 224x224 JPEG's load time).
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    same_size = tf.logical_and(tf.equal(height, image_size), tf.equal(width, image_size))
    image = tf.cond(same_size, lambda: image, resize)
    return tf.ensure_shape(image, (image_size, image_size, 3))


def load_image(path, image_size):
    """Reads, decodes (JPEG/PNG/GIF/BMP, any channels) and resizes to uint8 RGB."""
    return decode_and_resize(tf.io.read_file(path), image_size)


def make_image_dataset(image_paths, image_size=64, batch_size=64):
    """Batches of decoded images, in order, for captioning and evaluation."""
    dataset = tf.data.Dataset.from_tensor_slices(list(image_paths))
    dataset = dataset.map(lambda path: load_image(path, image_size),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_image_files(paths, image_size):
    """Loads image files one by one, keeping going past bad ones.

    Args:
        paths: image files (str or path-like) or encoded images (bytes).

    Returns:
        `(images, loaded_paths, errors)`: uint8 (N, S, S, 3) for the files that
        decoded, their paths, and a list of `(path, message)` for the others
        (missing, unreadable, not an image).
    """
    images, loaded_paths, errors = [], [], []
    for path in paths:
        try:
            data = path if isinstance(path, bytes) else tf.io.read_file(os.fspath(path))
            images.append(decode_and_resize(data, image_size).numpy())
            loaded_paths.append(path)
        except tf.errors.NotFoundError:
            errors.append((path, "file not found"))
        except tf.errors.OpError as error:
            errors.append((path, f"not a decodable image ({op_error_text(error)})"))
    if images:
        return np.stack(images), loaded_paths, errors
    return np.zeros((0, image_size, image_size, 3), np.uint8), loaded_paths, errors
