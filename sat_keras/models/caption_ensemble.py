"""`CaptionEnsemble`: several captioners searching together, their word probabilities averaged."""

import math

import tensorflow as tf
from keras import ops

from sat_keras import decoding
from sat_keras.models.caption_batches import caption_in_batches
from sat_keras.models.caption_batches import encoder_input_shapes
from sat_keras.models.caption_batches import one_input


class CaptionEnsemble:
    """Captions with several `ShowAttendTell` models at once.

    Every model keeps its own decoder state and memory; at each step of a
    search the ensemble's word distribution is the mean of theirs, and its
    attention the mean of theirs:

        1. log p_m = log_softmax(logits_m)              # (rows, V) per model m
        2. log p = log (1/M sum_m p_m) = logsumexp_m(log p_m) - log M   # (rows, V)
        3. alpha = 1/M sum_m alpha_m                    # (rows, L)

    This is the ensemble of captioning papers (e.g. ruotianluo's
    `AttEnsemble`): probabilities are averaged, not logits. Every search
    of `decoding` runs over it unchanged, since it keeps the step contract.

    Args:
        models: `ShowAttendTell` models with the same vocabulary (same
            tokens in the same order). Each encodes the inputs itself, so
            with images the encoders may differ; with features they must
            all read the same features. Their grids must have the same
            number of locations L.

    Example:
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> models = [ShowAttendTell(vocabulary, embedding_dim=8, units=16, attention_dim=8)
    ...           for _ in range(2)]
    >>> ensemble = CaptionEnsemble(models)
    >>> outputs = ensemble.caption(features=np.ones((3, 4, 8), "float32"), beam_size=2,
    ...                            max_length=5)
    >>> len(outputs["captions"]), outputs["attention_weights"].shape
    (3, (3, 5, 4))
    """

    def __init__(self, models):
        models = list(models)
        if not models:
            raise ValueError("An ensemble needs at least one model. Received none.")
        tokens = models[0].vocabulary.tokens
        for index, model in enumerate(models[1:], start=1):
            if model.vocabulary.tokens != tokens:
                raise ValueError(
                    f"Every model of an ensemble must share one vocabulary; model {index}'s "
                    f"({len(model.vocabulary)} words) differs from model 0's ({len(tokens)}).")
        self.models = models
        self.vocabulary = models[0].vocabulary
        self._search_functions = {}

    @property
    def image_size(self):
        """The first model's image size (image files are resized to it)."""
        return self.models[0].image_size

    def start(self, inputs):
        """(state, memory, L): the models' initial states and memories, as tuples."""
        annotations = [model.encode(inputs, training=False) for model in self.models]
        locations = {annotation.shape[1] for annotation in annotations}
        if len(locations) > 1:
            raise ValueError("The models of an ensemble must attend over grids of the same "
                             f"number of locations. Received: {sorted(locations)}")
        starts = [model.start(annotation, training=False)
                  for model, annotation in zip(self.models, annotations)]
        state = tuple(state for state, _ in starts)
        memory = tuple(memory for _, memory in starts)
        return state, memory, ops.shape(annotations[0])[1]

    def step(self, token_ids, state, memory):
        """The step contract over the models: -> (log p (rows, V), states, alpha (rows, L))."""
        outputs = [model.step(token_ids, model_state, model_memory)
                   for model, model_state, model_memory in zip(self.models, state, memory)]
        log_probs = ops.stack([ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
                               for logits, _, _ in outputs])  # (models, rows, V)
        mean_log_probs = (ops.logsumexp(log_probs, axis=0)
                          - math.log(len(self.models)))  # (rows, V)
        attention_weights = ops.mean(ops.stack(
            [ops.cast(alpha, "float32") for _, _, alpha in outputs]), axis=0)  # (rows, L)
        return mean_log_probs, tuple(new_state for _, new_state, _ in outputs), attention_weights

    def search(self, inputs, max_length=20, beam_size=1, length_penalty=0.0, temperature=None,
               num_captions=None, suppress_unknown=False):
        """Captions {"images" or "features": batch} in-graph; as `ShowAttendTell.search`."""
        state, memory, num_locations = self.start(inputs)
        return decoding.search(self.step, state, memory, num_locations=num_locations,
                               max_length=max_length, beam_size=beam_size,
                               length_penalty=length_penalty, temperature=temperature,
                               num_captions=num_captions, suppress_unknown=suppress_unknown,
                               seed=self.models[0].decoder.seed_generator)

    def caption(self, images=None, features=None, max_length=20, beam_size=1,
                length_penalty=0.0, temperature=None, num_captions=None, batch_size=64,
                suppress_unknown=False):
        """Captions images or features; arguments and outputs as `ShowAttendTell.caption`."""
        name, values = one_input(images, features)
        settings = decoding.SearchSettings(
            max_length=max_length, beam_size=beam_size, length_penalty=length_penalty,
            temperature=temperature, num_captions=num_captions,
            suppress_unknown=suppress_unknown)
        for model in self.models:
            if not model.built:
                model.build(encoder_input_shapes({name: values}))
        if settings not in self._search_functions:
            # One traced search per setting, as ShowAttendTell.search_function keeps.
            self._search_functions[settings] = tf.function(
                lambda inputs: self.search(inputs, **settings.as_kwargs()),
                reduce_retracing=True)
        return caption_in_batches(self._search_functions[settings], name, values,
                                  batch_size, self.vocabulary, num_captions)
