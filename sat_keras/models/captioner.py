"""The captioner contract, written once: `ShowAttendTell` and `CaptionEnsemble` share it.

A captioner provides

    encode(inputs, training=None) -> annotations
        {"images": (B, H, W, 3) uint8} or {"features": (B, L, D)} -> what
        `start` takes (one model: a tensor (B, L, D); an ensemble: a tuple
        of its models' annotations);
    start(annotations, training=None) -> (state, memory)
    step(token_ids (rows,), state, memory, training=False)
        -> (scores (rows, V), state, attention_weights (rows, L))
        the step contract of `decoding` (scores: logits or log-probabilities;
        the searches take the log-softmax, which leaves log-probabilities as
        they are);
    num_locations(annotations) -> L;
    seed_generator: the `keras.random.SeedGenerator` sampled search draws from;
    build_for(input_shapes): builds what `caption` runs, before its first call;
    vocabulary.

`Captioner` writes the rest once on top of it, as keras-hub writes `generate`
once for every `CausalLM`: `search` (the in-graph dispatch of
`decoding.search`), `search_function` (one traced search per
`SearchSettings`, kept) and `caption` (batching, n-best, the captions).
"""

import tensorflow as tf

from sat_keras import decoding
from sat_keras.models import preset_loaders
from sat_keras.models.caption_batches import caption_in_batches
from sat_keras.models.caption_batches import encoder_input_shapes
from sat_keras.models.caption_batches import one_input


class TracedSearches:
    """The traced search per `SearchSettings`, out of saving's sight.

    A dict assigned to a Keras model attribute would be wrapped for
    checkpointing (which refuses its dataclass keys); a plain object holding
    it is not.
    """

    def __init__(self):
        self.by_settings = {}


class Captioner:
    """Search and caption over the contract above (a mixin; see the module docstring).

    `Captioner.from_preset(handle)` loads whichever captioner a trained
    handle holds, as keras-hub's `Task.from_preset` does: a `ShowAttendTell`,
    or the `CaptionEnsemble` of an ensemble's export. A subclass's
    `from_preset` (`ShowAttendTell.from_preset`) loads only that class.

    Example:
    >>> model = Captioner.from_preset("shapes")  # a trained model that ships
    >>> type(model).__name__, model.image_size
    ('ShowAttendTell', 64)
    """

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A captioner from a preset handle, through the loader registry.

        Args:
            preset: a handle (`models.preset_loaders`): "flickr8k" (the
                trained Flickr8k captioner that ships with the package) or
                another registered name; an architecture name from
                `presets.preset_names()` (e.g. "flickr8k_resnet50",
                "synthetic"), which builds a `ShowAttendTell`; a directory
                written by `save_to_preset`; a `.keras` file or a run
                directory holding `model.keras`; a SavedModel written by
                `export_captioner` (of a model or of a `CaptionEnsemble`);
                or an `https://` or `file://` archive of one of these,
                ending in `#sha256=HEX`.
            load_weights: a preset directory's trained weights (default);
                False gives its architecture freshly initialised.
            **kwargs: for a preset directory, config values that merge into
                its config (`decoder={"units": 768}` changes one decoder
                argument). For an architecture name: `vocabulary` (required),
                `encoder` (default: the preset's, a `SmallCNNEncoder` or a
                `PretrainedEncoder`), `encoder_weights` ("imagenet", which
                downloads; None; or a weights file) and model arguments that
                replace the preset's. Trained models (`.keras` files,
                exports) load as they are.

        Raises:
            ValueError: the handle holds another class than the one called
                (`ShowAttendTell.from_preset` of an ensemble's export).

        Example:
        >>> model = ShowAttendTell.from_preset(
        ...     "synthetic", vocabulary=Vocabulary.build(["a red circle"]))
        >>> model.decoder.units
        128
        """
        return preset_loaders.get_preset_loader(preset).load(
            cls, load_weights=load_weights, **kwargs)

    def search(self, annotations, max_length=20, beam_size=1, length_penalty=0.0,
               temperature=None, num_captions=None, suppress_unknown=False,
               no_repeat_ngram_size=0):
        """Captions `encode`'s annotations in-graph; the settings as in `caption`.

        Returns the dict of `decoding.greedy_search` (token_ids, scores,
        attention_weights), from the search the settings choose; with
        `num_captions` n, the beam's n best, an axis of n after the batch.
        """
        state, memory = self.start(annotations, training=False)
        return decoding.search(self.step, state, memory,
                               num_locations=self.num_locations(annotations),
                               max_length=max_length, beam_size=beam_size,
                               length_penalty=length_penalty, temperature=temperature,
                               num_captions=num_captions, suppress_unknown=suppress_unknown,
                               no_repeat_ngram_size=no_repeat_ngram_size,
                               seed=self.seed_generator)

    def search_function(self, settings):
        """The compiled search for one `SearchSettings`: inputs dict -> `search` outputs.

        Traced once per distinct settings and kept, so that switching between
        settings never retraces the others.
        """
        settings = decoding.SearchSettings.from_value(settings)
        functions = self._traced_searches.by_settings
        if settings not in functions:
            def run(inputs):
                return self.search(self.encode(inputs, training=False), **settings.as_kwargs())

            # One traced function per setting; TensorFlow is the backend this runs on.
            functions[settings] = tf.function(run, reduce_retracing=True)
        return functions[settings]

    def caption(self, images=None, features=None, max_length=20, beam_size=1,
                length_penalty=0.0, temperature=None, num_captions=None, batch_size=64,
                suppress_unknown=False, no_repeat_ngram_size=0):
        """Captions images (uint8, batch first) or features.

        `beam_size=1` is greedy search; larger sizes run the batched beam
        search of `decoding.beam_search` with `length_penalty`; a
        `temperature` draws every word instead (`decoding.sample_search`).
        `num_captions=n` (1 to beam_size) returns the beam's n best distinct
        captions per image, best first. `suppress_unknown=True` never
        writes `<unk>` (`decoding.suppress_tokens`); `no_repeat_ngram_size=n`
        never repeats an n-gram within a caption (`decoding.block_repeated_ngrams`).

        Returns:
            dict: "captions" list of str; "token_ids" (N, max_length) int32
            with `<end>` then padding; "scores" (N,) summed log-probabilities
            (length-normalised with a length penalty); "attention_weights"
            (N, max_length, L), zero after `<end>`. With `num_captions=n`,
            "captions" is a list of n-lists and the arrays gain an axis of n
            after N.
        """
        name, values = one_input(images, features)
        search = self.search_function(decoding.SearchSettings(
            max_length=max_length, beam_size=beam_size, length_penalty=length_penalty,
            temperature=temperature, num_captions=num_captions,
            suppress_unknown=suppress_unknown, no_repeat_ngram_size=no_repeat_ngram_size))
        self.build_for(encoder_input_shapes({name: values}))
        return caption_in_batches(search, name, values, batch_size, self.vocabulary,
                                  num_captions)
