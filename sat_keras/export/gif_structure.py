"""A GIF's frames, read from its block structure in-graph, before anything is decoded.

A GIF's header gives the size of its logical screen, but each frame has a
size of its own, and TensorFlow's decoder reads every frame of the file at
its declared size (the canvas sized by the largest), even for
`decode_image(..., expand_animations=False)`. So a 50 KB file whose screen
says 64 x 64 can hold frames that decode to gigabytes. `gif_frames` walks
the blocks (GIF89a spec, sec. 17-27), stock TensorFlow ops only, so the
exported signature can refuse such files unread:

    header (13 bytes) [global colour table]
    { extension: 0x21, label, sub-blocks
    | image: 0x2C, left, top, width, height (2 bytes each, little-endian),
             flags, [local colour table], LZW code size, sub-blocks }*
    trailer: 0x3B
    sub-blocks: { size (1..255), size bytes }* 0x00

A sub-block chain is skipped a window at a time: within a window the
chain's next-position table is composed with itself (pointer doubling), so
one iteration crosses the whole window whatever the sub-block sizes. A
window of W bytes costs about W log W, used or not, and most chains are
short (an extension's few bytes, a small frame's data), so a chain's first
window is `_WINDOWS[0]` bytes and each next one twice the last, up to
`_WINDOWS[-1]`: crossing a chain costs about what its bytes do. (With one
16 KB window for every chain, a 3 MB file of 4,900 comments of 600 bytes
took 14 s to walk.) The walk costs at most `max_blocks` iterations (block
heads and windows), stops at the first image past `max_frames`, and reads
at most 16 KB at a time, however the file is made.
"""

import tensorflow as tf

(RUNNING, COMPLETE, TRUNCATED, UNKNOWN_BLOCK, FRAME_OUTSIDE_SCREEN, TOO_MANY_BLOCKS,
 TOO_MANY_FRAMES) = range(7)
_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_HEADER = 13
_DESCRIPTOR = 10  # bytes of an image descriptor, the longest block head
_WINDOWS = (512, 1024, 2048, 4096, 8192, 16384)  # bytes of a chain crossed per iteration


def _colour_table_size(flags):
    """Bytes of the colour table announced by a flags byte: 3 * 2^(n+1) if present."""
    present = tf.not_equal(tf.bitwise.bitwise_and(flags, 0x80), 0)
    return tf.where(present, 3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(flags, 7)), 0)


def _little_endian_16(low, high):
    return low + 256 * high


def gif_frames(data, max_blocks, max_frames=None):
    """Walks one GIF's blocks: (frames, status) int32 scalars.

    Args:
        data: a scalar string holding a GIF (its signature already checked).
        max_blocks: the most iterations (block heads, and windows of
            sub-blocks) before giving up.
        max_frames: the most image blocks before giving up (None: no limit).

    Returns:
        `frames`, the number of image blocks read, and `status`: COMPLETE
        (the trailer reached), TRUNCATED (the blocks run past the end),
        UNKNOWN_BLOCK, FRAME_OUTSIDE_SCREEN (a frame does not fit the
        logical screen), TOO_MANY_BLOCKS or TOO_MANY_FRAMES.
    """
    length = tf.strings.length(data)
    frame_limit = tf.int32.max if max_frames is None else max_frames

    def read(position, count):
        """int32 (count,) bytes from position, zeros past the end."""
        piece = tf.strings.substr(data, tf.minimum(position, length), count)
        return tf.cast(tf.io.decode_raw(piece, tf.uint8, fixed_length=count), tf.int32)

    header = read(0, _HEADER)
    screen_width = _little_endian_16(header[6], header[7])
    screen_height = _little_endian_16(header[8], header[9])
    first_block = _HEADER + _colour_table_size(header[10])

    def cross_window(position, window):
        """(position after the chain or past the window, whether the chain ended)."""
        sizes = read(position, window)  # (W,)
        offsets = tf.range(window)
        # Offset -> the next sub-block's offset; a 0 size (the chain's end) and
        # offsets past the window stay where they are.
        following = tf.concat([tf.where(tf.equal(sizes, 0), offsets, offsets + 1 + sizes),
                               tf.range(window, window + 256)], axis=0)  # (W + 256,)
        for _ in range(window.bit_length()):
            following = tf.gather(following, following)  # 2^k sub-blocks ahead
        reached = following[0]
        ended = reached < window
        return position + reached + tf.cast(ended, tf.int32), ended

    def cross_sub_blocks(position, chain_step):
        """cross_window with the chain's `chain_step`-th window size."""
        return tf.switch_case(
            tf.minimum(chain_step, len(_WINDOWS) - 1),
            [lambda window=window: cross_window(position, window) for window in _WINDOWS])

    def read_block(position, frames):
        """(next position, frames, status) at a block head."""
        head = read(position, _DESCRIPTOR)  # (10,)
        left, top = _little_endian_16(head[1], head[2]), _little_endian_16(head[3], head[4])
        width, height = _little_endian_16(head[5], head[6]), _little_endian_16(head[7], head[8])
        is_image = tf.equal(head[0], _IMAGE)
        outside = tf.logical_or(left + width > screen_width, top + height > screen_height)
        status = tf.where(tf.equal(head[0], _TRAILER), COMPLETE, tf.where(
            is_image, tf.where(outside, FRAME_OUTSIDE_SCREEN, RUNNING),
            tf.where(tf.equal(head[0], _EXTENSION), RUNNING, UNKNOWN_BLOCK)))
        # An image's sub-blocks follow its descriptor, colour table and LZW
        # code size; an extension's follow its label.
        after = tf.where(is_image, position + _DESCRIPTOR + _colour_table_size(head[9]) + 1,
                         position + 2)
        return after, frames + tf.cast(is_image, tf.int32), status

    def body(position, chain_step, frames, status, steps):
        """One block head (chain_step -1) or one window of a sub-block chain."""
        def in_chain():
            after, ended = cross_sub_blocks(position, chain_step)
            return after, tf.where(ended, -1, chain_step + 1), frames, tf.constant(RUNNING)

        def at_block():
            after, counted, block_status = read_block(position, frames)
            return after, tf.where(tf.equal(block_status, RUNNING), 0, -1), counted, block_status

        next_position, next_chain_step, next_frames, next_status = tf.cond(
            chain_step >= 0, in_chain, at_block)
        next_status = tf.where(position >= length, TRUNCATED, tf.where(
            steps >= max_blocks, TOO_MANY_BLOCKS, tf.where(
                next_frames > frame_limit, TOO_MANY_FRAMES, next_status)))
        return next_position, next_chain_step, next_frames, next_status, steps + 1

    _, _, frames, status, _ = tf.while_loop(
        lambda position, chain_step, frames, status, steps: tf.equal(status, RUNNING),
        body, (first_block, tf.constant(-1), tf.constant(0), tf.constant(RUNNING),
               tf.constant(0)))
    return frames, status
