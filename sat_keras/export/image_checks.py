"""Encoded image bytes -> uint8 batches, in-graph, with errors naming the bad item.

Used by the exported SavedModel, so only stock TensorFlow ops (no Python,
no tensorflow-text): TF Serving must be able to run it.

Every item is checked before anything is decoded, so that what the decoder
allocates, and how long it works, is known from the bytes and bounded by
`ImageLimits` (docs/serving.md has the bad-input table, and
benchmarks/README.md the measured worst case):

- every format: not empty, at most `max_bytes`, a JPEG, PNG, GIF or BMP by
  its signature, complete (its end marker: JPEG EOI or PNG IEND within the
  last 64 bytes, the GIF trailer as the last byte; a BMP's declared size
  fits), at least `min_side` on a side, and at most `max_pixels` decoded
  pixels by its header;
- JPEG: the size of the frame header (`extract_jpeg_shape`); at most
  `max_jpeg_scans` scans (start-of-scan markers), since a progressive
  JPEG's decoding time grows with every scan over the whole image;
- PNG: IHDR is the first chunk, and its size is the size decoded (libpng
  bounds the ancillary chunks it inflates itself);
- GIF: the decoder reads every frame at its own size, whatever the logical
  screen says, so `gif_structure.gif_frames` walks the blocks: every frame
  must lie within the screen, the blocks must be well formed and end in
  the trailer, there are at most `max_gif_frames` frames (the walk stops at
  the first one past it, so a file of thousands of tiny frames costs no
  more than one of `max_gif_frames`), and frames x screen pixels count
  against `max_pixels`;
- BMP: a BITMAPINFOHEADER or a later version (40 to 124 bytes), and pixel
  rows that fit in the file (so no BMP decodes to more than its bytes
  allow).

A whole request may decode to at most `max_request_pixels`. A failed check
raises `InvalidArgumentError` listing every bad item as `image_bytes[i]:
problem`. Data damaged inside an otherwise well-formed file is left to the
decoder, whose own error does not name the item.
"""

import dataclasses

import tensorflow as tf

from sat_keras.data.images import decode_and_resize
from sat_keras.export import gif_structure

_PAD = 64  # bytes of zero padding, so fixed-size head and tail slices exist


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What an accepted encoded image, and a request of them, may be.

    Attributes:
        max_bytes: bytes of one encoded image.
        max_pixels: pixels one image decodes to by its headers (a GIF's
            frames x its screen).
        min_side: pixels on an image's shorter side.
        max_request_pixels: pixels all the images of one request decode to.
        max_jpeg_scans: scans of a (progressive) JPEG.
        max_gif_blocks: block heads and 16 KB windows of sub-blocks read
            while walking one GIF (bounds the walk's time).
        max_gif_frames: frames of one GIF. TensorFlow's decoder decodes
            every frame to keep the first, so each costs decode time
            however small it is; 64 lets short animations through and
            bounds a GIF's walk and decode to about 0.1 s (a 100 KB file of
            2,000 16 x 16 frames took 4 to 4.5 s before this limit).
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_request_pixels: int = 200_000_000
    max_jpeg_scans: int = 100
    max_gif_blocks: int = 10_000
    max_gif_frames: int = 64

    def __post_init__(self):
        positive = all(value > 0 for value in dataclasses.astuple(self))
        if not (positive and self.min_side ** 2 <= self.max_pixels <= self.max_request_pixels):
            raise ValueError(
                f"Inconsistent image limits: every limit must be positive and "
                f"min_side^2 <= max_pixels <= max_request_pixels. Received: {self}")


def _bytes_matrix(strings, length):
    """(N,) strings of exactly `length` bytes -> (N, length) int32 byte values."""
    return tf.cast(tf.io.decode_raw(strings, tf.uint8, fixed_length=length), tf.int32)


def _little_endian(columns):
    value = tf.zeros_like(columns[0], tf.int64)
    for shift, column in enumerate(columns):
        value += tf.cast(column, tf.int64) * (256 ** shift)
    return value


def _big_endian(columns):
    return _little_endian(list(reversed(columns)))


def _contains_pair(tail, first, second):
    """Whether bytes `first`, `second` occur in a row in each row of tail (N, n)."""
    return tf.reduce_any(tf.logical_and(tf.equal(tail[:, :-1], first),
                                        tf.equal(tail[:, 1:], second)), axis=1)


def _contains_iend(tail):
    """Whether b"IEND" occurs in each row of tail (N, n)."""
    letters = [ord(c) for c in "IEND"]
    found = [tf.equal(tail[:, i:tail.shape[1] - 3 + i], letter) for i, letter in enumerate(letters)]
    return tf.reduce_any(tf.reduce_all(tf.stack(found, axis=-1), axis=-1), axis=1)


def _formats(head):
    """Boolean (N,) per format from the first bytes (N, 64)."""
    def starts_with(signature):
        return tf.reduce_all(tf.stack(
            [tf.equal(head[:, i], byte) for i, byte in enumerate(signature)], axis=1), axis=1)

    return {
        "jpeg": starts_with(b"\xff\xd8\xff"),
        "png": starts_with(b"\x89PNG\r\n\x1a\n"),
        "gif": tf.logical_or(starts_with(b"GIF87a"), starts_with(b"GIF89a")),
        "bmp": starts_with(b"BM"),
    }


def _problem_messages(problems):
    """(N,) message per item from [(bad (N,), text)], the first problem found."""
    message = tf.fill(tf.shape(problems[0][0]), "")
    for bad, text in reversed(problems):
        message = tf.where(bad, text, message)
    return message


def _assert_no_problems(message, what):
    """Asserts no item has a problem; the error lists `image_bytes[i]: problem`s."""
    bad = tf.not_equal(message, "")
    listing = tf.strings.reduce_join(tf.strings.join(
        ["image_bytes[", tf.strings.as_string(tf.where(bad)[:, 0]), "]: ",
         tf.boolean_mask(message, bad)]), separator="; ")
    return tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)),
                               [tf.strings.join([what, listing], separator=" ")])


def _header_sizes(head, formats, image_bytes):
    """(height, width) int64 (N,) from the headers; JPEG via extract_jpeg_shape."""
    png_w, png_h = _big_endian([head[:, i] for i in range(16, 20)]), _big_endian(
        [head[:, i] for i in range(20, 24)])
    gif_w = _little_endian([head[:, 6], head[:, 7]])
    gif_h = _little_endian([head[:, 8], head[:, 9]])
    bmp_w = _little_endian([head[:, i] for i in range(18, 22)])
    bmp_h = _little_endian([head[:, i] for i in range(22, 26)])
    # BMP sizes are signed 32-bit; a negative height means rows stored top-down.
    bmp_w = tf.where(bmp_w >= 2 ** 31, bmp_w - 2 ** 32, bmp_w)
    bmp_h = tf.abs(tf.where(bmp_h >= 2 ** 31, bmp_h - 2 ** 32, bmp_h))

    def jpeg_shape(item):
        data, is_jpeg = item
        return tf.cond(is_jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
                       lambda: tf.zeros((2,), tf.int64))

    jpeg = tf.map_fn(jpeg_shape, (image_bytes, formats["jpeg"]),
                     fn_output_signature=tf.TensorSpec((2,), tf.int64))  # (N, 2)
    height = tf.where(formats["jpeg"], jpeg[:, 0], tf.where(
        formats["png"], png_h, tf.where(formats["gif"], gif_h, bmp_h)))
    width = tf.where(formats["jpeg"], jpeg[:, 1], tf.where(
        formats["png"], png_w, tf.where(formats["gif"], gif_w, bmp_w)))
    return height, width


_BMP_INFO_HEADERS = (40, 52, 56, 108, 124)  # BITMAPINFOHEADER and its successors


def _bmp_problems(head, length):
    """(unsupported header (N,), pixel rows past the end of the file (N,)) of BMP heads."""
    header_size = _little_endian([head[:, i] for i in range(14, 18)])
    unsupported = tf.logical_not(tf.reduce_any(tf.stack(
        [tf.equal(header_size, size) for size in _BMP_INFO_HEADERS], axis=1), axis=1))
    width = _little_endian([head[:, i] for i in range(18, 22)])
    height = _little_endian([head[:, i] for i in range(22, 26)])
    height = tf.abs(tf.where(height >= 2 ** 31, height - 2 ** 32, height))
    bits = _little_endian([head[:, 28], head[:, 29]])
    pixel_offset = _little_endian([head[:, i] for i in range(10, 14)])
    row_bytes = (bits * tf.minimum(width, 2 ** 31) + 31) // 32 * 4
    return unsupported, pixel_offset + row_bytes * height > tf.cast(length, tf.int64)


def _walk(image_bytes, formats, limits):
    """(GIF frames (N,) int64, GIF walk status (N,), JPEG scans (N,)), item by item.

    One item at a time (`parallel_iterations=1`): each walk reads at most
    16 KB at a time, and splitting a JPEG at its scan markers copies it once.
    """
    def walk(item):
        data, is_gif, is_jpeg = item
        frames, status = tf.cond(
            is_gif, lambda: gif_structure.gif_frames(data, limits.max_gif_blocks,
                                                     limits.max_gif_frames),
            lambda: (tf.constant(1), tf.constant(gif_structure.COMPLETE)))
        scans = tf.cond(is_jpeg, lambda: tf.size(tf.strings.split(data, sep=b"\xff\xda")) - 1,
                        lambda: tf.constant(0))
        return frames, status, scans

    frames, status, scans = tf.map_fn(
        walk, (image_bytes, formats["gif"], formats["jpeg"]), parallel_iterations=1,
        fn_output_signature=(tf.int32, tf.int32, tf.int32))
    return tf.cast(frames, tf.int64), status, scans


def check_image_bytes(image_bytes, limits=ImageLimits()):
    """Asserts every item of image_bytes (N,) is an acceptable image; returns the checks' op."""
    length = tf.strings.length(image_bytes)  # (N,) bytes
    zeros = tf.constant(b"\x00" * _PAD)
    head = _bytes_matrix(tf.strings.substr(image_bytes + zeros, 0, _PAD), _PAD)  # (N, 64)
    tail = _bytes_matrix(tf.strings.substr(zeros + image_bytes, -_PAD, _PAD), _PAD)  # (N, 64)
    formats = _formats(head)
    known = tf.reduce_any(tf.stack(list(formats.values()), axis=1), axis=1)
    bmp_declared = _little_endian([head[:, i] for i in range(2, 6)])
    complete = tf.where(formats["jpeg"], _contains_pair(tail, 0xFF, 0xD9), tf.where(
        formats["png"], _contains_iend(tail), tf.where(
            formats["gif"], tf.equal(tail[:, -1], 0x3B),
            bmp_declared <= tf.cast(length, tf.int64))))
    ihdr_first = tf.reduce_all(tf.stack(
        [tf.equal(head[:, 12 + i], ord(letter)) for i, letter in enumerate("IHDR")], axis=1),
        axis=1)
    bmp_unsupported, bmp_rows_missing = _bmp_problems(head, length)
    structure = _assert_no_problems(_problem_messages([
        (tf.equal(length, 0), "empty"),
        (length > limits.max_bytes, f"over {limits.max_bytes} bytes"),
        (tf.logical_not(known), "not a JPEG, PNG, GIF or BMP image"),
        (tf.logical_not(complete), "truncated (no end marker)"),
        (formats["png"] & tf.logical_not(ihdr_first),
         "malformed PNG (IHDR is not the first chunk)"),
        (formats["bmp"] & bmp_unsupported,
         "unsupported BMP header (only BITMAPINFOHEADER, 40 to 124 bytes)"),
        (formats["bmp"] & bmp_rows_missing, "truncated BMP (its pixel rows run past the end)"),
    ]), "Bad image bytes:")
    with tf.control_dependencies([structure]):
        frames, gif_status, scans = _walk(image_bytes, formats, limits)
        height, width = _header_sizes(head, formats, image_bytes)
    pixels = tf.where(formats["gif"], frames, 1) * height * width  # (N,) decoded
    items = _assert_no_problems(_problem_messages([
        (tf.equal(gif_status, gif_structure.TRUNCATED),
         "truncated GIF (its blocks run past the end)"),
        (tf.equal(gif_status, gif_structure.UNKNOWN_BLOCK), "malformed GIF (an unknown block)"),
        (tf.equal(gif_status, gif_structure.FRAME_OUTSIDE_SCREEN),
         "a GIF frame larger than the logical screen"),
        (tf.equal(gif_status, gif_structure.TOO_MANY_BLOCKS),
         f"over {limits.max_gif_blocks} GIF blocks"),
        (tf.equal(gif_status, gif_structure.TOO_MANY_FRAMES),
         f"over {limits.max_gif_frames} GIF frames"),
        (formats["gif"] & tf.equal(frames, 0), "a GIF without an image"),
        (scans > limits.max_jpeg_scans, f"over {limits.max_jpeg_scans} JPEG scans"),
        (tf.minimum(height, width) < limits.min_side,
         f"smaller than {limits.min_side} pixels on a side"),
        (pixels > limits.max_pixels, f"over {limits.max_pixels} pixels"),
    ]), "Bad image:")
    total = tf.reduce_sum(pixels)
    with tf.control_dependencies([items]):
        return tf.debugging.Assert(total <= limits.max_request_pixels, [tf.strings.join([
            "Bad request: its images decode to", tf.strings.as_string(total),
            f"pixels in all, over the limit of {limits.max_request_pixels} a request; "
            "send fewer or smaller images"], separator=" ")])


def decode_image_batch(image_bytes, image_size, limits=ImageLimits()):
    """Checked, decoded and resized images: (N,) strings -> uint8 (N, S, S, 3).

    Decoding and resizing are `decode_and_resize`, as in training and
    `data.pipeline.load_image`: an exported model sees the pixels the Python
    model sees.
    """
    with tf.control_dependencies([check_image_bytes(image_bytes, limits)]):
        image_bytes = tf.identity(image_bytes)

    return tf.map_fn(lambda data: decode_and_resize(data, image_size), image_bytes,
                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8))
