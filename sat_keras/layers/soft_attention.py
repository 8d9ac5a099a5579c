"""`BahdanauStyleSoftAttention`: the paper's deterministic attention."""

import keras
from keras import ops

from sat_keras.layers.products import flat_apply
from sat_keras.layers.products import matmul_with_transposed_kernel
from sat_keras.layers.products import weighted_annotations

ACTIVATIONS = ("tanh", "relu")


@keras.saving.register_keras_serializable(package="sat_keras")
class BahdanauStyleSoftAttention(keras.layers.Layer):
    """Additive attention over the annotation grid (Xu et al. 2015, sec. 3.1.2).

    The projection of the annotations, step 1, does not depend on the decoder
    state: `project_annotations` computes it once per image and `call` reuses
    it at every word.

    1. keys = W_a a + b_a                          (batch, num_locations, units)
    2. e_t = v . activation(keys + W_h h_{t-1})     (batch, num_locations)
    3. alpha_t = softmax(e_t)                       (batch, num_locations)
    4. z_t = sum_i alpha_ti a_i                     (batch, annotation_dim)

    Args:
        units: size of the attention MLP's hidden layer (positive int).
        activation: "tanh" (the authors' code) or "relu" (some ports).

    Call arguments:
        query: the previous hidden state h_{t-1}, (batch, query_dim); or
            (batch * beams, query_dim), the beams of an image in consecutive
            rows, which all attend over that image's annotations.
        annotations: a, (batch, num_locations, annotation_dim).
        keys: optional output of `project_annotations(annotations)`;
            computed here when omitted.
        query_kernel_t: optional W_h transposed (units, query_dim),
            computed once outside a recurrence that will be differentiated:
            the outputs are the same, the query's gradient faster
            (`sat_keras.layers.products.matmul_with_transposed_kernel`).

    Returns:
        `(context, attention_weights)`: z_t (batch, annotation_dim) and
        alpha_t (batch, num_locations), which sums to 1 over locations (one
        row per query row).

    Example:
    >>> layer = BahdanauStyleSoftAttention(units=8)
    >>> context, weights = layer(np.zeros((2, 16)), np.ones((2, 4, 8)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 8), (2, 4))

    Reference:
        Xu et al., "Show, Attend and Tell", ICML 2015, eqs. (4)-(6), (13);
        Bahdanau et al., ICLR 2015.
    """

    def __init__(self, units, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer. Received: units={units!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {ACTIVATIONS}. Received: activation={activation!r}"
            )
        self.units = units
        self.activation = activation

    def build(self, query_shape, annotations_shape):
        self.annotation_projection = keras.layers.Dense(self.units, name="annotation_projection")
        self.annotation_projection.build(annotations_shape)
        self.query_projection = keras.layers.Dense(
            self.units, use_bias=False, name="query_projection"
        )
        self.query_projection.build(query_shape)
        self.score_vector = self.add_weight(
            shape=(self.units,), initializer="glorot_uniform", name="score_vector")

    def project_annotations(self, annotations):
        """Step 1, once per image: W_a a + b_a."""
        return flat_apply(self.annotation_projection, annotations)  # (batch, L, units)

    def call(self, query, annotations, keys=None, query_kernel_t=None):
        if keys is None:
            keys = self.project_annotations(annotations)  # (batch, num_locations, units)
        if query_kernel_t is None:
            query_keys = self.query_projection(query)  # (batch, units)
        else:
            query_keys = matmul_with_transposed_kernel(
                query, ops.cast(self.query_projection.kernel, query.dtype),
                ops.cast(query_kernel_t, query.dtype))  # (batch, units)
        # The queries of an image's beams (consecutive rows) meet its keys
        # as one group: each image's keys and annotations are read once.
        images, num_locations = ops.shape(keys)[0], ops.shape(keys)[1]
        query_keys = ops.reshape(query_keys, (images, -1, 1, self.units))  # (b, beams, 1, units)
        hidden = ops.expand_dims(keys, 1) + query_keys  # (batch, beams, L, units)
        hidden = ops.tanh(hidden) if self.activation == "tanh" else ops.relu(hidden)
        # v . hidden as one (batch * beams * L, units) x (units, 1) product: a
        # multiply and a sum would write (and differentiate) one more tensor
        # of hidden's size per word.
        scores = ops.reshape(
            ops.matmul(ops.reshape(hidden, (-1, self.units)),
                       ops.expand_dims(ops.cast(self.score_vector, hidden.dtype), -1)),
            (-1, num_locations))  # (batch * beams, num_locations)
        attention_weights = ops.softmax(scores, axis=-1)  # (batch * beams, num_locations)
        context = weighted_annotations(attention_weights, annotations)  # (b * beams, D)
        return context, attention_weights

    def compute_output_shape(self, query_shape, annotations_shape):
        _, num_locations, annotation_dim = annotations_shape
        batch = query_shape[0]
        return (batch, annotation_dim), (batch, num_locations)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "activation": self.activation})
        return config
