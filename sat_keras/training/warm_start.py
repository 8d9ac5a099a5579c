"""Warm start: a new run's decoder begins with a trained model's decoder weights.

A hard-attention model has the weights of a soft one of the same size (the
sampler adds none), so training hard attention can start from a trained
soft model's attention and language model instead of from scratch
(`TrainingSettings.init_from`, `sat-keras train --init-from HANDLE`). A run
that trains its encoder (the synthetic presets' small CNN, or fine-tuned
layers) starts from the trained model's encoder too.
"""

from sat_keras.models.captioner import Captioner
from sat_keras.models.show_attend_tell import ShowAttendTell


def warm_start(model, handle):
    """Copies the trainable decoder weights of the model at `handle` into `model`.

    Args:
        model: a built `ShowAttendTell`.
        handle: what `Captioner.from_preset` takes (a run directory, a
            `.keras` file, an export, a registered name) naming one
            `ShowAttendTell` with the same vocabulary and decoder sizes.
            Its encoder's weights are copied too (all of them, batch-norm
            statistics included) when both models train their encoder,
            which must then be the same network. An encoder frozen in
            either keeps its own (pretrained) weights: fine-tuning from a
            model trained on a frozen encoder starts from the pretrained
            weights that the cached features came from, not from an
            export's quantized copy of them. Its decoding settings are not
            copied.

    Returns:
        The number of weight tensors copied.

    Raises:
        ValueError: `handle` holds an ensemble, another vocabulary, or a
            decoder whose weights differ in number or shape (the message
            names the first that differs).
    """
    source = Captioner.from_preset(handle)
    if not isinstance(source, ShowAttendTell):
        raise ValueError(f"init_from: {handle!r} holds a {type(source).__name__}; a warm "
                         f"start copies one ShowAttendTell's decoder: name one of its models.")
    if source.vocabulary != model.vocabulary:
        raise ValueError(
            f"init_from: {handle!r} has a vocabulary of {len(source.vocabulary)} tokens, "
            f"this run {len(model.vocabulary)}, or the same number in another order: a warm "
            f"start needs the vocabulary that this run builds (the same data and min_count).")
    name = f"init_from: {handle!r}"
    copied = copy_decoder_weights(source, model, name)
    if trains_encoder(model):
        if source.encoder is None:
            raise ValueError(f"{name} has no encoder to start this run's trained encoder "
                             f"from: name a model with the same encoder.")
        if not trains_encoder(source):  # frozen there: the pretrained weights this run has
            return copied
        copied += _assign_all(model.encoder.weights, source.encoder.weights, name,
                              "encoder", "build the same encoder")
    return copied


def trains_encoder(model):
    """Whether `model` trains its encoder, so that a warm start copies it too."""
    return model.encoder is not None and bool(model.encoder.trainable_weights)


def copy_decoder_weights(source, model, name):
    """Assigns `source`'s trainable decoder weights to `model`'s, which must match.

    Raises:
        ValueError: the weights differ in number or shape; the message names
            the source (`name`) and the first weight that differs.
    """
    return _assign_all(model.decoder.trainable_weights, source.decoder.trainable_weights,
                       name, "decoder", "build the same decoder sizes")


def _assign_all(targets, values, name, part, advice):
    """Assigns `values` to `targets` after checking that their number and shapes match."""
    if len(targets) != len(values):
        raise ValueError(f"{name}'s {part} has {len(values)} "
                         f"weights to copy, this run's {len(targets)}: {advice}.")
    for target, value in zip(targets, values):
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"{name}'s {value.path} has shape "
                             f"{tuple(value.shape)}, this run's {target.path} "
                             f"{tuple(target.shape)}: {advice}.")
    for target, value in zip(targets, values):
        target.assign(value)
    return len(targets)
