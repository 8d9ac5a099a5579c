"""At least 200 malformed requests: each is refused with INVALID_ARGUMENT, and
the server goes on answering good ones."""

import numpy as np
import pytest
from helpers import encode_image
from helpers import gif_bomb_20_mb
from helpers import hostile_images

from sat_keras.serving import CaptionClient
from sat_keras.serving import CaptionServiceError


def malformed_images(rng):
    """(label, list of image bytes) requests, each holding one bad image."""
    jpeg, png = encode_image("jpeg", 64, 64), encode_image("png", 64, 64)
    cases = [("empty", [b""]), ("empty among good", [jpeg, b"", png])]
    for size in rng.integers(1, 5000, size=60):
        cases.append(("random bytes", [rng.bytes(int(size))]))
    for signature in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"):
        for size in rng.integers(1, 400, size=8):
            cases.append(("signature then junk", [signature + rng.bytes(int(size))]))
    for cut in rng.integers(1, len(jpeg) - 1, size=45):
        cases.append(("truncated jpeg", [jpeg[:int(cut)]]))
    for cut in rng.integers(1, len(png) - 1, size=45):
        cases.append(("truncated png", [png[:int(cut)]]))
    for kind in ("jpeg", "png", "gif", "bmp"):
        cases.append(("1x1 image", [encode_image(kind, 1, 1)]))
        cases.append(("1 pixel high", [encode_image(kind, 1, 64)]))
    # Bombs (a 49-Mpixel PNG of a few kilobytes, GIFs whose frames outgrow
    # their screen) and headers that would fool the checks: refused unread.
    for label, data, _ in hostile_images():
        cases.append((label, [jpeg, data]))
    cases.append(("GIF bomb of 20 MB", [gif_bomb_20_mb()]))
    cases.append(("over the byte limit", [b"\xff\xd8\xff" + bytes(21 * 1024 * 1024) + b"\xff\xd9"]))
    for position in range(5):
        batch = [jpeg] * 5
        batch[position] = b"not an image"
        cases.append((f"bad item at {position}", batch))
    cases.append(("too many images", [jpeg] * 65))
    return cases


def malformed_tensors(protocol):
    """(label, inputs, signature) requests with a wrong dtype, shape or name."""
    good = np.array([encode_image("jpeg", 64, 64)], dtype=object)
    # JSON numbers carry no width, so float64 is a wrong dtype over gRPC only.
    float64 = [("features as float64", {"features": np.zeros((1, 64, 8), np.float64)},
                "caption_features")] if protocol == "grpc" else []
    return float64 + [
        ("float instead of string", {"image_bytes": np.zeros((1,), np.float32)}, None),
        ("int instead of string", {"image_bytes": np.zeros((2,), np.int32)}, None),
        ("scalar string", {"image_bytes": np.array(good[0], dtype=object)}, None),
        ("matrix of strings", {"image_bytes": np.stack([good, good])}, None),
        ("wrong input name", {"images": good}, None),
        ("extra input", {"image_bytes": good, "other": good}, None),
        ("no inputs", {}, None),
        ("features of the wrong shape", {"features": np.zeros((1, 49, 8), np.float32)},
         "caption_features"),
        ("strings as features", {"features": good}, "caption_features"),
        ("empty features", {"features": np.zeros((0, 64, 8), np.float32)}, "caption_features"),
    ]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_every_malformed_request_is_refused_and_serving_goes_on(local_server, protocol):
    port = local_server.port if protocol == "grpc" else local_server.rest_port
    client = CaptionClient(f"127.0.0.1:{port}", local_server.model_name, protocol=protocol,
                           timeout=120, retries=0)
    good = [encode_image("png", 50, 40, seed=9)]
    expected = client.caption(good)["captions"]
    requests = [(label, {"image_bytes": np.array(images, dtype=object)}, None)
                for label, images in malformed_images(np.random.default_rng(0))]
    requests += malformed_tensors(protocol)
    assert len(requests) >= 200
    for index, (label, inputs, signature) in enumerate(requests):
        with pytest.raises(CaptionServiceError) as error:
            client.predict(inputs, signature or "serving_default")
        assert error.value.code == "INVALID_ARGUMENT", (label, error.value)
        assert error.value.message and "Expected 'tf.Tensor" not in error.value.message, label
        if index % 25 == 0:
            assert client.caption(good)["captions"] == expected
    assert client.caption(good)["captions"] == expected
    client.close()
