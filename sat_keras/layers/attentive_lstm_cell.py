"""`AttentiveLSTMCell`: one decoder step of Show, Attend and Tell."""

import keras
import tensorflow as tf
from keras import ops

from sat_keras.layers.hard_attention import HardAttentionSampler
from sat_keras.layers.products import flat_apply
from sat_keras.layers.products import matmul_with_transposed_kernel
from sat_keras.layers.soft_attention import BahdanauStyleSoftAttention

GATINGS = ("scalar", "vector", None)
INITIAL_STATES = ("mean_annotation", "zeros")
ATTENTIONS = ("soft", "hard")
HARD_INFERENCES = ("expected", "sample", "argmax")
SAMPLE_MIXINGS = ("image", "batch")


def _scan_over_time(function, initial, sequence):
    """Stacked carries of `carry = function(carry, x_t)` over time-major inputs.

    On TensorFlow this is `tf.scan`, whose while loop carries
    `maximum_iterations`, so XLA can compile its gradient; the loop of
    `keras.ops.scan` has none and fails under `jit_compile=True`.
    """
    if keras.backend.backend() == "tensorflow":  # the one tf.* use in this layer
        return tf.scan(function, sequence, initializer=initial)
    _, outputs = ops.scan(lambda carry, x: (function(carry, x),) * 2, initial, sequence)
    return outputs


@keras.saving.register_keras_serializable(package="sat_keras")
class AttentiveLSTMCell(keras.layers.Layer):
    """The decoder step: attend, gate, update the LSTM, predict the next word.

    With y_{t-1} the previous word, a the annotations and (h, c) the state:

    1. E y_{t-1}                                    (batch, embedding_dim)
    2. alpha_t, z_t = attention(h_{t-1}, a)         (batch, L), (batch, D)
       hard attention in training: z_t = a_{s_t}, s_t ~ Cat(alpha_t)
       (`HardAttentionSampler`) for the images that sample in this batch,
       else the expected context sum_i alpha_ti a_i
    3. beta_t = sigmoid(W_b h_{t-1} + b_b)          (batch, 1) or (batch, D)
       z_t <- beta_t * z_t                          (batch, D)
    4. h_t, c_t = LSTM([E y_{t-1}, z_t], h_{t-1}, c_{t-1})   (batch, units)
    5. deep output: logits = L_o dropout(tanh(E y_{t-1} + L_h dropout(h_t)
       + L_z z_t))                                  (batch, vocabulary_size)
       or, without it, logits = L_o dropout(h_t).

    The cell owns both ways of running these steps: one step at a time
    (`call`, the step contract that decoding searches over) and a whole
    teacher-forced caption (`decode_sequence`: steps 1-4 in one scan, step 5
    over all steps at once, and for hard attention the per-image choice
    between a sampled and the expected context). `start` gives both their
    initial state and per-image memory.

    Args:
        vocabulary_size: number of words, special tokens included.
        embedding_dim: size of the word embedding E.
        units: LSTM units.
        attention_dim: hidden size of the attention MLP.
        attention_activation: "tanh" (authors) or "relu" (ports).
        gating: "scalar" (authors' selector beta), "vector" or None.
        deep_output: the deep output layer (eq. 7); False: logits from h_t.
        prev2out: add E y_{t-1} in the deep output.
        ctx2out: add L_z z_t in the deep output.
        dropout: dropout rate on h_t and on the deep output (authors: 0.5).
        annotation_projection: None (the authors: the annotations are the
            encoder's features) or a size P: a = relu(W_e f + b_e) embeds
            each location's features f (batch, L, D_f) into P dimensions
            first, as ruotianluo's models embed theirs (`att_embed`);
            everything below then sees P-dimensional annotations, so the
            LSTM's and the deep output's context weights shrink with P.
        annotation_dropout: dropout rate on the annotations a in training,
            before the initial state, the attention and the context use
            them (0: none, the authors; ruotianluo's self-critical models
            drop their embedded attention features at 0.5).
        embedding_dropout: dropout rate on the word embeddings E y_{t-1} in
            training, before the LSTM and the deep output use them (0:
            none, the authors; 0.5 in ruotianluo's models).
        initial_state: "mean_annotation" (h_0, c_0 = tanh(MLP(mean_i a_i)),
            the paper's) or "zeros" (some ports).
        initial_state_layers: the layers of that MLP: 1 (default) projects
            the mean annotation straight to h_0 and c_0; N adds N - 1 ReLU
            layers of the annotation's size before them, each followed by
            dropout at `dropout` in training, as the authors' `n_layers_init`
            (their Flickr8k and COCO settings: 2).
        attention: "soft" or "hard" (stochastic, sec. 4.1).
        hard_inference: the context of hard attention outside training:
            "expected" (sum_i alpha_i a_i, deterministic, the authors' test
            time), "sample" or "argmax" (a_s at the most likely location).
        expected_context_probability: hard attention: the chance that an
            image uses the expected context in a training step (paper: 0.5).
        sample_mixing: "image" (that choice per image) or "batch" (once per
            batch, the authors' code).
        seed: seed of the hard-attention sampling (and of caption sampling
            with a temperature, which draws from the same generator).

    Call arguments:
        token_ids: previous words y_{t-1}, int (batch,).
        states: `[h, c]`, each (batch, units).
        memory: `prepare_memory(annotations)`: the annotations and their
            attention projection, computed once per image.
        training: enables dropout.

    Returns:
        `(logits, new_states, attention_weights)`: (batch, vocabulary_size),
        `[h_t, c_t]`, alpha_t (batch, num_locations).


    Example:
    >>> cell = AttentiveLSTMCell(vocabulary_size=12, embedding_dim=8, units=16,
    ...                          attention_dim=8)
    >>> annotations = np.ones((2, 4, 8), "float32")
    >>> cell.build(annotations.shape)
    >>> states, memory = cell.start(annotations)
    >>> logits, states, weights = cell(np.array([1, 1]), states, memory)
    >>> tuple(logits.shape), tuple(weights.shape)
    ((2, 12), (2, 4))
    >>> words = np.array([[1, 5, 6], [1, 7, 0]])  # teacher forcing: the whole caption
    >>> outputs = cell.decode_sequence(words, *cell.start(annotations))
    >>> tuple(outputs["logits"].shape)
    (2, 3, 12)

    Reference:
        Xu et al., "Show, Attend and Tell", ICML 2015, eqs. (1)-(7), sec. 4.2.1
        (gating scalar beta), sec. 3.1.2 (initial state).
    """

    def __init__(self, vocabulary_size, embedding_dim=512, units=512, attention_dim=512,
                 attention_activation="tanh", gating="scalar", deep_output=True,
                 prev2out=True, ctx2out=True, dropout=0.5, annotation_projection=None,
                 annotation_dropout=0.0,
                 embedding_dropout=0.0, initial_state="mean_annotation",
                 initial_state_layers=1, attention="soft",
                 hard_inference="expected", expected_context_probability=0.5,
                 sample_mixing="image", seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size),
                            ("embedding_dim", embedding_dim), ("units", units),
                            ("attention_dim", attention_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if annotation_projection is not None and (
                not isinstance(annotation_projection, int) or annotation_projection < 1):
            raise ValueError("annotation_projection must be None or a positive integer. "
                             f"Received: annotation_projection={annotation_projection!r}")
        if gating not in GATINGS:
            raise ValueError(f"gating must be one of {GATINGS}. Received: gating={gating!r}")
        if initial_state not in INITIAL_STATES:
            raise ValueError(
                f"initial_state must be one of {INITIAL_STATES}. "
                f"Received: initial_state={initial_state!r}"
            )
        if (isinstance(initial_state_layers, bool) or not isinstance(initial_state_layers, int)
                or initial_state_layers < 1):
            raise ValueError("initial_state_layers must be a positive integer. "
                             f"Received: initial_state_layers={initial_state_layers!r}")
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {ATTENTIONS}. Received: attention={attention!r}")
        if hard_inference not in HARD_INFERENCES:
            raise ValueError(
                f"hard_inference must be one of {HARD_INFERENCES}. "
                f"Received: hard_inference={hard_inference!r}")
        for name, rate in (("dropout", dropout), ("annotation_dropout", annotation_dropout),
                           ("embedding_dropout", embedding_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1). Received: {name}={rate!r}")
        if sample_mixing not in SAMPLE_MIXINGS:
            raise ValueError(f"sample_mixing must be one of {SAMPLE_MIXINGS}. "
                             f"Received: sample_mixing={sample_mixing!r}")
        if not 0.0 <= expected_context_probability <= 1.0:
            raise ValueError("expected_context_probability must be in [0, 1]. Received: "
                             f"expected_context_probability={expected_context_probability!r}")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention_dim = attention_dim
        self.attention_activation = attention_activation
        self.gating = gating
        self.deep_output = deep_output
        self.prev2out = prev2out
        self.ctx2out = ctx2out
        self.dropout = dropout
        self.annotation_projection = annotation_projection
        self.annotation_dropout = annotation_dropout
        self.embedding_dropout = embedding_dropout
        self.initial_state = initial_state
        self.initial_state_layers = initial_state_layers
        self.attention = attention
        self.hard_inference = hard_inference
        self.expected_context_probability = expected_context_probability
        self.sample_mixing = sample_mixing
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.state_size = [units, units]

    def build(self, annotations_shape):
        """`annotations_shape`: the encoder's features, (batch, L, D_f)."""
        if self.annotation_projection is not None:
            self.projection = keras.layers.Dense(
                self.annotation_projection, activation="relu", name="annotation_projection")
            self.projection.build(tuple(annotations_shape))
            annotations_shape = tuple(annotations_shape[:-1]) + (self.annotation_projection,)
        annotation_dim = annotations_shape[-1]
        self.embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="embedding"
        )
        self.embedding.build((None,))
        self.soft_attention = BahdanauStyleSoftAttention(
            self.attention_dim, activation=self.attention_activation, name="attention"
        )
        self.soft_attention.build((None, self.units), annotations_shape)
        if self.attention == "hard":
            self.sampler = HardAttentionSampler(seed=self.seed, name="sampler")
        if self.gating is not None:
            gate_size = 1 if self.gating == "scalar" else annotation_dim
            self.gate = keras.layers.Dense(gate_size, activation="sigmoid", name="gate")
            self.gate.build((None, self.units))
        if self.initial_state == "mean_annotation":
            self.initial_hidden = []
            for index in range(1, self.initial_state_layers):
                layer = keras.layers.Dense(annotation_dim, activation="relu",
                                           name=f"initial_hidden_{index}")
                layer.build((None, annotation_dim))
                self.initial_hidden.append(layer)
            self.initial_h = keras.layers.Dense(self.units, activation="tanh", name="initial_h")
            self.initial_h.build((None, annotation_dim))
            self.initial_c = keras.layers.Dense(self.units, activation="tanh", name="initial_c")
            self.initial_c.build((None, annotation_dim))
        # LSTM weights, gates in the order input, forget, cell, output.
        self.input_kernel = self.add_weight(
            shape=(self.embedding_dim, 4 * self.units), initializer="glorot_uniform",
            name="input_kernel")
        self.context_kernel = self.add_weight(
            shape=(annotation_dim, 4 * self.units), initializer="glorot_uniform",
            name="context_kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units), initializer="orthogonal",
            name="recurrent_kernel")
        self.lstm_bias = self.add_weight(
            shape=(4 * self.units,), initializer="zeros", name="lstm_bias")
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.annotation_dropout_layer = keras.layers.Dropout(
            self.annotation_dropout, name="annotation_dropout")
        self.embedding_dropout_layer = keras.layers.Dropout(
            self.embedding_dropout, name="embedding_dropout")
        if self.deep_output:
            self.hidden_to_output = keras.layers.Dense(self.embedding_dim, name="hidden_to_output")
            self.hidden_to_output.build((None, self.units))
            if self.ctx2out:
                self.context_to_output = keras.layers.Dense(
                    self.embedding_dim, use_bias=False, name="context_to_output")
                self.context_to_output.build((None, annotation_dim))
        self.logits = keras.layers.Dense(self.vocabulary_size, name="logits")
        self.logits.build((None, self.embedding_dim if self.deep_output else self.units))

    def start(self, annotations, training=None):
        """(initial state, memory) for decoding the encoder's features (batch, L, D_f).

        With `annotation_projection` the features are embedded first. In
        training (teacher forcing) the annotations then pass
        `annotation_dropout`, so the initial state and every step see the
        same dropped ones.
        """
        if self.annotation_projection is not None:
            annotations = self.projection(annotations)  # (batch, L, P)
        annotations = self.annotation_dropout_layer(annotations, training=training)
        return (self.get_initial_state(annotations, training=training),
                self.prepare_memory(annotations))

    def decode_sequence(self, token_ids, states, memory, training=None):
        """Teacher forcing: every step of a caption whose words are known.

        Steps 1-4 run in one scan over time, with the embedding's share of
        the gates computed for all steps at once and the step's kernels
        transposed once outside the loop (`transposed_kernels`); step 5 then
        runs over all steps at once. It equals calling the cell step by step
        on the same words.

        Args:
            token_ids: int (batch, T), the previous words, `<start>` first.
            states, memory: from `start`.
            training: enables dropout and, for hard attention, sampling.

        Returns:
            dict: "logits" (batch, T, vocabulary_size), "attention_weights"
            (batch, T, L), "sample_log_probs" (batch, T): log alpha_{t, s_t}
            of the location sampled at each step (hard attention in
            training), 0 where none was sampled, and "previous_hidden"
            (batch, T, units): h_{t-1}, the state each step attends from
            (h_0 first), which depends on the earlier steps' samples only.
        """
        annotations = memory["annotations"]
        token_ids = ops.convert_to_tensor(token_ids, "int32")  # (batch, T)
        embedded = self.embed(token_ids, training=training)  # (batch, T, embedding_dim)
        batch_size, num_locations, annotation_dim = (ops.shape(annotations)[i] for i in range(3))
        sampling = self.attention == "hard" and bool(training)
        sequence = ops.transpose(self.input_gates(embedded), (1, 0, 2))  # (T, batch, 4U)
        use_sample = None
        if sampling:
            use_sample = self._sample_choice(batch_size)  # (batch,)
            noise = keras.random.uniform(
                (ops.shape(sequence)[0], batch_size, num_locations), dtype="float32",
                seed=self.seed_generator)  # (T, batch, L), drawn once outside the loop
            sequence = (sequence, noise)
        transposed = self.transposed_kernels()  # once, outside the loop

        def recurrence(carry, inputs_t):
            gates_t, noise_t = inputs_t if sampling else (inputs_t, None)
            return tuple(self.recurrent_step(
                None, list(carry[:2]), memory, training=sampling, uniform_noise=noise_t,
                input_gates=gates_t, transposed=transposed, use_sample=use_sample))

        initial = (
            states[0], states[1],
            ops.zeros((batch_size, annotation_dim), annotations.dtype),  # context
            ops.zeros((batch_size, num_locations), annotations.dtype),  # alpha
            ops.zeros((batch_size,), "float32"),  # log p(s_t)
        )
        hidden, _, contexts, attention_weights, sample_log_probs = (
            _scan_over_time(recurrence, initial, sequence))  # time-major
        hidden = ops.transpose(hidden, (1, 0, 2))  # (batch, T, units)
        contexts = ops.transpose(contexts, (1, 0, 2))  # (batch, T, D)
        logits = self.output_logits(embedded, hidden, contexts, training=training)
        previous = ops.concatenate(
            [ops.expand_dims(ops.cast(states[0], hidden.dtype), 1), hidden[:, :-1]], axis=1)
        return {"logits": logits,  # (batch, T, V)
                "attention_weights": ops.transpose(attention_weights, (1, 0, 2)),  # (batch, T, L)
                "sample_log_probs": ops.transpose(sample_log_probs),  # (batch, T)
                "previous_hidden": previous}  # (batch, T, units)

    def _sample_choice(self, batch_size):
        """1.0 where an image uses the sampled context, 0.0 for the expected one (batch,)."""
        draws = 1 if self.sample_mixing == "batch" else batch_size
        uniform = keras.random.uniform((draws,), seed=self.seed_generator)  # (draws,)
        use_sample = ops.cast(uniform >= self.expected_context_probability, "float32")
        return ops.ones((batch_size,)) * use_sample  # (batch,)

    def embed(self, token_ids, training=None):
        """E y for ids of any shape -> (..., embedding_dim); in training after
        `embedding_dropout`."""
        return self.embedding_dropout_layer(self.embedding(token_ids), training=training)

    def prepare_memory(self, annotations):
        """Everything per image that the steps reuse: a and W_a a + b_a."""
        return {
            "annotations": annotations,  # (batch, num_locations, annotation_dim)
            # (batch, L, attention_dim)
            "keys": self.soft_attention.project_annotations(annotations),
        }

    def get_initial_state(self, annotations, training=None):
        """[h_0, c_0] from the annotations (batch, num_locations, annotation_dim)."""
        if self.initial_state == "zeros":
            zeros = ops.zeros((ops.shape(annotations)[0], self.units), annotations.dtype)
            return [zeros, zeros]
        mean_annotation = ops.mean(annotations, axis=1)  # (batch, annotation_dim)
        for layer in self.initial_hidden:
            mean_annotation = self.output_dropout(layer(mean_annotation), training=training)
        return [self.initial_h(mean_annotation), self.initial_c(mean_annotation)]

    def input_gates(self, embedded):
        """The LSTM gates' input term W E y + b for any leading shape (..., 4 * units).

        Teacher forcing computes it for every step at once, outside the
        recurrence, as one large product instead of one small one per step.
        """
        return flat_apply(lambda x: ops.matmul(x, self.input_kernel), embedded) + self.lstm_bias

    def transposed_kernels(self):
        """The step's kernels, transposed, for `recurrent_step`.

        Teacher forcing computes them once per batch, outside the recurrence,
        so that each step's gradient multiplies by kernels already laid out
        transposed (see `products.matmul_with_transposed_kernel`).
        """
        return {"context_kernel": ops.transpose(self.context_kernel),  # (4U, annotation_dim)
                "recurrent_kernel": ops.transpose(self.recurrent_kernel),  # (4U, U)
                "query_kernel": ops.transpose(self.soft_attention.query_projection.kernel)}

    def recurrent_step(self, embedded, states, memory, training=False, uniform_noise=None,
                       input_gates=None, transposed=None, use_sample=None):
        """Steps 2-4 from E y_{t-1} (batch, embedding_dim).

        `input_gates`: `self.input_gates(embedded)` when already computed
        (then `embedded` is not used). `transposed`: `self.transposed_kernels()`
        when the step will be differentiated; the outputs are the same, their
        gradients faster. `use_sample` (batch,): hard attention in training,
        1 where an image uses the sampled context, 0 for the expected one.

        Returns:
            (h_t, c_t, z_t, alpha_t, log_prob): log_prob (batch,) is log
            alpha_{t, s_t} of a sampled location, and 0 where none was
            sampled (soft attention, expected context).
        """
        h, c = states
        context, attention_weights = self.soft_attention(
            h, memory["annotations"], keys=memory["keys"],
            query_kernel_t=None if transposed is None else transposed["query_kernel"],
        )  # (batch, annotation_dim), (batch, num_locations)
        context, log_prob = self._hard_context(
            context, attention_weights, memory, training, uniform_noise, use_sample)
        if self.gating is not None:
            context = self.gate(h) * context  # (batch, annotation_dim)
        if input_gates is None:
            input_gates = self.input_gates(embedded)  # (batch, 4 * units)
        gates = (
            input_gates
            + self._kernel_product(context, "context_kernel", transposed)
            + self._kernel_product(h, "recurrent_kernel", transposed)
        )  # (batch, 4 * units)
        input_gate, forget_gate, candidate, output_gate = ops.split(gates, 4, axis=-1)
        c = (ops.sigmoid(forget_gate) * c
             + ops.sigmoid(input_gate) * ops.tanh(candidate))  # (batch, units)
        h = ops.sigmoid(output_gate) * ops.tanh(c)  # (batch, units)
        return h, c, context, attention_weights, log_prob

    def _kernel_product(self, inputs, name, transposed):
        """inputs @ the LSTM kernel `name` ("context_kernel" or "recurrent_kernel")."""
        kernel = getattr(self, name)
        if transposed is None:
            return ops.matmul(inputs, kernel)
        return matmul_with_transposed_kernel(
            inputs, ops.cast(kernel, inputs.dtype), ops.cast(transposed[name], inputs.dtype))

    def _hard_context(self, context, attention_weights, memory, training, uniform_noise,
                      use_sample):
        """The context and log p(s) for hard attention; soft passes through."""
        no_sample = ops.zeros_like(attention_weights[:, 0], dtype="float32")  # (batch,)
        mode = "sample" if training else self.hard_inference
        if self.attention == "soft" or mode == "expected":
            return context, no_sample
        _, sampled_context, log_prob = self.sampler(
            attention_weights, memory["annotations"], uniform_noise=uniform_noise,
            argmax=mode == "argmax")  # (batch, L), (batch, D), (batch,)
        log_prob = ops.cast(log_prob, "float32")  # (batch,), float32 under mixed precision too
        if not training:
            return ops.cast(sampled_context, context.dtype), log_prob
        if use_sample is None:
            use_sample = ops.ones_like(log_prob)  # every image samples
        choice = ops.expand_dims(ops.cast(use_sample, context.dtype), -1)  # (batch, 1)
        mixed = choice * ops.cast(sampled_context, context.dtype) + (1 - choice) * context
        return mixed, log_prob * use_sample  # (batch, D), (batch,)

    def output_logits(self, embedded, h, context, training=None):
        """Step 5 for any leading shape (...): -> (..., vocabulary_size)."""
        h = self.output_dropout(h, training=training)  # (..., units)
        if not self.deep_output:
            return flat_apply(self.logits, h)  # (..., vocabulary_size)
        output = flat_apply(self.hidden_to_output, h)  # (..., embedding_dim)
        if self.prev2out:
            output = output + embedded  # (..., embedding_dim)
        if self.ctx2out:
            output = output + flat_apply(self.context_to_output, context)  # (..., embedding_dim)
        output = self.output_dropout(ops.tanh(output), training=training)  # (..., embedding_dim)
        return flat_apply(self.logits, output)  # (..., vocabulary_size)

    def call(self, token_ids, states, memory, training=None):
        embedded = self.embed(token_ids, training=training)  # (batch, embedding_dim)
        h, c, context, attention_weights, _ = self.recurrent_step(
            embedded, states, memory, training=False)
        logits = self.output_logits(embedded, h, context, training=training)  # (batch, V)
        return logits, [h, c], attention_weights

    def compute_output_shape(self, token_ids_shape, states_shape, memory_shape):
        batch = token_ids_shape[0]
        num_locations = memory_shape["annotations"][1]
        return ((batch, self.vocabulary_size), [(batch, self.units)] * 2,
                (batch, num_locations))

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention_dim": self.attention_dim,
            "attention_activation": self.attention_activation,
            "gating": self.gating,
            "deep_output": self.deep_output,
            "prev2out": self.prev2out,
            "ctx2out": self.ctx2out,
            "dropout": self.dropout,
            "annotation_projection": self.annotation_projection,
            "annotation_dropout": self.annotation_dropout,
            "embedding_dropout": self.embedding_dropout,
            "initial_state": self.initial_state,
            "initial_state_layers": self.initial_state_layers,
            "attention": self.attention,
            "hard_inference": self.hard_inference,
            "expected_context_probability": self.expected_context_probability,
            "sample_mixing": self.sample_mixing,
            "seed": self.seed,
        })
        return config
