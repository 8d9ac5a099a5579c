"""`HardAttentionSampler`: the paper's stochastic ("hard") choice of location."""

import keras
from keras import ops

from sat_keras.layers.products import weighted_annotations

TINY = 1e-8  # keeps log alpha finite where softmax underflows


@keras.saving.register_keras_serializable(package="sat_keras")
class HardAttentionSampler(keras.layers.Layer):
    """Samples one location per image from the attention weights (sec. 4.1).

    1. s ~ Categorical(alpha), by the Gumbel-max rule:
       s = argmax_i (log alpha_i + g_i), g_i = -log(-log u_i), u ~ U(0, 1)
                                                   (batch,)
    2. one_hot = onehot(s)                         (batch, num_locations)
    3. z = a_s = sum_i one_hot_i a_i               (batch, annotation_dim)
    4. log p(s) = log alpha_s                      (batch,)

    No gradient flows through the choice of s (it is discrete); it flows
    through log p(s), for REINFORCE.

    Args:
        seed: seed of the layer's `keras.random.SeedGenerator`.

    Call arguments:
        attention_weights: alpha (batch, num_locations), rows summing to 1;
            or (batch * beams, num_locations), an image's beams in
            consecutive rows, all choosing among that image's annotations.
        annotations: a (batch, num_locations, annotation_dim).
        uniform_noise: optional u (batch, num_locations) in (0, 1); drawn
            from the seed generator when omitted (pass it to draw noise for
            all steps at once outside a loop).
        argmax: take s = argmax alpha instead of sampling.

    Returns:
        `(one_hot, context, log_prob)`: (batch, L), (batch, D), (batch,).

    Example:
    >>> sampler = HardAttentionSampler(seed=0)
    >>> one_hot, context, log_prob = sampler(np.array([[0.0, 1.0]]), np.eye(2)[None])
    >>> keras.ops.convert_to_numpy(one_hot).tolist(), float(log_prob[0])
    ([[0.0, 1.0]], 0.0)

    Reference:
        Xu et al., "Show, Attend and Tell", ICML 2015, sec. 4.1, eqs. (8)-(12).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, attention_weights, annotations, uniform_noise=None, argmax=False):
        alpha = ops.cast(attention_weights, "float32")  # (batch, L)
        log_alpha = ops.log(alpha + TINY)  # (batch, L)
        if argmax:
            scores = log_alpha  # (batch, L)
        else:
            if uniform_noise is None:
                uniform_noise = keras.random.uniform(
                    ops.shape(alpha), minval=TINY, maxval=1.0, seed=self.seed_generator)
            noise = ops.clip(ops.cast(uniform_noise, "float32"), TINY, 1.0 - TINY)  # (b, L)
            gumbel = -ops.log(-ops.log(noise))  # (batch, L)
            scores = log_alpha + gumbel  # (batch, L)
        num_locations = ops.shape(alpha)[-1]
        one_hot = ops.stop_gradient(
            ops.one_hot(ops.argmax(scores, axis=-1), num_locations))  # (batch, L)
        context = weighted_annotations(
            ops.cast(one_hot, annotations.dtype), annotations)  # (batch, D): a_s
        log_prob = ops.sum(one_hot * log_alpha, axis=-1)  # (batch,)
        return one_hot, context, log_prob

    def compute_output_shape(self, attention_weights_shape, annotations_shape):
        _, num_locations, annotation_dim = annotations_shape
        batch = attention_weights_shape[0]
        return (batch, num_locations), (batch, annotation_dim), (batch,)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config
