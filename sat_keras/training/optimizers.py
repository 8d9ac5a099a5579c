"""`FineTuningAdam`: Adam with its own learning rate for a fine-tuned encoder."""

import keras


@keras.saving.register_keras_serializable(package="sat_keras")
class FineTuningAdam(keras.optimizers.Adam):
    """Adam whose step is scaled for the variables of the image encoder.

    Variables with `encoder_name` in their path (a `PretrainedEncoder` is
    named "encoder") take steps of `learning_rate * encoder_multiplier`;
    the decoder takes steps of `learning_rate`. With Adam, scaling the
    gradient would change nothing, so the step itself is scaled.

    Args:
        learning_rate: the decoder's learning rate (float or schedule).
        encoder_multiplier: the encoder's learning rate relative to it (>= 0).
        encoder_name: the encoder layer's name.
        **kwargs: the other `keras.optimizers.Adam` arguments.

    Example:
    >>> optimizer = FineTuningAdam(1e-3, encoder_multiplier=0.1)
    """

    def __init__(self, learning_rate=0.001, encoder_multiplier=0.1, encoder_name="encoder",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if encoder_multiplier < 0:
            raise ValueError(
                f"encoder_multiplier must be >= 0. Received: {encoder_multiplier!r}")
        self.encoder_multiplier = encoder_multiplier
        self.encoder_name = encoder_name

    def build(self, variables):
        super().build(variables)
        # update_step may receive the backend's variable, not the Keras one, so the
        # encoder's variables are remembered by the optimizer's own variable key.
        self._encoder_keys = {self._var_key(v) for v in variables
                              if self.encoder_name in v.path.split("/")}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._encoder_keys:
            learning_rate = learning_rate * self.encoder_multiplier
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"encoder_multiplier": self.encoder_multiplier,
                       "encoder_name": self.encoder_name})
        return config
