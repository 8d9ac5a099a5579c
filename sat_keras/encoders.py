"""Image encoders: uint8 images (batch, H, W, 3) -> annotations (batch, L, D).

Every encoder does its own preprocessing, so raw uint8 images go in
everywhere (training, captioning, export).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sat_keras")
class SmallCNNEncoder(keras.layers.Layer):
    """A small from-scratch CNN for the built-in synthetic data.

    Each block is a stride-2 3x3 convolution (ReLU), and a last stride-1 3x3
    convolution widens the receptive field, so an image of side S gives an
    (S / 2^blocks)^2 grid: 64x64 -> 8x8 = 64 locations with three blocks.
    Captions see every image five times an epoch, so it is kept light
    (about 10 MFLOPs per 64x64 image with the default filters).

    1. x = image / 127.5 - 1                              (batch, S, S, 3)
    2. blocks of conv3x3/2, then conv3x3                  (batch, S/2^n, S/2^n, D)
    3. flatten the grid                                   (batch, L, D)

    Args:
        filters: output channels of each block (tuple of positive ints);
            the last is the annotation size D.

    Call arguments:
        images: uint8 or float (batch, height, width, 3) with values 0..255.

    Returns:
        Annotations (batch, num_locations, filters[-1]), row-major grid order.

    Example:
    >>> encoder = SmallCNNEncoder(filters=(8, 16))
    >>> tuple(encoder(np.zeros((2, 32, 32, 3), "uint8")).shape)
    (2, 64, 16)
    """

    def __init__(self, filters=(16, 32, 64), **kwargs):
        super().__init__(**kwargs)
        filters = tuple(filters)
        if not filters or any(not isinstance(f, int) or f < 1 for f in filters):
            raise ValueError(
                f"filters must be a non-empty tuple of positive integers. "
                f"Received: filters={filters!r}"
            )
        self.filters = filters

    def build(self, images_shape):
        self.convolutions = []
        shape = tuple(images_shape)
        strides = [2] * len(self.filters) + [1]
        for index, (channels, stride) in enumerate(zip(self.filters + self.filters[-1:], strides)):
            convolution = keras.layers.Conv2D(
                channels, 3, strides=stride, padding="same", activation="relu",
                name=f"conv{index + 1}")
            convolution.build(shape)
            shape = convolution.compute_output_shape(shape)
            self.convolutions.append(convolution)

    def call(self, images):
        x = ops.cast(images, self.compute_dtype) / 127.5 - 1.0  # (batch, H, W, 3)
        for convolution in self.convolutions:
            x = convolution(x)  # (batch, h, w, channels)
        _, height, width, channels = ops.shape(x)
        return ops.reshape(x, (-1, height * width, channels))  # (batch, L, D)

    def compute_output_shape(self, images_shape):
        batch, height, width = images_shape[:3]
        factor = 2 ** len(self.filters)
        locations = None
        if height is not None and width is not None:
            locations = -(-height // factor) * -(-width // factor)
        return (batch, locations, self.filters[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"filters": list(self.filters)})
        return config
