"""Rows that come in groups per image: the beams of beam search."""

from keras import ops


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
