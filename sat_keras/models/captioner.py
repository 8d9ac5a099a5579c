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
once for every `CausalLM`: `search_settings` (its own decoding, the one
`SearchSettings` every door reads) and `settings_for` (a call's overrides
merged into it), `search` (the in-graph dispatch of `decoding.search`),
`search_function` (one traced search per `SearchSettings`, kept), `caption`
(batching, n-best, the captions and their arrays) and `generate` (caption
strings from image files, bytes or arrays).
"""

import tensorflow as tf

from sat_keras import decoding
from sat_keras.models import preset_loaders
from sat_keras.models.caption_batches import caption_in_batches
from sat_keras.models.caption_batches import encoder_input_shapes
from sat_keras.models.caption_batches import generate_inputs
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

    @property
    def search_settings(self):
        """The captioner's own decoding, a `decoding.SearchSettings`: what `caption`,
        `generate`, `predict`, `sat-keras caption`, `evaluate` and `export` use
        unless a call overrides it. Set by `compile(search=...)` or assigned (a
        `SearchSettings`, or a dict of fields merged into the current settings)."""
        return self._search_settings

    @search_settings.setter
    def search_settings(self, search):
        self._search_settings = self.settings_for(search)
        self.predict_function = None  # predict() traces the new settings

    def settings_for(self, search=None, one_caption=False, **overrides):
        """The `SearchSettings` a call decodes with.

        Args:
            search: None (the captioner's own, `search_settings`), a
                `SearchSettings` (the whole decoding, in place of its own),
                or a dict of fields merged into its own.
            one_caption: for a door that writes one caption per image: the
                base settings' `num_captions` is dropped before the changes
                are merged (`SearchSettings.one_caption_each`).
            **overrides: fields merged in last (`beam_size=3`); None is not
                given. An unknown field raises ValueError naming the known ones.
        """
        own = self.search_settings
        if isinstance(search, dict):
            overrides = {**search, **overrides}
        elif search is not None:
            own = decoding.SearchSettings.from_value(search)
        return (own.one_caption_each() if one_caption else own).replace(**overrides)

    def search(self, annotations, search=None, **overrides):
        """Captions `encode`'s annotations in-graph with `settings_for(search, **overrides)`.

        Returns the dict of `decoding.greedy_search` (token_ids, scores,
        attention_weights), from the search the settings choose; with
        `num_captions` n, the beam's n best, an axis of n after the batch.
        """
        settings = self.settings_for(search, **overrides)
        state, memory = self.start(annotations, training=False)
        return decoding.search(self.step, state, memory,
                               num_locations=self.num_locations(annotations),
                               settings=settings, seed=self.seed_generator)

    def search_function(self, search=None):
        """The compiled search for `settings_for(search)`: inputs dict -> `search` outputs.

        Traced once per distinct settings and kept, so that switching between
        settings never retraces the others.
        """
        settings = self.settings_for(search)
        functions = self._traced_searches.by_settings
        if settings not in functions:
            def run(inputs):
                return self.search(self.encode(inputs, training=False), settings)

            # One traced function per setting; TensorFlow is the backend this runs on.
            functions[settings] = tf.function(run, reduce_retracing=True)
        return functions[settings]

    def caption(self, images=None, features=None, search=None, batch_size=64, **overrides):
        """Captions images (uint8, batch first) or features, with their search's outputs.

        The decoding is `settings_for(search, **overrides)`: the captioner's own
        unless changed (`caption(images=x, beam_size=3)`). Beam size 1 is greedy
        search; larger sizes run the batched beam search of
        `decoding.beam_search`; a `temperature` draws every word instead.
        `num_captions=n` (1 to beam_size) returns the beam's n best distinct
        captions per image, best first.

        Returns:
            dict: "captions" list of str; "token_ids" (N, max_length) int32
            with `<end>` then padding; "scores" (N,) summed log-probabilities
            (length-normalised with a length penalty); "attention_weights"
            (N, max_length, L), zero after `<end>`. With `num_captions=n`,
            "captions" is a list of n-lists and the arrays gain an axis of n
            after N.
        """
        settings = self.settings_for(search, **overrides)
        name, values = one_input(images, features)
        function = self.search_function(settings)
        self.build_for(encoder_input_shapes({name: values}))
        return caption_in_batches(function, name, values, batch_size, self.vocabulary,
                                  settings.num_captions)

    def generate(self, inputs, search=None, batch_size=64, **overrides):
        """Caption strings, one per input: keras-hub's `generate`, for images.

        Args:
            inputs: image files (paths) or encoded images (bytes), in a list;
                a uint8 batch (N, H, W, 3) of images; or a dict holding
                "images" or "features".
            search, **overrides: the decoding, as in `caption` (the
                captioner's own unless changed). With `num_captions`, still
                the best caption of each.
            batch_size: images decoded at once.

        Returns:
            A list of str, in the order of `inputs`.

        Raises:
            ValueError: a file that is missing or not an image, naming each.

        Example:
        >>> model = Captioner.from_preset("shapes")
        >>> model.generate(np.zeros((1, 64, 64, 3), "uint8"))[0] != ""
        True
        """
        settings = self.settings_for(search, one_caption=True, **overrides)
        name, values = generate_inputs(inputs, self.image_size)
        return self.caption(**{name: values}, search=settings,
                            batch_size=batch_size)["captions"]
