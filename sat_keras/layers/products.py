"""The decoder's matrix products, laid out for speed on TensorFlow's CPU kernels.

- `flat_apply`: a product over all leading dimensions as one 2-D product;
- `weighted_annotations`: rows that come in groups per image (the beams of
  beam search) read each image's annotations once;
- `matmul_with_transposed_kernel`: an input gradient through a kernel
  transposed in advance.

All three compute exactly what the plain product does; they change only how
fast it, or its gradient, runs.
"""

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


def weighted_annotations(weights, annotations):
    """sum_i weights_ri a_bi for each row r of image b: -> (rows, annotation_dim).

    `weights` (rows, L) holds rows / batch consecutive rows per image (one,
    or the image's beams); `annotations` (batch, L, D) one entry per image.
    One (rows per image, L) x (L, D) product per image reads each image's
    annotations once, however many rows it has.
    """
    images, num_locations = ops.shape(annotations)[0], ops.shape(annotations)[1]
    grouped = ops.reshape(weights, (images, -1, num_locations))  # (batch, rows per image, L)
    return ops.reshape(ops.matmul(grouped, annotations),
                       (-1, ops.shape(annotations)[-1]))  # (rows, D)


def matmul_with_transposed_kernel(inputs, kernel, kernel_t):
    """inputs @ kernel, differentiated with kernel_t = kernel^T given.

    The gradient with respect to the inputs is upstream @ kernel^T. On
    TensorFlow's CPU kernels that product, run on the kernel as stored with
    `transpose_b`, is 2.5x slower at the decoder's sizes than on a kernel
    already laid out transposed ((64, 2048) x (2048, 512): 2.4 vs 0.9 ms).
    Inside a recurrence the transpose must be done once, outside the loop
    (`AttentiveLSTMCell.transposed_kernels`): TensorFlow's graph optimizer
    folds a transpose inside the loop back into the slow product.

    Args:
        inputs: (batch, d_in).
        kernel: (d_in, d_out); its gradient is inputs^T @ upstream.
        kernel_t: (d_out, d_in), equal to kernel^T; it gets no gradient.

    Returns:
        (batch, d_out), equal to `ops.matmul(inputs, kernel)`.
    """

    @ops.custom_gradient
    def product(x, w):
        def gradient(*args, upstream=None):
            if upstream is None:  # some backends pass it positionally
                (upstream,) = args
            return ops.matmul(upstream, kernel_t), ops.matmul(ops.transpose(x), upstream)

        return ops.matmul(x, w), gradient

    return product(inputs, kernel)
