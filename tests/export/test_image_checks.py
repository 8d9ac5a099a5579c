import io

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image
from helpers import gif_bomb_20_mb
from helpers import hostile_images

from sat_keras.data.images import load_image
from sat_keras.export.image_checks import ImageLimits
from sat_keras.export.image_checks import decode_image_batch


def decode(items, image_size=24, limits=ImageLimits()):
    function = tf.function(lambda data: decode_image_batch(data, image_size, limits))
    return function(tf.constant(items, tf.string)).numpy()


@pytest.mark.parametrize("kind,channels", [
    ("jpeg", 3), ("jpeg", 1), ("png", 3), ("png", 1), ("png", 4), ("gif", 3), ("bmp", 3)])
def test_every_format_and_channel_count_decodes_to_rgb(kind, channels):
    images = decode([encode_image(kind, 40, 48, channels)])
    assert images.shape == (1, 24, 24, 3) and images.dtype == np.uint8
    assert images.std() > 0  # real pixels, not a blank fill


def test_pixels_equal_the_training_pipelines(tmp_path):
    data = [encode_image("jpeg", 50, 70, seed=1), encode_image("png", 30, 20, seed=2)]
    expected = []
    for index, item in enumerate(data):
        path = tmp_path / f"{index}.img"
        path.write_bytes(item)
        expected.append(load_image(tf.constant(str(path)), 24).numpy())
    np.testing.assert_array_equal(decode(data), np.stack(expected))


def test_an_image_of_the_size_keeps_its_pixels_and_others_are_resized():
    exact = encode_image("png", 24, 24, seed=3)
    pixels = tf.io.decode_png(exact, channels=3).numpy()
    np.testing.assert_array_equal(decode([exact])[0], pixels)
    wide = encode_image("png", 24, 48, seed=3)  # same height, other width: resized
    resized = tf.image.resize(tf.io.decode_png(wide, channels=3), (24, 24), antialias=True)
    expected = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(decode([wide])[0], expected)


def test_bmp_stored_top_down_has_its_size_read_from_a_negative_height():
    data = bytearray(encode_image("bmp", 30, 20))
    height = int.from_bytes(data[22:26], "little", signed=True)
    data[22:26] = (-height).to_bytes(4, "little", signed=True)
    assert decode([bytes(data)]).shape == (1, 24, 24, 3)


def error_of(items, limits=ImageLimits()):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode(items, limits=limits)
    return error.value.message


GOOD = encode_image("jpeg")


@pytest.mark.parametrize("bad,problem", [
    (b"", "empty"),
    (b"hello, not an image", "not a JPEG, PNG, GIF or BMP image"),
    (GOOD[: len(GOOD) // 2], "truncated"),
    (encode_image("png")[:-30], "truncated"),
    (encode_image("gif")[:-40], "truncated"),
    (encode_image("bmp")[:-100], "truncated"),
    (encode_image("png", 1, 1), "smaller than 8 pixels on a side"),
])
def test_a_bad_item_is_named_by_its_index(bad, problem):
    message = error_of([GOOD, GOOD, bad])
    assert f"image_bytes[2]: {problem}" in message
    assert "image_bytes[0]" not in message and "image_bytes[1]" not in message


def test_every_bad_item_is_listed():
    message = error_of([b"", GOOD, b"junk"])
    assert "image_bytes[0]: empty; image_bytes[2]: not a JPEG" in message


def test_a_small_file_of_a_huge_image_is_refused_before_decoding():
    huge = tf.io.encode_png(tf.zeros((5000, 5000, 1), tf.uint8)).numpy()
    assert len(huge) < 100_000
    message = error_of([huge], ImageLimits(max_pixels=10_000_000))
    assert "image_bytes[0]: over 10000000 pixels" in message


def test_oversized_bytes_are_refused():
    message = error_of([GOOD], ImageLimits(max_bytes=len(GOOD) - 1))
    assert f"image_bytes[0]: over {len(GOOD) - 1} bytes" in message


def test_inconsistent_limits_are_refused():
    with pytest.raises(ValueError, match="Inconsistent image limits"):
        ImageLimits(min_side=100, max_pixels=50)
    with pytest.raises(ValueError, match="Inconsistent image limits"):
        ImageLimits(max_pixels=100, max_request_pixels=99)
    with pytest.raises(ValueError, match="Inconsistent image limits"):
        ImageLimits(max_gif_blocks=0)


def test_op_error_text_keeps_the_ops_own_message():
    from sat_keras.tf_errors import op_error_text

    message = ("Graph execution error:\n\nDetected at node Assert/Assert defined at (most "
               "recent call last):\n<stack traces unavailable>\nassertion failed: [Bad image "
               "bytes: image_bytes[0]: empty]\n\t [[{{node Assert/Assert}}]] [Op:__inference_f_1]")
    assert op_error_text(tf.errors.InvalidArgumentError(None, None, message)) == (
        "Bad image bytes: image_bytes[0]: empty")
    eager = ("{{function_node __wrapped__DecodeImage_device_/job:localhost}} Invalid PNG data, "
             "size 55 [Op:DecodeImage]")
    assert op_error_text(tf.errors.InvalidArgumentError(None, None, eager)) == (
        "Invalid PNG data, size 55")


@pytest.mark.parametrize("label, data, problem", hostile_images(),
                         ids=[label for label, _, _ in hostile_images()])
def test_hostile_images_are_refused_before_decoding(label, data, problem):
    assert len(data) < 2_000_000
    assert f"image_bytes[1]: {problem}" in error_of([GOOD, data]), label


def test_a_20_mb_gif_bomb_is_refused():
    bomb = gif_bomb_20_mb()
    assert 20_000_000 < len(bomb) < ImageLimits().max_bytes
    assert "image_bytes[0]: a GIF frame larger than the logical screen" in error_of([bomb])


def _animated_gif(frames, side=40):
    from PIL import Image

    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (side, side, 3), np.uint8))
              for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_an_animated_gif_decodes_its_first_frame_and_counts_every_frame():
    animation = _animated_gif(5)
    first = tf.io.decode_gif(animation)[0]
    resized = tf.image.resize(first, (24, 24), antialias=True)
    np.testing.assert_array_equal(decode([animation])[0],
                                  np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8))
    message = error_of([animation], ImageLimits(max_pixels=4 * 40 * 40, min_side=8))
    assert f"image_bytes[0]: over {4 * 40 * 40} pixels" in message  # 5 frames of 40 x 40


def test_gif_blocks_are_bounded():
    data = encode_image("gif")
    comments = data[:-1] + b"\x21\xfe\x01x\x00" * 20 + b"\x3b"  # 20 comment extensions
    assert decode([comments]).shape == (1, 24, 24, 3)
    assert "image_bytes[0]: over 15 GIF blocks" in error_of([comments],
                                                             ImageLimits(max_gif_blocks=15))


def test_jpeg_scans_are_counted():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8)).save(
        buffer, format="JPEG", progressive=True)
    progressive = buffer.getvalue()
    assert decode([progressive, GOOD]).shape == (2, 24, 24, 3)
    message = error_of([GOOD, progressive], ImageLimits(max_jpeg_scans=3))
    assert "image_bytes[1]: over 3 JPEG scans" in message and "image_bytes[0]" not in message


def test_a_request_decoding_to_too_many_pixels_in_all_is_refused():
    limits = ImageLimits(max_pixels=40 * 48, max_request_pixels=3 * 40 * 48)
    assert decode([GOOD] * 3, limits=limits).shape == (3, 24, 24, 3)
    message = error_of([GOOD] * 4, limits)
    assert f"Bad request: its images decode to {4 * 40 * 48} pixels in all" in message


def test_gif_frames_are_limited_and_the_walk_stops_at_the_first_one_past_the_limit():
    from helpers import gif_bomb

    from sat_keras.export import gif_structure

    def tiny_frames(count):
        return gif_bomb(screen=(16, 16), frame_side=16, frames=count)

    assert decode([tiny_frames(64)]).shape == (1, 24, 24, 3)  # the default limit, 64
    assert "image_bytes[1]: over 64 GIF frames" in error_of([GOOD, tiny_frames(65)])
    assert "image_bytes[0]: over 3 GIF frames" in error_of(
        [tiny_frames(4)], ImageLimits(max_gif_frames=3))
    walk = tf.function(lambda data: gif_structure.gif_frames(data, 10_000, max_frames=64))
    frames, status = walk(tf.constant(tiny_frames(2000)))
    assert (int(frames), int(status)) == (65, gif_structure.TOO_MANY_FRAMES)
    with pytest.raises(ValueError, match="Inconsistent image limits"):
        ImageLimits(max_gif_frames=0)


def test_sub_block_chains_of_any_length_are_crossed():
    """Chains shorter than, across and longer than the growing windows (512 B to 16 KB)."""
    from sat_keras.export import gif_structure

    gif = encode_image("gif")
    walk = tf.function(lambda data: gif_structure.gif_frames(data, 10_000))
    for length in (1, 300, 511, 512, 513, 3000, 40_000):
        blocks, rest = divmod(length, 255)
        chain = (b"\xff" + b"x" * 255) * blocks + (bytes([rest]) + b"x" * rest if rest else b"")
        comment = gif[:-1] + b"\x21\xfe" + chain + b"\x00\x3b"
        assert [int(value) for value in walk(tf.constant(comment))] == [
            1, gif_structure.COMPLETE], length
