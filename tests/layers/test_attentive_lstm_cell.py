import keras
import numpy as np
import pytest

from sat_keras.layers.attentive_lstm_cell import AttentiveLSTMCell


def _cell(**overrides):
    keras.utils.set_random_seed(0)
    settings = dict(vocabulary_size=12, embedding_dim=8, units=10, attention_dim=6, dropout=0.0)
    settings.update(overrides)
    cell = AttentiveLSTMCell(**settings)
    cell.build((None, 4, 8))
    return cell


def _annotations():
    return np.random.default_rng(1).normal(size=(2, 4, 8)).astype("float32")


def _step(cell, token_ids=(1, 5), training=False):
    annotations = _annotations()
    memory = cell.prepare_memory(annotations)
    states = cell.get_initial_state(annotations)
    return cell(np.array(token_ids), states, memory, training=training), annotations


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _reference_step(cell, token_ids, annotations, location=None):
    """One step of eqs. (1)-(7) in numpy from the cell's weights.

    `location`: hard attention's chosen location per image (None: the
    expected context sum_i alpha_i a_i).
    """
    def weights(layer):
        return [keras.ops.convert_to_numpy(w) for w in layer.weights]

    y = keras.ops.convert_to_numpy(cell.embedding.embeddings)[np.array(token_ids)]  # (B, m)
    if cell.initial_state == "zeros":
        h = c = np.zeros((len(token_ids), cell.units), "float32")
    else:
        mean = annotations.mean(axis=1)
        (wh, bh), (wc, bc) = weights(cell.initial_h), weights(cell.initial_c)
        h, c = np.tanh(mean @ wh + bh), np.tanh(mean @ wc + bc)
    wa, ba = weights(cell.soft_attention.annotation_projection)
    (wq,) = weights(cell.soft_attention.query_projection)
    v = keras.ops.convert_to_numpy(cell.soft_attention.score_vector)
    hidden = annotations @ wa + ba + (h @ wq)[:, None, :]  # (B, L, n)
    hidden = np.tanh(hidden) if cell.attention_activation == "tanh" else np.maximum(hidden, 0)
    scores = hidden @ v  # (B, L)
    alpha = np.exp(scores - scores.max(-1, keepdims=True))
    alpha /= alpha.sum(-1, keepdims=True)
    if location is None:
        z = np.einsum("bl,bld->bd", alpha, annotations)
    else:
        z = annotations[np.arange(len(location)), location]
    if cell.gating is not None:
        wb, bb = weights(cell.gate)
        z = _sigmoid(h @ wb + bb) * z
    kernels = [keras.ops.convert_to_numpy(w) for w in (
        cell.input_kernel, cell.context_kernel, cell.recurrent_kernel, cell.lstm_bias)]
    gates = y @ kernels[0] + z @ kernels[1] + h @ kernels[2] + kernels[3]
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    wo, bo = weights(cell.logits)
    if not cell.deep_output:
        return h @ wo + bo, h, c, alpha
    wlh, blh = weights(cell.hidden_to_output)
    out = h @ wlh + blh
    if cell.prev2out:
        out = out + y
    if cell.ctx2out:
        (wlz,) = weights(cell.context_to_output)
        out = out + z @ wlz
    return np.tanh(out) @ wo + bo, h, c, alpha


@pytest.mark.parametrize("overrides", [
    {}, {"gating": "vector"}, {"gating": None}, {"deep_output": False},
    {"prev2out": False, "ctx2out": False}, {"prev2out": False}, {"ctx2out": False},
    {"initial_state": "zeros"}, {"attention_activation": "relu"},
    {"attention": "hard"},  # outside training: the expected context
])
def test_one_step_equals_the_papers_equations(overrides):
    cell = _cell(**overrides)
    (logits, (h, c), weights), annotations = _step(cell)
    expected_logits, expected_h, expected_c, expected_alpha = _reference_step(
        cell, (1, 5), annotations)
    for found, expected in [(weights, expected_alpha), (h, expected_h), (c, expected_c),
                            (logits, expected_logits)]:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(found), expected, rtol=1e-4,
                                   atol=1e-5)


def test_hard_inference_argmax_and_sample_take_the_chosen_location():
    annotations = _annotations()
    argmax_cell = _cell(attention="hard", hard_inference="argmax")
    (logits, _, weights), _ = _step(argmax_cell)
    chosen = keras.ops.convert_to_numpy(weights).argmax(-1)
    expected_logits, _, _, _ = _reference_step(argmax_cell, (1, 5), annotations, chosen)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), expected_logits, rtol=1e-4,
                               atol=1e-5)

    sample_cell = _cell(attention="hard", hard_inference="sample")
    memory = sample_cell.prepare_memory(annotations)
    states = sample_cell.get_initial_state(annotations)
    noise = np.random.default_rng(2).uniform(0.01, 0.99, size=(2, 4)).astype("float32")
    _, _, context, alpha, log_prob = sample_cell.recurrent_step(
        sample_cell.embed(np.array([1, 5])), states, memory, uniform_noise=noise)
    alpha = keras.ops.convert_to_numpy(alpha)
    drawn = (np.log(alpha) - np.log(-np.log(noise))).argmax(-1)  # the Gumbel-max rule
    beta = _sigmoid(keras.ops.convert_to_numpy(states[0])
                    @ keras.ops.convert_to_numpy(sample_cell.gate.kernel)
                    + keras.ops.convert_to_numpy(sample_cell.gate.bias))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context),
                               beta * annotations[np.arange(2), drawn], rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_prob),
                               np.log(alpha[np.arange(2), drawn]), rtol=1e-4)


def test_initial_state_is_tanh_of_a_dense_layer_over_the_mean_annotation():
    cell = _cell()
    annotations = _annotations()
    h0, c0 = cell.get_initial_state(annotations)
    kernel, bias = [v.numpy() for v in cell.initial_h.weights]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(h0), np.tanh(annotations.mean(1) @ kernel + bias), rtol=1e-5)
    assert np.abs(keras.ops.convert_to_numpy(c0)).max() > 0
    zeros = _cell(initial_state="zeros").get_initial_state(annotations)
    assert not np.any(keras.ops.convert_to_numpy(zeros[0]))


def test_initial_state_layers_add_relu_layers_before_the_projections_as_the_authors():
    cell = _cell(initial_state_layers=3, dropout=0.5)
    annotations = _annotations()
    assert [layer.name for layer in cell.initial_hidden] == ["initial_hidden_1",
                                                             "initial_hidden_2"]
    hidden = annotations.mean(1)
    for layer in cell.initial_hidden:  # (D, D) each: the annotation's size
        kernel, bias = [v.numpy() for v in layer.weights]
        assert kernel.shape == (8, 8)
        hidden = np.maximum(hidden @ kernel + bias, 0.0)
    kernel, bias = [v.numpy() for v in cell.initial_h.weights]
    h0, _ = cell.get_initial_state(annotations)  # no dropout outside training
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h0), np.tanh(hidden @ kernel + bias),
                               rtol=1e-5, atol=1e-6)
    dropped, _ = cell.get_initial_state(annotations, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(dropped), keras.ops.convert_to_numpy(h0))
    assert len(_cell().weights) + 4 == len(cell.weights)  # a kernel and a bias a layer
    again = AttentiveLSTMCell.from_config(cell.get_config())
    assert again.initial_state_layers == 3
    with pytest.raises(ValueError, match="initial_state_layers must be a positive integer"):
        _cell(initial_state_layers=0)


def test_a_new_decoder_setting_reaches_the_model_the_presets_and_saving_unrelayed(tmp_path):
    """`initial_state_layers` was added to this layer alone: the model, its presets,
    overrides and saving carry it because they read the decoder's own config."""
    from sat_keras import ShowAttendTell
    from sat_keras import Vocabulary
    from sat_keras.models.saving import load_captioner
    from sat_keras.models.saving import save_captioner

    vocabulary = Vocabulary.build(["a red circle", "a blue square"])
    model = ShowAttendTell.from_preset("synthetic", vocabulary=vocabulary,
                                       decoder={"initial_state_layers": 2})
    assert model.decoder.initial_state_layers == 2
    model.build({"images": (None, 64, 64, 3)})
    save_captioner(model, str(tmp_path))
    assert load_captioner(str(tmp_path)).decoder.initial_state_layers == 2


def test_scalar_gate_scales_the_context():
    cell = _cell()
    annotations = _annotations()
    states = cell.get_initial_state(annotations)
    memory = cell.prepare_memory(annotations)
    _, _, context, weights, log_prob = cell.recurrent_step(cell.embed(np.array([1, 1])), states,
                                                          memory)
    assert not keras.ops.convert_to_numpy(log_prob).any()  # soft attention samples nothing
    weights = keras.ops.convert_to_numpy(weights)
    kernel, bias = [v.numpy() for v in cell.gate.weights]
    beta = 1 / (1 + np.exp(-(keras.ops.convert_to_numpy(states[0]) @ kernel + bias)))
    assert beta.shape == (2, 1)
    expected = beta * np.einsum("bl,bld->bd", weights, annotations)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context), expected, rtol=1e-5)


def test_dropout_only_in_training():
    cell = _cell(dropout=0.5)
    (logits_a, _, _), _ = _step(cell)
    (logits_b, _, _), _ = _step(cell)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(logits_a),
                                  keras.ops.convert_to_numpy(logits_b))
    (logits_c, _, _), _ = _step(cell, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(logits_a),
                           keras.ops.convert_to_numpy(logits_c))


def _teacher_forced(cell, training):
    words = np.array([[1, 5, 6], [1, 7, 0]])
    outputs = cell.decode_sequence(words, *cell.start(_annotations(), training=training),
                                   training=training)
    return keras.ops.convert_to_numpy(outputs["logits"])


@pytest.mark.parametrize("name", ["annotation_dropout", "embedding_dropout"])
def test_input_dropouts_act_in_training_alone(name):
    plain, dropping = _cell(), _cell(**{name: 0.5})
    dropping.set_weights(plain.get_weights())
    expected = _teacher_forced(plain, training=True)  # no dropout at all
    np.testing.assert_allclose(_teacher_forced(dropping, training=False), expected, rtol=1e-6)
    (step_logits, _, _), _ = _step(dropping)
    (plain_step_logits, _, _), _ = _step(plain)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(step_logits),
                               keras.ops.convert_to_numpy(plain_step_logits), rtol=1e-6)
    dropped = _teacher_forced(dropping, training=True)
    assert not np.allclose(dropped, expected)
    assert not np.allclose(dropped, _teacher_forced(dropping, training=True))  # fresh masks


def test_annotation_dropout_feeds_the_initial_state_and_the_steps_the_same_annotations():
    cell = _cell(annotation_dropout=0.5)
    keras.utils.set_random_seed(3)
    states, memory = cell.start(_annotations(), training=True)
    dropped = keras.ops.convert_to_numpy(memory["annotations"])
    assert np.mean(dropped == 0) > 0.3  # about half the values dropped
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * _annotations()[kept], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(states[0]),
                               keras.ops.convert_to_numpy(cell.get_initial_state(dropped)[0]),
                               rtol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(memory["keys"]),
        keras.ops.convert_to_numpy(cell.soft_attention.project_annotations(dropped)), rtol=1e-5)


def test_annotation_projection_embeds_the_features_for_every_later_use():
    cell = _cell(annotation_projection=5, annotation_dropout=0.5)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in cell.projection.weights)
    assert kernel.shape == (8, 5)  # from the 8 features of each location
    embedded = np.maximum(_annotations() @ kernel + bias, 0.0)  # (2, 4, 5)
    assert (embedded == 0).any() and (embedded > 0).any()  # the ReLU acts
    assert tuple(cell.context_kernel.shape) == (5, 40)  # the LSTM sees P = 5
    assert tuple(cell.context_to_output.kernel.shape) == (5, 8)
    states, memory = cell.start(_annotations())  # outside training: no dropout
    np.testing.assert_allclose(keras.ops.convert_to_numpy(memory["annotations"]), embedded,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(states[0]),
                               keras.ops.convert_to_numpy(cell.get_initial_state(embedded)[0]),
                               rtol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(memory["keys"]),
        keras.ops.convert_to_numpy(cell.soft_attention.project_annotations(embedded)),
        rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(3)
    _, dropped = cell.start(_annotations(), training=True)  # dropout after the embedding
    dropped = keras.ops.convert_to_numpy(dropped["annotations"])
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * embedded[kept], rtol=1e-5)
    logits, _, weights = cell(np.array([1, 5]), states, memory)
    assert tuple(logits.shape) == (2, 12) and tuple(weights.shape) == (2, 4)


def test_config_round_trip():
    cell = _cell(gating="vector", deep_output=False, dropout=0.3, initial_state="zeros",
                 annotation_dropout=0.2, embedding_dropout=0.1, annotation_projection=5)
    restored = AttentiveLSTMCell.from_config(cell.get_config())
    assert restored.get_config() == cell.get_config()


@pytest.mark.parametrize("overrides, message", [
    ({"units": 0}, "units must be a positive integer"),
    ({"gating": "matrix"}, "gating must be one of"),
    ({"initial_state": "random"}, "initial_state must be one of"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"annotation_dropout": -0.1}, "annotation_dropout must be in"),
    ({"annotation_projection": 0}, "annotation_projection must be None or a positive"),
    ({"annotation_projection": 2.5}, "annotation_projection must be None or a positive"),
    ({"embedding_dropout": 1.0}, "embedding_dropout must be in"),
])
def test_invalid_arguments(overrides, message):
    settings = dict(vocabulary_size=12)
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        AttentiveLSTMCell(**settings)


def test_transposed_kernels_change_no_value_and_no_gradient():
    import tensorflow as tf

    cell = _cell(gating="vector")
    annotations = tf.constant(_annotations())
    embedded = cell.embed(np.array([1, 5]))

    def loss_and_grads(transposed):
        with tf.GradientTape() as tape:
            tape.watch(annotations)
            memory = cell.prepare_memory(annotations)
            h, c, context, _, _ = cell.recurrent_step(
                embedded, cell.get_initial_state(annotations), memory,
                transposed=cell.transposed_kernels() if transposed else None)
            loss = tf.reduce_sum(h * c) + tf.reduce_sum(context)
        return loss, tape.gradient(loss, cell.trainable_weights + [annotations])

    (fast_loss, fast_grads), (plain_loss, plain_grads) = loss_and_grads(True), loss_and_grads(False)
    np.testing.assert_allclose(fast_loss.numpy(), plain_loss.numpy(), rtol=1e-6)
    names = [weight.path for weight in cell.trainable_weights] + ["annotations"]
    for name, fast_grad, plain_grad in zip(names, fast_grads, plain_grads):
        if plain_grad is None:  # the embedding and output layers are not in this step
            assert fast_grad is None, name
            continue
        np.testing.assert_allclose(keras.ops.convert_to_numpy(fast_grad),
                                   keras.ops.convert_to_numpy(plain_grad),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_teacher_forcing_gives_the_state_each_step_attends_from():
    cell = _cell()
    words = np.array([[1, 5, 6], [1, 7, 3]])
    states, memory = cell.start(_annotations())
    outputs = cell.decode_sequence(words, states, memory)
    previous = keras.ops.convert_to_numpy(outputs["previous_hidden"])  # (2, 3, units)
    for t in range(words.shape[1]):  # h_{t-1} before step t: h_0, then each step's output
        np.testing.assert_allclose(previous[:, t], keras.ops.convert_to_numpy(states[0]),
                                   rtol=1e-5, atol=1e-6)
        _, states, _ = cell(words[:, t], states, memory)
