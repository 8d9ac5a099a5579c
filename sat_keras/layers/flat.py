"""Products over all leading dimensions at once, as one 2-D matrix product."""

from keras import ops


def flat_apply(function, inputs):
    """function on (..., d) inputs as on (N, d): (..., d) -> (..., d_out).

    A `Dense` (or `matmul`) on a rank-3 tensor runs as a broadcast batched
    product on TensorFlow, whose kernel gradient materialises one (d, d_out)
    product per batch row before summing them (for the vocabulary layer at
    batch 64, 655 MB a step); flattened, it is one product and one gradient.
    """
    if len(inputs.shape) == 2:
        return function(inputs)
    shape = ops.shape(inputs)
    outputs = function(ops.reshape(inputs, (-1, inputs.shape[-1])))  # (N, d_out)
    return ops.reshape(outputs, tuple(shape[:-1]) + (outputs.shape[-1],))
