import numpy as np
import pytest
import tensorflow as tf

from sat_keras.decoding import SearchSettings
from sat_keras.inference import caption_image_files


def test_captions_follow_input_order_with_errors_in_place(make_model, tmp_path):
    model = make_model(with_encoder=True)
    image = np.full((20, 30, 3), 200, "uint8")
    good = tmp_path / "good.bmp"
    good.write_bytes(tf.io.encode_png(image).numpy())  # the extension does not matter
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    outcomes = caption_image_files(model, [str(empty), str(good)], {"max_length": 5})
    assert [o.path for o in outcomes] == [str(empty), str(good)]
    assert outcomes[0].caption is None and "not a decodable image" in outcomes[0].error
    expected = model.caption(images=np.asarray(
        tf.image.resize(image[None], (32, 32), antialias=True) + 0.5, "uint8"),
        max_length=5)["captions"][0]
    assert outcomes[1].error is None and outcomes[1].caption == expected


def test_a_model_without_image_size_cannot_caption_files(make_model):
    model = make_model(with_encoder=True, image_size=None)
    with pytest.raises(ValueError, match="no image_size"):
        caption_image_files(model, ["x.png"])


def test_the_decoding_settings_reach_the_search(make_model, tmp_path, monkeypatch):
    model = make_model(with_encoder=True)
    path = tmp_path / "image.png"
    path.write_bytes(tf.io.encode_png(np.full((8, 8, 3), 90, "uint8")).numpy())
    calls, caption = [], model.caption
    monkeypatch.setattr(model, "caption", lambda **kw: calls.append(kw) or caption(**kw))
    outcome, = caption_image_files(
        model, [str(path)], SearchSettings(max_length=5, beam_size=2, length_penalty=0.7))
    assert outcome.error is None
    assert [call["search"] for call in calls] == [
        SearchSettings(max_length=5, beam_size=2, length_penalty=0.7)]


def test_one_caption_per_file_with_the_models_decoding_by_default(make_model, tmp_path):
    model = make_model(with_encoder=True)
    path = tmp_path / "image.png"
    path.write_bytes(tf.io.encode_png(np.full((8, 8, 3), 90, "uint8")).numpy())
    model.choose_search({"beam_size": 2, "max_length": 5, "num_captions": 2})
    outcome, = caption_image_files(model, [str(path)])  # the best of the model's 2 best
    best = model.caption(images=np.stack([outcome.image]))["captions"][0][0]
    assert outcome.caption == best
    changed, = caption_image_files(model, [str(path)], {"beam_size": 1})
    assert changed.caption == model.generate([str(path)], beam_size=1)[0]
