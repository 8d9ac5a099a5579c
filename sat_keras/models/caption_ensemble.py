"""`CaptionEnsemble`: several captioners searching together, their word probabilities averaged."""

import math

import numpy as np
import tensorflow as tf
from keras import ops

from sat_keras.models.captioner import Captioner
from sat_keras.models.captioner import TracedSearches


class CaptionEnsemble(Captioner):
    """Captions with several `ShowAttendTell` models at once.

    Every model keeps its own decoder state and memory; at each step of a
    search the ensemble's word distribution is the mean of theirs, and its
    attention the mean of theirs:

        1. log p_m = log_softmax(logits_m)              # (rows, V) per model m
        2. log p = log (1/M sum_m p_m) = logsumexp_m(log p_m) - log M   # (rows, V)
        3. alpha = 1/M sum_m alpha_m                    # (rows, L)

    This is the ensemble of captioning papers (e.g. ruotianluo's
    `AttEnsemble`): probabilities are averaged, not logits. It keeps the
    captioner contract (`models.captioner`), so `search`, `search_function`
    and `caption` are `ShowAttendTell`'s, and every search of `decoding`
    runs over it unchanged.

    Models whose encoders are the same (one layer, or layers of one class
    and settings with equal weights, as the frozen ResNet50 of members
    trained apart) encode images once: `encoder_owners`. An ensemble is
    exported as one SavedModel like a single model (`export_captioner`),
    each shared encoder stored and run once.

    Args:
        models: `ShowAttendTell` models with the same vocabulary (same
            tokens in the same order). With images the encoders may
            differ; with features they must all read the same features
            (a model that uses an earlier model's encoder reads that
            model's: for encoders cached at different layers, its cache).
            Their grids must have the same number of locations L.
        encoder_owners: for loading (`export.reload`): per model, the
            index of the model whose encoder it uses, as `encoder_owners()`
            returns it. None: found by comparing the encoders.

    Its decoding (`search_settings`) is the first model's, until it is given
    its own (`choose_search`).

    Example:
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> models = [ShowAttendTell(vocabulary, decoder={
    ...     "embedding_dim": 8, "units": 16, "attention_dim": 8}) for _ in range(2)]
    >>> ensemble = CaptionEnsemble(models)
    >>> outputs = ensemble.caption(features=np.ones((3, 4, 8), "float32"), beam_size=2,
    ...                            max_length=5)
    >>> len(outputs["captions"]), outputs["attention_weights"].shape
    (3, (3, 5, 4))
    """

    def __init__(self, models, encoder_owners=None):
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
        self._traced_searches = TracedSearches()
        self._search_settings = models[0].search_settings
        if encoder_owners is not None:
            encoder_owners = tuple(int(owner) for owner in encoder_owners)
            if len(encoder_owners) != len(models) or any(
                    not 0 <= owner <= index for index, owner in enumerate(encoder_owners)):
                raise ValueError(f"encoder_owners must give each of the {len(models)} models "
                                 "the index of itself or of an earlier model. Received: "
                                 f"{list(encoder_owners)}")
        self._encoder_owners = encoder_owners

    def choose_search(self, search):
        """Sets the ensemble's decoding: `search_settings = search` (a
        `decoding.SearchSettings`, or a dict of fields merged into the current one)."""
        self.search_settings = search

    @property
    def built(self):
        return all(model.built for model in self.models)

    @property
    def variables(self):
        """The variables its searches read, each once: every model's, less the
        encoder's of a model that uses an earlier model's (`encoder_owners`)."""
        variables = []
        for index, (model, owner) in enumerate(zip(self.models, self.encoder_owners())):
            skipped = set() if owner == index else {id(v) for v in model.encoder.variables}
            variables.extend(v for v in model.variables if id(v) not in skipped)
        return variables

    def encoder_owners(self):
        """Per model, the index of the first model whose encoder is the same as its own.

        The same: one layer, or two built layers of one class whose settings
        (their configs, less name, weights source, trainability and cache
        layer) and weights are equal. Found once and kept, from the weights at that
        time: an ensemble captions; fine-tune its models before making it.
        """
        if self._encoder_owners is not None:
            return self._encoder_owners
        encoders = [model.encoder for model in self.models]
        owners = tuple(next(j for j in range(index + 1) if _same_encoder(encoders[j], encoder))
                       for index, encoder in enumerate(encoders))
        if all(encoder is None or encoder.built for encoder in encoders):
            self._encoder_owners = owners  # unbuilt encoders have no weights to compare yet
        return owners

    @property
    def image_size(self):
        """The first model's image size (image files are resized to it)."""
        return self.models[0].image_size

    @property
    def seed_generator(self):
        """The first model's: sampled search draws from it."""
        return self.models[0].seed_generator

    def build_for(self, input_shapes):
        for model in self.models:
            model.build_for(input_shapes)

    def encode(self, inputs, training=None):
        """The models' annotations, a tuple; images pass once through each distinct
        encoder (`encoder_owners`)."""
        owners = (self.encoder_owners() if "images" in inputs
                  else tuple(range(len(self.models))))
        annotations = []
        for index, (model, owner) in enumerate(zip(self.models, owners)):
            annotations.append(model.encode(inputs, training=training) if owner == index
                               else annotations[owner])
        annotations = tuple(annotations)
        locations = {annotation.shape[1] for annotation in annotations}
        if len(locations) > 1:
            raise ValueError("The models of an ensemble must attend over grids of the same "
                             f"number of locations. Received: {sorted(locations)}")
        return annotations

    def num_locations(self, annotations):
        return ops.shape(annotations[0])[1]

    def start(self, annotations, training=None):
        """(state, memory): the models' initial states and memories, as tuples."""
        starts = [model.start(annotation, training=training)
                  for model, annotation in zip(self.models, annotations)]
        return tuple(state for state, _ in starts), tuple(memory for _, memory in starts)

    def step(self, token_ids, state, memory, training=False):
        """The step contract over the models: -> (log p (rows, V), states, alpha (rows, L))."""
        outputs = [model.step(token_ids, model_state, model_memory, training=training)
                   for model, model_state, model_memory in zip(self.models, state, memory)]
        log_probs = ops.stack([ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
                               for logits, _, _ in outputs])  # (models, rows, V)
        mean_log_probs = (ops.logsumexp(log_probs, axis=0)
                          - math.log(len(self.models)))  # (rows, V)
        attention_weights = ops.mean(ops.stack(
            [ops.cast(alpha, "float32") for _, _, alpha in outputs]), axis=0)  # (rows, L)
        return mean_log_probs, tuple(new_state for _, new_state, _ in outputs), attention_weights


# Config entries that leave an encoder's function of images unchanged. The cache
# layer only says where training read features from; an ensemble that shares
# an encoder reads the owner's features.
_UNCOMPUTED_SETTINGS = ("name", "weights", "trainable", "trainable_layers", "cache_layer")


def _same_encoder(first, second):
    """Whether two encoders compute the same function: one layer, or built layers
    of one class and settings with equal weights."""
    if first is second:
        return True
    if (first is None or second is None or type(first) is not type(second)
            or not (first.built and second.built)):
        return False
    settings = [{k: v for k, v in layer.get_config().items() if k not in _UNCOMPUTED_SETTINGS}
                for layer in (first, second)]
    if settings[0] != settings[1] or len(first.weights) != len(second.weights):
        return False
    with tf.init_scope():  # the values, also while a search is being traced
        return all(a.shape == b.shape
                   and np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(first.weights, second.weights))
