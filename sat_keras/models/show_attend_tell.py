"""`ShowAttendTell`: encoder + attentive LSTM decoder as a `keras.Model`."""

import functools
import inspect
import warnings

import keras
from keras import ops

from sat_keras import checks
from sat_keras import decoding
from sat_keras.distribute import logs_for_multi_worker
from sat_keras.distribute import scale_for_replicas
from sat_keras.layers.attentive_lstm_cell import AttentiveLSTMCell
from sat_keras.models import losses
from sat_keras.models import presets
from sat_keras.models.caption_batches import encoder_input_shapes
from sat_keras.models.captioner import Captioner
from sat_keras.models.captioner import TracedSearches
from sat_keras.text import SPECIAL_TOKENS
from sat_keras.text import Vocabulary

BASELINES = ("caption", "per_token", "leave_one_out", "learned")


@functools.cache
def decoder_arguments():
    """The decoder's settings: `AttentiveLSTMCell`'s own arguments, read from its
    signature so that a new decoder setting needs no list here."""
    parameters = inspect.signature(AttentiveLSTMCell.__init__).parameters
    return frozenset(name for name, parameter in parameters.items()
                     if name not in ("self", "vocabulary_size")
                     and parameter.kind is parameter.POSITIONAL_OR_KEYWORD)


@keras.saving.register_keras_serializable(package="sat_keras")
class ShowAttendTell(keras.Model, Captioner):
    """Show, Attend and Tell (Xu et al. 2015) with soft or hard attention.

    The model is an image encoder, a decoder (`AttentiveLSTMCell`) and the
    loss. Teacher forcing (`call`) is the decoder's `decode_sequence`;
    decoding (`caption`, `predict`) searches over the decoder's single step.

    Loss per caption, averaged over the batch (padding masked everywhere):

        loss = NLL + doubly_stochastic_weight * sum_i (1 - sum_t alpha_ti)^2

    NLL is summed over the caption's tokens with `loss_normalization=
    "caption"` (the authors' code) or averaged over them with "token"; the
    penalty (eq. 14) sums over locations i, with alpha masked by the caption
    mask before the sum over steps t. Both are logged (`nll`,
    `attention_penalty`) besides the total `loss`. With `label_smoothing`
    e, the NLL in the loss becomes (1 - e) * NLL + e * the cross-entropy
    against uniform word probabilities; `nll` logs the NLL itself, so
    validation figures stay comparable.

    Hard attention (`attention="hard"`, sec. 4.1) samples a location s_t ~
    alpha_t at every step in training and uses a_{s_t} as the context, except
    that with probability `expected_context_probability` (0.5) an image (or,
    with `sample_mixing="batch"` as in the authors' code, the whole batch)
    uses the expected context instead. Two terms join the loss, per caption:

        + reinforce_weight * (NLL - b) * sum_t log alpha_{t, s_t}
        + entropy_weight * sum_t sum_i alpha_ti log alpha_ti

    The first (weight 0.1) is the REINFORCE surrogate: (NLL - b) is a
    constant, so its gradient is the score-function estimate; b is a moving
    average of the batch-mean NLL (b <- 0.9 b + 0.1 mean NLL, once per
    training step, a non-trainable weight that gets no gradient). The second
    (weight 0.002) is the entropy bonus: minimising alpha log alpha raises
    the entropy. Both sum over real steps (and locations) and are averaged
    over captions like the NLL; images that used the expected context add
    no REINFORCE term. They are logged as `reinforce` and `entropy_bonus`.
    Outside training the context is the expected one (deterministic), or a
    sample / the argmax location with `hard_inference`.

    Args:
        vocabulary: the caption vocabulary (`Vocabulary` or its token list);
            its size sets the output layer and `caption` maps ids to words.
        encoder: a layer mapping uint8 images (batch, H, W, 3) to annotations
            (batch, L, D), or None to accept only precomputed features.
        decoder: an `AttentiveLSTMCell` for this vocabulary's size, or a
            dict of its arguments (`{"units": 768, "attention": "hard"}`;
            None: `{}`, the cell's defaults) from which the model builds one.
        image_size: side in pixels that image files are resized to before the
            encoder (`caption_image_files`, export); None if not fixed.
        doubly_stochastic_weight: lambda of the penalty. None (default): 1.0
            with soft attention (sec. 4.2.1, the authors' Flickr8k setting),
            0.0 with hard attention, whose objective (sec. 4.1, eq. 10-12)
            has no such term: the penalty favours spreading each word's
            attention when a caption has fewer words than the image has
            locations, which the sampled context of hard attention cannot use.
        loss_normalization: "caption" or "token" (see `losses.masked_nll`).
        label_smoothing: e in [0, 1): the training targets are (1 - e)
            one-hot plus e spread over the vocabulary (0: none, the paper).
        reinforce_weight, entropy_weight, baseline_decay: hard attention's
            loss terms (0.1, 0.002) and the baseline's moving-average decay (0.9).
        reinforce_baseline: "per_token" (default: b averages NLL per token
            and is scaled by each caption's length, so a long caption is not
            judged a worse sample for being long; the authors' code compares
            per-word costs: capgen.py moves `baseline_time` by the mean
            masked per-word cost and judges each caption by its mean over
            time, in minibatches of captions of one length), "caption"
            (b averages whole-caption NLLs, the literal reading of eq. 12),
            or "leave_one_out": each caption is decoded along
            `reinforce_samples` location paths in training, and each path's
            b is the mean NLL of the caption's other paths (multi-sample
            REINFORCE, as in VIMCO; no moving average is needed, though it
            is still kept). At equal compute, its gradient variance measured
            3 to 11 times below "per_token"'s on Flickr8k
            (docs/results/flickr8k.md); every path costs a decoder pass;
            or "learned": a state-dependent baseline (as in Mnih et al.
            2014 and Ba et al. 2015, whom the paper follows): at step t,
            b_t = the moving average plus a linear function of h_{t-1},
            the state the step attends from (held constant), predicting the
            caption's NLL per word (scaled by its length like "per_token").
            Each step's sample is judged against its own b_t. The linear
            layer (`baseline_head`, starting at zero) learns only from its
            squared error, added to the loss and logged as `baseline_error`.
        reinforce_samples: location paths per caption in training (hard
            attention; at least 2 with "leave_one_out", 1 otherwise). The
            NLL and the other terms are averaged over the paths.
        search: the model's decoding (`search_settings`), a
            `decoding.SearchSettings` or a dict of its fields (None: greedy,
            20 words). Saved with the model; `compile(search=...)` sets it too.
        **kwargs: `keras.Model` arguments (name, dtype, ...). The decoder's
            arguments given here (`units=768`), as 0.2 took them, still
            build the decoder but are deprecated: pass `decoder={...}`.

    The decoder's settings read through it: `model.decoder.units`. (Reading
    them through the model, `model.units`, as 0.2 did, is deprecated.)

    Call arguments:
        inputs: dict with "images" (batch, H, W, 3) uint8 or "features"
            (batch, L, D) (for an encoder with a `cache_layer`, that
            layer's outputs), and "token_ids" int (batch, T) starting with
            `<start>`. Per-image batches (`data.pipeline.make_image_group_dataset`)
            hold each image once, N images for B captions, and
            "caption_image" int (B,): the image of each caption.
        training: enables dropout.

    Returns:
        dict with "logits" (batch, T, vocabulary_size), "attention_weights"
        (batch, T, L), "sample_log_probs" (batch, T): log alpha_{t, s_t}
        of the location hard attention sampled at each step in training,
        the score that its REINFORCE term weights; 0 where no location was
        sampled (soft attention, inference, the expected context), and
        "previous_hidden" (batch, T, units): h_{t-1}, the state each step
        attends from, which the learned baseline reads.

    `predict()`, `caption()` and `generate()` decode instead, with the model's
    own `search_settings` (`compile(search=...)`; default greedy, 20 words),
    on a fresh model as on a loaded one.

    Example:
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> model = ShowAttendTell(vocabulary, decoder={
    ...     "embedding_dim": 8, "units": 16, "attention_dim": 8})
    >>> same = ShowAttendTell(vocabulary, decoder=AttentiveLSTMCell(
    ...     len(vocabulary), embedding_dim=8, units=16, attention_dim=8))
    >>> outputs = model({"features": np.ones((2, 4, 8), "float32"),
    ...                  "token_ids": np.array([[1, 4, 7], [1, 4, 5]])})
    >>> tuple(outputs["logits"].shape), tuple(outputs["attention_weights"].shape)
    ((2, 3, 9), (2, 3, 4))

    Reference:
        Xu et al., "Show, Attend and Tell: Neural Image Caption Generation
        with Visual Attention", ICML 2015, arXiv:1502.03044.
    """

    def __init__(self, vocabulary, encoder=None, decoder=None, image_size=None,
                 doubly_stochastic_weight=None, loss_normalization="caption",
                 label_smoothing=0.0, reinforce_weight=0.1, entropy_weight=0.002,
                 baseline_decay=0.9, reinforce_baseline="per_token", reinforce_samples=1,
                 search=None, **kwargs):
        aliases = {name: kwargs.pop(name) for name in decoder_arguments() & set(kwargs)}
        super().__init__(**kwargs)
        if not isinstance(vocabulary, Vocabulary):
            vocabulary = Vocabulary(vocabulary)
        decoder = _build_decoder(decoder, aliases, len(vocabulary))
        if decoder.vocabulary_size != len(vocabulary):
            raise ValueError(f"The decoder predicts {decoder.vocabulary_size} words; the "
                             f"vocabulary has {len(vocabulary)}.")
        if loss_normalization not in losses.NORMALIZATIONS:
            raise ValueError(
                f"loss_normalization must be one of {losses.NORMALIZATIONS}. "
                f"Received: loss_normalization={loss_normalization!r}"
            )
        if doubly_stochastic_weight is None:
            doubly_stochastic_weight = 1.0 if decoder.attention == "soft" else 0.0
        if doubly_stochastic_weight < 0:
            raise ValueError(
                "doubly_stochastic_weight must be >= 0. "
                f"Received: doubly_stochastic_weight={doubly_stochastic_weight!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        if reinforce_baseline not in BASELINES:
            raise ValueError(f"reinforce_baseline must be one of {BASELINES}. "
                             f"Received: reinforce_baseline={reinforce_baseline!r}")
        if (isinstance(reinforce_samples, bool) or not isinstance(reinforce_samples, int)
                or reinforce_samples < 1
                or (reinforce_samples > 1) != (reinforce_baseline == "leave_one_out")):
            raise ValueError("reinforce_samples must be at least 2 with "
                             "reinforce_baseline='leave_one_out' and 1 otherwise. Received: "
                             f"reinforce_samples={reinforce_samples!r} with "
                             f"reinforce_baseline={reinforce_baseline!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(
                f"baseline_decay must be in [0, 1). Received: baseline_decay={baseline_decay!r}")
        self.vocabulary = vocabulary
        self.encoder = encoder
        self.decoder = decoder
        self.image_size = image_size
        self.doubly_stochastic_weight = doubly_stochastic_weight
        self.loss_normalization = loss_normalization
        self.label_smoothing = label_smoothing
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.reinforce_baseline = reinforce_baseline
        self.reinforce_samples = reinforce_samples
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.penalty_tracker = keras.metrics.Mean(name="attention_penalty")
        self.baseline_head = None
        if decoder.attention == "hard":
            self.reinforce_tracker = keras.metrics.Mean(name="reinforce")
            self.entropy_tracker = keras.metrics.Mean(name="entropy_bonus")
            if reinforce_baseline == "learned":
                self.baseline_head = keras.layers.Dense(
                    1, kernel_initializer="zeros", dtype="float32", name="baseline_head")
                self.baseline_error_tracker = keras.metrics.Mean(name="baseline_error")
        self._search_settings = decoding.SearchSettings.from_value(search)
        self._traced_searches = TracedSearches()
        self.self_critical = None  # compile(self_critical=...) sets the sequence-level mode
        self._built_input_shape = None

    # -- building -----------------------------------------------------------

    def build(self, input_shape):
        self._built_input_shape = {
            name: [None if size is None else int(size) for size in shape]
            for name, shape in input_shape.items() if name in ("features", "images")}
        if "features" in input_shape:
            annotations_shape = tuple(input_shape["features"])
            if self._cached_stage():
                annotations_shape = (annotations_shape[0],) + self.encoder.compute_output_shape(
                    (None, self.encoder.image_size, self.encoder.image_size, 3))[1:]
        elif "images" in input_shape:
            self._require_encoder()
            if not self.encoder.built:
                self.encoder.build(tuple(input_shape["images"]))
            annotations_shape = self.encoder.compute_output_shape(tuple(input_shape["images"]))
        else:
            raise ValueError(
                'inputs must hold "images" or "features". '
                f"Received keys: {sorted(input_shape)}"
            )
        if not self.decoder.built:  # a deserialized decoder comes built
            self.decoder.build(annotations_shape)
        if self.decoder.attention == "hard":
            self.baseline = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            aggregation="mean", name="reinforce_baseline")
        if self.baseline_head is not None and not self.baseline_head.built:
            self.baseline_head.build((None, self.decoder.units))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy Keras builds unbuilt models from a
        # peeked batch that it all-reduces across workers, which fails under
        # MultiWorkerMirroredStrategy for integer inputs (keras-team/keras
        # issue 20585). A built model with a built optimizer (as
        # `training.fit.train` leaves it) needs none of it (tests/test_distribute.py).
        if self.built and (self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def get_build_config(self):
        return {"input_shape": self._built_input_shape}

    def build_from_config(self, config):
        if config and config.get("input_shape"):
            self.build(config["input_shape"])

    def _require_encoder(self):
        if self.encoder is None:
            raise ValueError(
                'This model has no encoder, so it takes "features", not "images". '
                "Pass encoder=... when creating it, or give precomputed features."
            )

    # -- the step contract --------------------------------------------------

    def _cached_stage(self):
        """Whether cached features pass through the encoder's layers above its
        `cache_layer` (a `PretrainedEncoder` cached below its grid)."""
        return getattr(self.encoder, "cache_layer", None) is not None

    def encode(self, inputs, training=None):
        """Annotations (batch, L, D) from {"images": ...} or {"features": ...}.

        Features are the annotations, or, for an encoder with a `cache_layer`,
        that layer's outputs, which the layers above it turn into annotations.
        """
        if "features" in inputs:
            if self._cached_stage():
                return self.encoder.from_cache(inputs["features"])
            return ops.convert_to_tensor(inputs["features"], self.compute_dtype)
        self._require_encoder()
        return self.encoder(inputs["images"], training=training)  # (batch, L, D)

    def start(self, annotations, training=None):
        """(initial_state, memory) for decoding from annotations (batch, L, D)."""
        return self.decoder.start(annotations, training=training)

    def step(self, token_ids, state, memory, training=False):
        """The step contract: -> (logits (batch, V), state, attention (batch, L))."""
        return self.decoder(token_ids, state, memory, training=training)

    def num_locations(self, annotations):
        return ops.shape(annotations)[1]

    @property
    def seed_generator(self):
        """The decoder's: hard attention's samples and sampled search draw from it."""
        return self.decoder.seed_generator

    def build_for(self, input_shapes):
        """Builds the model for {"images" or "features": shape} unless built."""
        if not self.built:
            self.build(input_shapes)

    # -- teacher forcing and the loss ----------------------------------------

    def call(self, inputs, training=None):
        annotations = self.encode(inputs, training=training)  # (batch, L, D)
        if "caption_image" in inputs:  # per-image batches: each caption's image's annotations
            annotations = ops.take(annotations, inputs["caption_image"], axis=0)
        token_ids = inputs["token_ids"]
        paths = self._paths(training)
        if paths > 1:  # every caption along several location paths: (paths * batch, ...)
            annotations = ops.tile(annotations, (paths, 1, 1))
            token_ids = ops.tile(token_ids, (paths, 1))
        state, memory = self.start(annotations, training=training)
        return self.decoder.decode_sequence(token_ids, state, memory, training=training)

    def _paths(self, training):
        """Location paths per caption: `reinforce_samples` in hard-attention training."""
        return self.reinforce_samples if self.decoder.attention == "hard" and training else 1

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        paths = self._paths(training)
        if paths > 1:  # the rows of `call`'s paths: path p of caption b is row p * batch + b
            y = ops.tile(y, (paths, 1))
            if sample_weight is not None:
                sample_weight = ops.tile(sample_weight, (paths,))
        nll = losses.masked_nll(y, y_pred["logits"], self.loss_normalization)  # (batch,)
        penalty = losses.doubly_stochastic_penalty(y_pred["attention_weights"], y)  # (batch,)
        self.nll_tracker.update_state(nll)
        self.penalty_tracker.update_state(penalty)
        total = nll + self.doubly_stochastic_weight * penalty  # (batch,)
        if self.label_smoothing:
            uniform = losses.uniform_cross_entropy(y, y_pred["logits"],
                                                   self.loss_normalization)  # (batch,)
            total = total + self.label_smoothing * (uniform - nll)
        if self.decoder.attention == "hard" and training:
            learned = None if self.baseline_head is None else self._learned_baseline(y_pred)
            # expected_nll: (), (batch,) or per step (batch, T); observed: (batch,)
            expected_nll, observed = self._baseline_terms(nll, y, learned)
            reinforce = losses.reinforce_surrogate(
                nll, expected_nll, y_pred["sample_log_probs"], y)  # (batch,)
            if learned is not None:
                regression = losses.baseline_regression(observed, learned, y)  # (batch,)
                self.baseline_error_tracker.update_state(regression)
                total = total + regression
            entropy = losses.negative_attention_entropy(y_pred["attention_weights"], y)
            self.reinforce_tracker.update_state(reinforce)
            self.entropy_tracker.update_state(entropy)
            total = total + self.reinforce_weight * reinforce + self.entropy_weight * entropy
            self.baseline.assign(self.baseline_decay * self.baseline + (1.0 - self.baseline_decay)
                                 * ops.mean(ops.stop_gradient(observed)))
        if sample_weight is not None:
            total = total * ops.cast(sample_weight, total.dtype)
        loss = ops.mean(total) + ops.cast(ops.sum(self.losses), "float32")
        # Under tf.distribute the replicas' gradients are summed, so each
        # replica's mean is divided by their number (as Keras's own losses are).
        return scale_for_replicas(loss)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return logs_for_multi_worker(super().compute_metrics(x, y, y_pred, sample_weight))

    def _baseline_terms(self, nll, target_ids, learned=None):
        """(the NLL the baseline expects per caption, or per step from `learned`,
        the learned baseline's b_t per word (batch, T); what the moving average
        averages)."""
        if self.reinforce_baseline == "caption":
            return self.baseline, nll  # (), (batch,)
        if self.reinforce_baseline == "leave_one_out":  # (paths * batch,) each
            return losses.leave_one_out_baseline(nll, self.reinforce_samples), nll
        expected = self.baseline if learned is None else learned  # () or (batch, T), per word
        if self.loss_normalization == "token":
            return expected, nll  # nll is already per token
        lengths = ops.maximum(ops.sum(losses.caption_mask(target_ids), axis=1), 1.0)  # (batch,)
        scale = lengths if learned is None else ops.expand_dims(lengths, 1)  # per step: (batch, 1)
        return expected * scale, nll / lengths

    def _learned_baseline(self, y_pred):
        """b_t per word (batch, T): the moving average plus the head's reading of h_{t-1}."""
        previous = ops.stop_gradient(ops.cast(y_pred["previous_hidden"], "float32"))
        return self.baseline + self.baseline_head(previous)[..., 0]  # (batch, T)

    # -- decoding ------------------------------------------------------------

    def compile(self, optimizer="auto", search=None, self_critical=None, **kwargs):
        """`keras.Model.compile` with the paper's optimizer and decoding defaults.

        Args:
            optimizer: "auto" (default) is Adam at 1e-3 (Xu et al. trained
                with Adam, except RMSProp on Flickr8k); anything Keras takes.
            search: the model's decoding (`search_settings`), a
                `decoding.SearchSettings` or a dict of fields merged into the
                current one; None keeps it. Checked here; saved with the
                model, and what `predict`, `caption`, `generate`,
                `sat-keras caption`, `evaluate`, `export` and the servers
                decode with unless a call overrides it.
            self_critical: a `training.self_critical.SelfCritical`: `fit`
                then trains on its sequence-level reward, from per-image
                batches (`data.pipeline.make_per_image_dataset`), instead
                of the cross-entropy loss (None, the default). Evaluation
                stays the teacher-forced loss. Not saved with the model.
            **kwargs: the other `keras.Model.compile` arguments.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = keras.optimizers.Adam(1e-3)
        if search is not None:
            self.search_settings = search
        if self_critical is not None:
            self_critical.check_model(self)
        self.self_critical = self_critical
        self.train_function = None  # fit() traces the chosen objective
        super().compile(optimizer=optimizer, **kwargs)

    def choose_search(self, search):
        """Sets the model's decoding without compiling: `search_settings = search`.

        `search`: a `decoding.SearchSettings`, or a dict of fields merged into
        the current one.
        """
        self.search_settings = search

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`; in self-critical mode a fresh model is built from `x` first.

        (Keras would build it by tracing `call`, which per-image batches,
        having no captions, cannot feed.)
        """
        if self.self_critical is not None and not self.built:
            self.build(encoder_input_shapes(x))
        return super().fit(x, *args, **kwargs)

    def train_step(self, data):
        if self.self_critical is None:
            return super().train_step(data)
        return self.self_critical.train_step(self, data)

    def reset_metrics(self):
        super().reset_metrics()
        if self.self_critical is not None:
            self.self_critical.reset_metrics()

    def compile_from_config(self, config):
        config = dict(config)
        # 0.2 and early 0.3 files kept the decoding here, not in the model's config.
        search = config.pop("search", None)
        config.pop("search_chosen", None)
        self.compile(search=search, **keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so that its saved state loads

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, building the model from `x` first if needed."""
        if not self.built:
            self.build(encoder_input_shapes(x))
        return super().predict(x, *args, **kwargs)

    def predict_step(self, data):
        """Decodes a batch with the model's `search_settings`.

        Returns the dict of `search`: token_ids, scores, attention_weights.
        """
        inputs = data[0] if isinstance(data, tuple) else data
        return self.search(self.encode(inputs, training=False), self.search_settings)

    # -- presets (`from_preset` is `Captioner`'s) --------------------------------

    def save_to_preset(self, directory):
        """Writes this model as a preset directory that `from_preset` reads."""
        return presets.save_preset(self, directory)

    # -- saving --------------------------------------------------------------

    @property
    def _default_save_signature(self):
        # Keras would trace call() on the built inputs, which lack token_ids;
        # `export.export_captioner` defines the SavedModel's signatures.
        return None

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary": self.vocabulary.tokens,
            "encoder": None if self.encoder is None
            else keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "image_size": self.image_size,
            "doubly_stochastic_weight": self.doubly_stochastic_weight,
            "loss_normalization": self.loss_normalization,
            "label_smoothing": self.label_smoothing,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "reinforce_baseline": self.reinforce_baseline,
            "reinforce_samples": self.reinforce_samples,
            "search": self.search_settings.to_config(),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder", "decoder"):
            if config.get(name) is not None:
                config[name] = keras.saving.deserialize_keras_object(config[name])
        if config.get("decoder") is None:  # 0.2 kept the decoder's settings beside the model's
            settings = {name: config.pop(name) for name in decoder_arguments() & set(config)}
            config["decoder"] = settings or None
        return cls(**config)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: 0.2 read decoder settings
        # through the model (model.units).
        decoder = self.__dict__.get("decoder")
        if decoder is not None and not name.startswith("_") and name in decoder_arguments():
            warnings.warn(f"model.{name} is deprecated: read model.decoder.{name}.",
                          DeprecationWarning, stacklevel=2)
            return getattr(decoder, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _build_decoder(decoder, aliases, vocabulary_size):
    """The model's `AttentiveLSTMCell`: `decoder` itself, or built from its arguments
    (a dict, with the deprecated keyword `aliases` merged in)."""
    if aliases:
        if isinstance(decoder, AttentiveLSTMCell):
            raise ValueError(f"Pass the decoder's arguments to the decoder, not beside it. "
                             f"Received: {sorted(aliases)}")
        warnings.warn(f"Decoder arguments given to ShowAttendTell ({', '.join(sorted(aliases))}) "
                      f"are deprecated: pass decoder={{{', '.join(map(repr, sorted(aliases)))}: "
                      "...}.", DeprecationWarning, stacklevel=3)
    if isinstance(decoder, AttentiveLSTMCell):
        return decoder
    if decoder is not None and not isinstance(decoder, dict):
        raise TypeError(f"decoder must be an AttentiveLSTMCell, a dict of its arguments or "
                        f"None. Received: {type(decoder).__name__}")
    arguments = {**(decoder or {}), **aliases}
    checks.check_names("decoder arguments", arguments, decoder_arguments())
    return AttentiveLSTMCell(vocabulary_size, name="decoder", **arguments)


def check_arguments(arguments):
    """Raises ValueError for model arguments (ShowAttendTell's, "decoder" a dict of the
    decoder's) that the model does not take, by name or by value: before data is read
    or anything built, where they come from presets and overrides (`sat-keras train
    --set`). A model is made from them with a vocabulary of the special tokens and
    no encoder; it builds no weights."""
    model_names = (set(inspect.signature(ShowAttendTell.__init__).parameters)
                   - {"self", "kwargs"}) | {"name", "dtype", "trainable"}
    checks.check_names("model arguments", arguments, model_names | decoder_arguments())
    try:  # the decoder's arguments are checked by name and value as it is built
        ShowAttendTell(Vocabulary(list(SPECIAL_TOKENS)), **arguments)
    except TypeError as error:  # a value of the wrong type met a comparison
        raise ValueError(f"Bad model arguments {arguments}: {error}") from None
