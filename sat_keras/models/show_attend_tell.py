"""`ShowAttendTell`: encoder + attentive LSTM decoder as a `keras.Model`."""

import keras
import numpy as np
from keras import ops

from sat_keras import decoding
from sat_keras.distribute import logs_for_multi_worker
from sat_keras.distribute import scale_for_replicas
from sat_keras.layers.attentive_lstm_cell import AttentiveLSTMCell
from sat_keras.models import losses
from sat_keras.text import Vocabulary

ATTENTIONS = ("soft", "hard")
SAMPLE_MIXINGS = ("image", "batch")
BASELINES = ("caption", "per_token")


def _scan_over_time(function, initial, sequence):
    """Stacked carries of `carry = function(carry, x_t)` over time-major inputs.

    On TensorFlow this is `tf.scan`, whose while loop carries
    `maximum_iterations`, so XLA can compile its gradient; the loop of
    `keras.ops.scan` has none and fails under `jit_compile=True`.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.scan(function, sequence, initializer=initial)
    _, outputs = ops.scan(lambda carry, x: (function(carry, x),) * 2, initial, sequence)
    return outputs


def _encoder_input_shapes(inputs):
    """{"images" or "features": (None, ...)} of a dict of arrays or a dataset of dicts."""
    if hasattr(inputs, "element_spec"):  # a tf.data.Dataset
        inputs = inputs.element_spec
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
    if not isinstance(inputs, dict) or not {"images", "features"} & set(inputs):
        raise ValueError('Expected a dict with "images" or "features" (or a dataset of '
                         f"them). Received: {type(inputs).__name__}")
    return {name: (None,) + tuple(value.shape[1:]) for name, value in inputs.items()
            if name in ("images", "features")}


@keras.saving.register_keras_serializable(package="sat_keras")
class ShowAttendTell(keras.Model):
    """Show, Attend and Tell (Xu et al. 2015) with soft or hard attention.

    Teacher forcing (`call`) runs the cell's recurrence over the caption in
    one scan, then the output layer over all steps at once;
    decoding (`caption`) runs the same cell one step at a time.

    Loss per caption, averaged over the batch (padding masked everywhere):

        loss = NLL + doubly_stochastic_weight * sum_i (1 - sum_t alpha_ti)^2

    NLL is summed over the caption's tokens with `loss_normalization=
    "caption"` (the authors' code) or averaged over them with "token"; the
    penalty (eq. 14) sums over locations i, with alpha masked by the caption
    mask before the sum over steps t. Both are logged (`nll`,
    `attention_penalty`) besides the total `loss`.

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
        embedding_dim, units, attention_dim, attention_activation, gating,
            deep_output, prev2out, ctx2out, dropout, initial_state: see
            `AttentiveLSTMCell`.
        attention: "soft" (deterministic) or "hard" (stochastic, REINFORCE).
        hard_inference: "expected" (default), "sample" or "argmax": the hard
            context outside training.
        expected_context_probability: hard attention: the chance that an
            image uses the expected context in a training step (paper: 0.5).
        sample_mixing: "image" (that choice per image) or "batch" (once per
            batch, the authors' code).
        reinforce_weight, entropy_weight, baseline_decay: hard attention's
            loss terms (0.1, 0.002) and the baseline's moving-average decay (0.9).
        reinforce_baseline: "per_token" (default: b averages NLL per token
            and is scaled by each caption's length, so a long caption is not
            judged a worse sample for being long; the authors' code compares
            per-word costs: capgen.py moves `baseline_time` by the mean
            masked per-word cost and judges each caption by its mean over
            time, in minibatches of captions of one length) or "caption"
            (b averages whole-caption NLLs, the literal reading of eq. 12).
        seed: seed of the hard-attention sampling.
        image_size: side in pixels that image files are resized to before the
            encoder (`caption_image_files`, export); None if not fixed.
        doubly_stochastic_weight: lambda of the penalty. None (default): 1.0
            with soft attention (sec. 4.2.1, the authors' Flickr8k setting),
            0.0 with hard attention, whose objective (sec. 4.1, eq. 10-12)
            has no such term: the penalty favours spreading each word's
            attention when a caption has fewer words than the image has
            locations, which the sampled context of hard attention cannot use.
        loss_normalization: "caption" or "token" (see `losses.masked_nll`).

    Call arguments:
        inputs: dict with "images" (batch, H, W, 3) uint8 or "features"
            (batch, L, D), and "token_ids" int (batch, T) starting with
            `<start>`.
        training: enables dropout.

    Returns:
        dict with "logits" (batch, T, vocabulary_size), "attention_weights"
        (batch, T, L) and "sample_log_probs" (batch, T): log alpha_{t, s_t}
        of the location hard attention sampled at each step in training,
        the score that its REINFORCE term weights; 0 where no location was
        sampled (soft attention, inference, the expected context).

    `predict()` decodes instead: it returns the outputs of `search` with the
    settings of `compile(search=...)` (default greedy, 20 words), on a fresh
    model as on a loaded one.

    Example:
    >>> vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    >>> model = ShowAttendTell(vocabulary, embedding_dim=8, units=16, attention_dim=8)
    >>> outputs = model({"features": np.ones((2, 4, 8), "float32"),
    ...                  "token_ids": np.array([[1, 4, 7], [1, 4, 5]])})
    >>> tuple(outputs["logits"].shape), tuple(outputs["attention_weights"].shape)
    ((2, 3, 9), (2, 3, 4))

    Reference:
        Xu et al., "Show, Attend and Tell: Neural Image Caption Generation
        with Visual Attention", ICML 2015, arXiv:1502.03044.
    """

    def __init__(self, vocabulary, encoder=None, embedding_dim=512, units=512,
                 attention_dim=512, attention_activation="tanh", gating="scalar",
                 deep_output=True, prev2out=True, ctx2out=True, dropout=0.5,
                 initial_state="mean_annotation", attention="soft", image_size=None,
                 doubly_stochastic_weight=None, loss_normalization="caption",
                 hard_inference="expected", expected_context_probability=0.5,
                 sample_mixing="image", reinforce_weight=0.1, entropy_weight=0.002,
                 baseline_decay=0.9, reinforce_baseline="per_token", seed=None, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {ATTENTIONS}. Received: attention={attention!r}"
            )
        if loss_normalization not in losses.NORMALIZATIONS:
            raise ValueError(
                f"loss_normalization must be one of {losses.NORMALIZATIONS}. "
                f"Received: loss_normalization={loss_normalization!r}"
            )
        if doubly_stochastic_weight is None:
            doubly_stochastic_weight = 1.0 if attention == "soft" else 0.0
        if doubly_stochastic_weight < 0:
            raise ValueError(
                "doubly_stochastic_weight must be >= 0. "
                f"Received: doubly_stochastic_weight={doubly_stochastic_weight!r}"
            )
        if sample_mixing not in SAMPLE_MIXINGS:
            raise ValueError(f"sample_mixing must be one of {SAMPLE_MIXINGS}. "
                             f"Received: sample_mixing={sample_mixing!r}")
        if not 0.0 <= expected_context_probability <= 1.0:
            raise ValueError("expected_context_probability must be in [0, 1]. Received: "
                             f"expected_context_probability={expected_context_probability!r}")
        if reinforce_baseline not in BASELINES:
            raise ValueError(f"reinforce_baseline must be one of {BASELINES}. "
                             f"Received: reinforce_baseline={reinforce_baseline!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(
                f"baseline_decay must be in [0, 1). Received: baseline_decay={baseline_decay!r}")
        if not isinstance(vocabulary, Vocabulary):
            vocabulary = Vocabulary(vocabulary)
        self.vocabulary = vocabulary
        self.encoder = encoder
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention_dim = attention_dim
        self.attention_activation = attention_activation
        self.gating = gating
        self.deep_output = deep_output
        self.prev2out = prev2out
        self.ctx2out = ctx2out
        self.dropout = dropout
        self.initial_state = initial_state
        self.attention = attention
        self.image_size = image_size
        self.doubly_stochastic_weight = doubly_stochastic_weight
        self.loss_normalization = loss_normalization
        self.hard_inference = hard_inference
        self.expected_context_probability = expected_context_probability
        self.sample_mixing = sample_mixing
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.reinforce_baseline = reinforce_baseline
        self.seed = seed
        self.cell = AttentiveLSTMCell(
            len(vocabulary), embedding_dim=embedding_dim, units=units,
            attention_dim=attention_dim, attention_activation=attention_activation,
            gating=gating, deep_output=deep_output, prev2out=prev2out, ctx2out=ctx2out,
            dropout=dropout, initial_state=initial_state, attention=attention,
            hard_inference=hard_inference, seed=seed, name="decoder_cell")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.penalty_tracker = keras.metrics.Mean(name="attention_penalty")
        if attention == "hard":
            self.reinforce_tracker = keras.metrics.Mean(name="reinforce")
            self.entropy_tracker = keras.metrics.Mean(name="entropy_bonus")
        self.search_settings = decoding.SearchSettings()
        self._search_functions = {}
        self._built_input_shape = None

    # -- building -----------------------------------------------------------

    def build(self, input_shape):
        self._built_input_shape = {
            name: [None if size is None else int(size) for size in shape]
            for name, shape in input_shape.items() if name in ("features", "images")}
        if "features" in input_shape:
            annotations_shape = tuple(input_shape["features"])
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
        self.cell.build(annotations_shape)
        if self.attention == "hard":
            self.baseline = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            aggregation="mean", name="reinforce_baseline")

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a tf.distribute strategy Keras builds unbuilt models from a
        # peeked batch that it all-reduces across workers, which fails under
        # MultiWorkerMirroredStrategy for integer inputs (keras-team/keras
        # issue 20585). A built model with a built optimizer (as
        # `training.train` leaves it) needs none of it (tests/test_distribute.py).
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

    def encode(self, inputs, training=None):
        """Annotations (batch, L, D) from {"images": ...} or {"features": ...}."""
        if "features" in inputs:
            return ops.convert_to_tensor(inputs["features"], self.compute_dtype)
        self._require_encoder()
        return self.encoder(inputs["images"], training=training)  # (batch, L, D)

    def start(self, annotations):
        """(initial_state, memory) for decoding from annotations (batch, L, D)."""
        return self.cell.get_initial_state(annotations), self.cell.prepare_memory(annotations)

    def step(self, token_ids, state, memory, training=False):
        """The step contract: -> (logits (batch, V), state, attention (batch, L))."""
        return self.cell(token_ids, state, memory, training=training)

    # -- teacher forcing and the loss ----------------------------------------

    def call(self, inputs, training=None):
        annotations = self.encode(inputs, training=training)  # (batch, L, D)
        state, memory = self.start(annotations)
        token_ids = ops.convert_to_tensor(inputs["token_ids"], "int32")  # (batch, T)
        embedded = self.cell.embed(token_ids)  # (batch, T, embedding_dim)
        batch_size, num_locations, annotation_dim = (ops.shape(annotations)[i] for i in range(3))
        sampling = self.attention == "hard" and bool(training)
        # The embedding's share of the gates for all steps at once (one large
        # product), so each step multiplies only the context and h.
        sequence = ops.transpose(self.cell.input_gates(embedded), (1, 0, 2))  # (T, batch, 4U)
        if sampling:
            memory = dict(memory, use_sample=self._sample_choice(batch_size))  # (batch,)
            noise = keras.random.uniform(
                (ops.shape(sequence)[0], batch_size, num_locations), dtype="float32",
                seed=self.seed_generator)  # (T, batch, L), drawn once outside the loop
            sequence = (sequence, noise)

        transposed = self.cell.transposed_kernels()  # once, outside the loop

        def recurrence(carry, inputs_t):
            gates_t, noise_t = inputs_t if sampling else (inputs_t, None)
            return tuple(self.cell.recurrent_step(
                None, list(carry[:2]), memory, training=sampling, uniform_noise=noise_t,
                input_gates=gates_t, transposed=transposed))

        initial = (
            state[0], state[1],
            ops.zeros((batch_size, annotation_dim), annotations.dtype),  # context
            ops.zeros((batch_size, num_locations), annotations.dtype),  # alpha
            ops.zeros((batch_size,), "float32"),  # log p(s_t)
        )
        hidden, _, contexts, attention_weights, sample_log_probs = (
            _scan_over_time(recurrence, initial, sequence))  # time-major
        hidden = ops.transpose(hidden, (1, 0, 2))  # (batch, T, units)
        contexts = ops.transpose(contexts, (1, 0, 2))  # (batch, T, D)
        attention_weights = ops.transpose(attention_weights, (1, 0, 2))  # (batch, T, L)
        logits = self.cell.output_logits(embedded, hidden, contexts, training=training)
        return {"logits": logits,  # (batch, T, V)
                "attention_weights": attention_weights,
                "sample_log_probs": ops.transpose(sample_log_probs)}  # (batch, T)

    def _sample_choice(self, batch_size):
        """1.0 where an image uses the sampled context, 0.0 for the expected one (batch,)."""
        draws = 1 if self.sample_mixing == "batch" else batch_size
        uniform = keras.random.uniform((draws,), seed=self.seed_generator)  # (draws,)
        use_sample = ops.cast(uniform >= self.expected_context_probability, "float32")
        return ops.ones((batch_size,)) * use_sample  # (batch,)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        nll = losses.masked_nll(y, y_pred["logits"], self.loss_normalization)  # (batch,)
        penalty = losses.doubly_stochastic_penalty(y_pred["attention_weights"], y)  # (batch,)
        self.nll_tracker.update_state(nll)
        self.penalty_tracker.update_state(penalty)
        total = nll + self.doubly_stochastic_weight * penalty  # (batch,)
        if self.attention == "hard" and training:
            expected_nll, observed = self._baseline_terms(nll, y)  # (batch,) or (), (batch,)
            reinforce = losses.reinforce_surrogate(
                nll, expected_nll, y_pred["sample_log_probs"], y)  # (batch,)
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

    def _baseline_terms(self, nll, target_ids):
        """(the NLL the baseline expects per caption, what the baseline averages)."""
        if self.reinforce_baseline == "caption":
            return self.baseline, nll  # (), (batch,)
        lengths = ops.maximum(ops.sum(losses.caption_mask(target_ids), axis=1), 1.0)  # (batch,)
        if self.loss_normalization == "token":
            return self.baseline, nll  # nll is already per token
        return self.baseline * lengths, nll / lengths  # (batch,), (batch,)

    # -- decoding ------------------------------------------------------------

    def compile(self, optimizer="auto", search=None, **kwargs):
        """`keras.Model.compile` with the paper's optimizer and decoding defaults.

        Args:
            optimizer: "auto" (default) is Adam at 1e-3 (Xu et al. trained
                with Adam, except RMSProp on Flickr8k); anything Keras takes.
            search: the `predict()` decoding, a `decoding.SearchSettings`
                or a dict of its fields (default: greedy, 20 words).
            **kwargs: the other `keras.Model.compile` arguments.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = keras.optimizers.Adam(1e-3)
        self.search_settings = decoding.SearchSettings.from_value(search)
        self.predict_function = None  # predict() traces the new settings
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["search"] = self.search_settings.as_kwargs()
        return config

    def compile_from_config(self, config):
        config = dict(config)
        search = config.pop("search", None)
        self.compile(search=search, **keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so that its saved state loads

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, building the model from `x` first if needed."""
        if not self.built:
            self.build(_encoder_input_shapes(x))
        return super().predict(x, *args, **kwargs)

    def predict_step(self, data):
        """Decodes a batch with `self.search_settings` (set by `compile(search=...)`).

        Returns the dict of `search`: token_ids, scores, attention_weights.
        """
        inputs = data[0] if isinstance(data, tuple) else data
        return self.search(self.encode(inputs, training=False),
                           **self.search_settings.as_kwargs())

    def search(self, annotations, max_length=20, beam_size=1, length_penalty=0.0,
               temperature=None, num_captions=None):
        """Captions annotations (batch, L, D) in-graph; the settings as in `caption`.

        Returns the dict of `decoding.greedy_search` (token_ids, scores,
        attention_weights), from the search the settings choose; with
        `num_captions` n, the beam's n best, an axis of n after the batch.
        """
        state, memory = self.start(annotations)
        num_locations = ops.shape(annotations)[1]
        if temperature is not None:
            return decoding.sample_search(
                self.step, state, memory, num_locations=num_locations, max_length=max_length,
                temperature=temperature, seed=self.seed_generator)
        if beam_size == 1 and num_captions is None:
            return decoding.greedy_search(self.step, state, memory,
                                          num_locations=num_locations, max_length=max_length)
        return decoding.beam_search(
            self.step, state, memory, num_locations=num_locations, max_length=max_length,
            beam_size=beam_size, length_penalty=length_penalty, num_captions=num_captions)

    def search_function(self, settings):
        """The compiled search for one `SearchSettings`: inputs dict -> `search` outputs.

        Traced once per distinct settings and kept, so that switching between
        settings never retraces the others.
        """
        settings = decoding.SearchSettings.from_value(settings)
        if settings not in self._search_functions:
            import tensorflow as tf  # the backend this package runs on (see _scan_over_time)

            def run(inputs):
                return self.search(self.encode(inputs, training=False), **settings.as_kwargs())

            self._search_functions[settings] = tf.function(run, reduce_retracing=True)
        return self._search_functions[settings]

    def caption(self, images=None, features=None, max_length=20, beam_size=1,
                length_penalty=0.0, temperature=None, num_captions=None, batch_size=64):
        """Captions images (uint8, batch first) or features.

        `beam_size=1` is greedy search; larger sizes run the batched beam
        search of `decoding.beam_search` with `length_penalty`; a
        `temperature` draws every word instead (`decoding.sample_search`).
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
        if (images is None) == (features is None):
            raise ValueError("Pass exactly one of images= or features=.")
        search = self.search_function(decoding.SearchSettings(
            max_length=max_length, beam_size=beam_size, length_penalty=length_penalty,
            temperature=temperature, num_captions=num_captions))
        name, values = ("images", images) if features is None else ("features", features)
        if not self.built:
            self.build(_encoder_input_shapes({name: values}))
        batches = [search({name: values[start:start + batch_size]})
                   for start in range(0, len(values), batch_size)]
        outputs = {key: np.concatenate([np.asarray(batch[key]) for batch in batches])
                   for key in batches[0]} if batches else {}
        decode = self.vocabulary.decode
        outputs["captions"] = [
            decode(ids) if num_captions is None else [decode(row) for row in ids]
            for ids in outputs.get("token_ids", [])]
        return outputs

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
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_dim": self.attention_dim,
            "attention_activation": self.attention_activation,
            "gating": self.gating,
            "deep_output": self.deep_output,
            "prev2out": self.prev2out,
            "ctx2out": self.ctx2out,
            "dropout": self.dropout,
            "initial_state": self.initial_state,
            "attention": self.attention,
            "image_size": self.image_size,
            "doubly_stochastic_weight": self.doubly_stochastic_weight,
            "loss_normalization": self.loss_normalization,
            "hard_inference": self.hard_inference,
            "expected_context_probability": self.expected_context_probability,
            "sample_mixing": self.sample_mixing,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "reinforce_baseline": self.reinforce_baseline,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("encoder") is not None:
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
