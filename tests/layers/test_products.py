"""The decoder's products equal the plain ones (values and gradients)."""

import keras
import numpy as np
import tensorflow as tf

from sat_keras.layers.products import flat_apply
from sat_keras.layers.products import matmul_with_transposed_kernel
from sat_keras.layers.products import weighted_annotations


def test_flat_apply_equals_the_layer_on_every_leading_shape():
    rng = np.random.default_rng(0)
    dense = keras.layers.Dense(3)
    for shape in [(4, 5), (2, 4, 5), (2, 3, 4, 5)]:
        inputs = rng.normal(size=shape).astype("float32")
        found = keras.ops.convert_to_numpy(flat_apply(dense, inputs))
        assert found.shape == shape[:-1] + (3,)
        np.testing.assert_allclose(found, keras.ops.convert_to_numpy(dense(inputs)), rtol=1e-5,
                                   atol=1e-6)


def test_each_row_weighs_its_own_images_annotations():
    rng = np.random.default_rng(0)
    annotations = rng.normal(size=(3, 4, 5)).astype("float32")  # 3 images
    weights = rng.random(size=(6, 4)).astype("float32")  # 2 rows per image
    expected = np.einsum("rl,rld->rd", weights, np.repeat(annotations, 2, axis=0))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(weighted_annotations(weights, annotations)), expected,
        rtol=1e-5)


def _operands():
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(3, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(5, 4)), tf.float32)
    upstream = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    return inputs, kernel, upstream


def test_product_and_gradients_equal_a_plain_matmul():
    inputs, kernel, upstream = _operands()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([inputs, kernel])
        fast = matmul_with_transposed_kernel(inputs, kernel, tf.transpose(kernel))
        plain = tf.matmul(inputs, kernel)
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-6)
    for fast_grad, plain_grad in zip(
            tape.gradient(fast, [inputs, kernel], output_gradients=upstream),
            tape.gradient(plain, [inputs, kernel], output_gradients=upstream)):
        np.testing.assert_allclose(fast_grad.numpy(), plain_grad.numpy(), rtol=1e-5)


def test_the_input_gradient_uses_the_given_transposed_kernel():
    # A kernel_t that is not kernel^T shows up in the inputs' gradient only.
    inputs, kernel, upstream = _operands()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([inputs, kernel])
        product = matmul_with_transposed_kernel(inputs, kernel, 2 * tf.transpose(kernel))
    inputs_grad, kernel_grad = tape.gradient(product, [inputs, kernel], output_gradients=upstream)
    np.testing.assert_allclose(inputs_grad.numpy(), 2 * (upstream @ tf.transpose(kernel)).numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(kernel_grad.numpy(), (tf.transpose(inputs) @ upstream).numpy(),
                               rtol=1e-5)


def test_gradients_through_a_compiled_loop_with_the_transpose_outside():
    inputs, kernel, _ = _operands()
    square = tf.constant(np.random.default_rng(1).normal(size=(4, 4)) / 2, tf.float32)

    @tf.function
    def loss_and_grads(fast):
        with tf.GradientTape() as tape:
            tape.watch([inputs, square])
            square_t = tf.transpose(square)

            def step(h, _):
                if fast:
                    return tf.tanh(matmul_with_transposed_kernel(h, square, square_t))
                return tf.tanh(tf.matmul(h, square))

            states = tf.scan(step, tf.zeros((6,)), initializer=inputs @ kernel)
            loss = tf.reduce_sum(states ** 2)
        return loss, tape.gradient(loss, [inputs, square])

    (fast_loss, fast_grads), (plain_loss, plain_grads) = loss_and_grads(True), loss_and_grads(False)
    np.testing.assert_allclose(fast_loss.numpy(), plain_loss.numpy(), rtol=1e-6)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        np.testing.assert_allclose(fast_grad.numpy(), plain_grad.numpy(), rtol=1e-5, atol=1e-6)

