"""`CaptionEnsemble`: several captioners searching together, their word probabilities averaged."""

import math

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

    Args:
        models: `ShowAttendTell` models with the same vocabulary (same
            tokens in the same order). Each encodes the inputs itself, so
            with images the encoders may differ; with features they must
            all read the same features. Their grids must have the same
            number of locations L.

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
        self._traced_searches = TracedSearches()

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
        """The models' annotations, a tuple: each model encodes the inputs itself."""
        annotations = tuple(model.encode(inputs, training=training) for model in self.models)
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
