import numpy as np
import pytest

from sat_keras.data.synthetic_attention import attention_in_objects

OBJECTS = [
    {"size": "small", "colour": "red", "shape": "circle", "box": [0, 0, 8, 8]},  # cell 0
    {"size": "large", "colour": "blue", "shape": "square", "box": [16, 16, 32, 32]},
]


def _attention(steps, focus):
    """(steps, 16): a 4x4 grid on 32 pixels; step t puts `focus[t]` mass on cell 0."""
    weights = np.zeros((steps, 16), "float32")
    for t, share in enumerate(focus):
        weights[t, 0] = share
        weights[t, 15] = 1.0 - share
    return weights


def test_share_is_the_attention_inside_the_named_object():
    caption = "a small red circle"
    weights = _attention(5, [0.0, 0.25, 0.5, 0.75, 0.0])
    result = attention_in_objects([caption], weights[None], [OBJECTS], image_size=32)
    assert result["by_role"] == pytest.approx({"size": 0.25, "colour": 0.5, "shape": 0.75})
    assert result["mean_share"] == pytest.approx(0.5)
    assert result["uniform_share"] == pytest.approx(1 / 16)
    assert (result["scored_words"], result["unscored_phrases"]) == (3, 0)


def test_the_box_covers_every_cell_it_touches():
    caption = "a large blue square"  # box 16..32 on a 4x4 grid of 8 pixels: cells 10, 11, 14, 15
    weights = np.zeros((4, 16), "float32")
    weights[1:, [10, 11, 14, 15]] = 0.2
    weights[1:, 0] = 0.2
    result = attention_in_objects([caption], weights[None], [OBJECTS], image_size=32)
    assert result["by_role"]["shape"] == pytest.approx(0.8)
    assert result["mean_share"] == pytest.approx(0.8)
    assert result["uniform_share"] == pytest.approx(4 / 16)


def test_words_naming_no_object_are_counted_apart():
    result = attention_in_objects(["a large green circle and"], _attention(6, [1] * 6)[None],
                                  [OBJECTS], image_size=32)
    assert result == {"mean_share": None, "uniform_share": None,
                      "by_role": {"size": None, "colour": None, "shape": None},
                      "scored_words": 0, "unscored_phrases": 1}
