"""Image encoders: uint8 images (batch, H, W, 3) -> annotations (batch, L, D).

Every encoder does its own preprocessing, so raw uint8 images go in
everywhere (training, captioning, export).
"""

import keras
import tensorflow as tf
from keras import ops


def flatten_grid(grid):
    """(batch, h, w, D) feature map -> (batch, h * w, D) annotations, row-major."""
    _, height, width, channels = ops.shape(grid)
    return ops.reshape(grid, (-1, height * width, channels))  # (batch, L, D)


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
        return flatten_grid(x)  # (batch, L, D)

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


# name: (keras.applications constructor, input side, grid layer or None for
# the last output, preprocessing mode). "caffe": RGB->BGR minus the ImageNet
# mean; "tf": x / 127.5 - 1; "none": the network rescales inside itself.
BACKBONES = {
    "vgg16": ("VGG16", 224, "block5_conv3", "caffe"),  # 14x14x512
    "vgg19": ("VGG19", 224, "block5_conv4", "caffe"),  # 14x14x512, the paper's conv5_4
    "resnet50": ("ResNet50", 224, None, "caffe"),  # 7x7x2048 (conv5_block3_out)
    "resnet50_conv4": ("ResNet50", 224, "conv4_block6_out", "caffe"),  # 14x14x1024
    "resnet101": ("ResNet101", 224, None, "caffe"),
    "resnet152": ("ResNet152", 224, None, "caffe"),
    "resnet50_v2": ("ResNet50V2", 224, None, "tf"),
    "resnet101_v2": ("ResNet101V2", 224, None, "tf"),
    "resnet152_v2": ("ResNet152V2", 224, None, "tf"),
    "inception_v3": ("InceptionV3", 299, None, "tf"),  # 8x8x2048
    "mobilenet": ("MobileNet", 224, "conv_pw_11_relu", "tf"),  # 14x14x512
    "mobilenet_last": ("MobileNet", 224, None, "tf"),  # 7x7x1024
    "mobilenet_v2": ("MobileNetV2", 224, None, "tf"),  # 7x7x1280
    "mobilenet_v3_small": ("MobileNetV3Small", 224, None, "none"),
    "mobilenet_v3_large": ("MobileNetV3Large", 224, None, "none"),
    **{f"efficientnet_b{i}": (f"EfficientNetB{i}", size, None, "none")
       for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
}
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def encoder_names():
    return sorted(BACKBONES)


@keras.saving.register_keras_serializable(package="sat_keras")
class PretrainedEncoder(keras.layers.Layer):
    """A keras.applications CNN cut at its attention grid, preprocessing inside.

    1. x = preprocess(image) per the backbone's training   (batch, S, S, 3)
    2. grid = backbone up to the grid layer               (batch, h, w, D)
    3. flatten the grid                                   (batch, h * w, D)

    Args:
        backbone: a name from `encoder_names()` (e.g. "mobilenet" gives
            conv_pw_11's 14x14x512 grid at 224, the paper's VGG conv5_4 shape).
        weights: "imagenet" (downloads), None (random), or a weights file.
        trainable: fine-tune the backbone (False: frozen).
        trainable_layers: with `trainable`, only the top N layers with
            weights (batch normalisation not counted) are fine-tuned (None:
            all). Batch normalisation stays frozen and the backbone always
            runs in inference mode, the usual practice when fine-tuning on
            small batches. Give these weights their own learning rate with
            `optimizers.FineTuningAdam`.
        backbone_kwargs: extra constructor arguments (e.g. {"alpha": 0.25}).
        cache_layer: the name of a layer below the grid whose outputs are
            cached (`data.features`), e.g. "conv4_block6_out" under
            ResNet50's conv5 stage. Cached features are then that layer's
            flattened outputs, `from_cache` runs the layers above it, and
            with `trainable` only those layers are fine-tuned (the top
            `trainable_layers` of them if given): the frozen layers below
            run once per image, at extraction.

    Call arguments:
        images: uint8 or float (batch, S, S, 3), values 0..255, S = `image_size`.

    Returns:
        Annotations (batch, L, D).

    Weights are not reloaded from `weights` when a saved model is loaded:
    they come from the saved file (`from_config` sets weights=None).

    Example:
    >>> encoder = PretrainedEncoder("mobilenet", weights=None, backbone_kwargs={"alpha": 0.25})
    >>> tuple(encoder(np.zeros((1, 224, 224, 3), "uint8")).shape)
    (1, 196, 128)
    """

    def __init__(self, backbone, weights="imagenet", trainable=False, trainable_layers=None,
                 backbone_kwargs=None, cache_layer=None, **kwargs):
        kwargs.setdefault("name", "encoder")  # FineTuningAdam finds its weights by this name
        super().__init__(trainable=trainable, **kwargs)
        if trainable_layers is not None and (
                not isinstance(trainable_layers, int) or trainable_layers < 1):
            raise ValueError(
                f"trainable_layers must be None or a positive integer. "
                f"Received: trainable_layers={trainable_layers!r}")
        if backbone not in BACKBONES:
            raise ValueError(
                f"Unknown backbone {backbone!r}. Available: {encoder_names()}")
        self.backbone = backbone
        self.weights_source = weights
        self.trainable_layers = trainable_layers
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.cache_layer = cache_layer
        self.image_size = BACKBONES[backbone][1]
        # The network and its weights are made here, where the caller runs
        # eagerly: made in build, the weight file's assignments would be lost
        # when Keras builds an enclosing model symbolically (its stateless
        # scope drops them) or become ops of a traced function, and the
        # network would compute with its initial values. `tf.init_scope` is
        # the TensorFlow backend's way out of a trace, the one `tf.*` use here.
        # The name scope gives the weights the paths build would ("encoder/..."),
        # by which `FineTuningAdam` finds them.
        with tf.init_scope(), keras.name_scope(self.name):
            self.network = self._build_network()
            self.head = self.trunk = None
            if cache_layer is not None:
                self.head = self._build_head(cache_layer)
                self.trunk = keras.Model(
                    self.network.input, self.network.get_layer(cache_layer).output,
                    name=f"{self.backbone}_trunk")

    def build(self, images_shape=None):
        pass  # the network and its weights were made in __init__

    def _build_network(self):
        constructor, size, layer_name, _ = BACKBONES[self.backbone]
        network = getattr(keras.applications, constructor)(
            include_top=False, weights=self.weights_source, input_shape=(size, size, 3),
            **self.backbone_kwargs)
        output = network.output if layer_name is None else network.get_layer(layer_name).output
        network = keras.Model(network.input, output, name=f"{self.backbone}_grid")
        network.trainable = self.trainable
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        if self.trainable_layers and self.cache_layer is None:
            weighted = [layer for layer in network.layers if layer.trainable_weights]
            for layer in weighted[:-self.trainable_layers]:
                layer.trainable = False
        return network

    def _build_head(self, cache_layer):
        """The layers above `cache_layer`, sharing the network's weights; the
        layers below it frozen, and with `trainable_layers` all but its top ones."""
        try:
            cut = self.network.get_layer(cache_layer)
        except ValueError:
            raise ValueError(f"cache_layer: {self.backbone} has no layer {cache_layer!r}.") \
                from None
        head = keras.Model(cut.output, self.network.output, name=f"{self.backbone}_head")
        above = {id(layer) for layer in head.layers}
        for layer in self.network.layers:
            if id(layer) not in above:
                layer.trainable = False
        if self.trainable_layers:
            weighted = [layer for layer in head.layers if layer.trainable_weights]
            for layer in weighted[:-self.trainable_layers]:
                layer.trainable = False
        return head

    def _preprocess(self, images):
        x = ops.cast(images, self.compute_dtype)  # (batch, S, S, 3)
        mode = BACKBONES[self.backbone][3]
        if mode == "tf":
            return x / 127.5 - 1.0
        if mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(IMAGENET_MEAN_BGR, x.dtype)
        return x

    def call(self, images, training=None):
        grid = self.network(self._preprocess(images), training=False)  # (batch, h, w, D)
        return flatten_grid(grid)  # (batch, L, D)

    def compute_output_shape(self, images_shape):
        _, height, width, channels = self.network.output.shape
        return (images_shape[0], height * width, channels)

    @property
    def feature_shape(self):
        """(L, D) of what a feature cache holds for this encoder: the cache
        layer's flattened outputs, or the annotations when it has none."""
        layer = self.network.output if self.head is None else self.head.input
        _, height, width, channels = layer.shape
        return (height * width, channels)

    def to_cache(self, images):
        """What a feature cache holds for these images (batch, L_c, D_c): the cache
        layer's flattened outputs, or the annotations when it has none."""
        if self.head is None:
            return self(images, training=False)
        return flatten_grid(self.trunk(self._preprocess(images), training=False))

    def from_cache(self, features):
        """Annotations (batch, L, D) from cached features (batch, L_c, D_c):
        the layers above `cache_layer` (the features themselves without one)."""
        if self.head is None:
            return ops.convert_to_tensor(features, self.compute_dtype)
        _, height, width, channels = self.head.input.shape
        if tuple(features.shape[1:]) != (height * width, channels):
            raise ValueError(
                f"Cached features of shape {tuple(features.shape[1:])} given to an encoder "
                f"cached at {self.cache_layer}, which gives {(height * width, channels)}: "
                f"extract the features at that layer (for ResNet50's conv4_block6_out, "
                f"`sat-keras extract-features --encoder resnet50_conv4`).")
        grid = ops.reshape(ops.cast(features, self.compute_dtype),
                           (-1, height, width, channels))  # (batch, h_c, w_c, D_c)
        return flatten_grid(self.head(grid, training=False))  # (batch, L, D)

    def get_config(self):
        config = super().get_config()
        config.update({"backbone": self.backbone, "weights": self.weights_source,
                       "trainable_layers": self.trainable_layers,
                       "backbone_kwargs": self.backbone_kwargs})
        if self.cache_layer is not None:
            config["cache_layer"] = self.cache_layer
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**dict(config, weights=None))


def weights_argument(value):
    """A weights flag as `build_encoder` takes it: None (not given) is "imagenet", "none" None."""
    return {None: "imagenet", "none": None}.get(value, value)


def build_encoder(name, weights="imagenet", trainable=False, trainable_layers=None,
                  cache_layer=None, **backbone_kwargs):
    """An image encoder by name: "small_cnn" or one of `encoder_names()`."""
    if name == "small_cnn":
        if cache_layer is not None:
            raise ValueError("cache_layer applies to a pretrained encoder, not small_cnn.")
        return SmallCNNEncoder(**backbone_kwargs)
    return PretrainedEncoder(name, weights=weights, trainable=trainable,
                             trainable_layers=trainable_layers,
                             backbone_kwargs=backbone_kwargs, cache_layer=cache_layer)
