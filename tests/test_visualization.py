import numpy as np
import pytest
import tensorflow as tf

from sat_keras.visualization import grid_shape
from sat_keras.visualization import plot_attention

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_png(path):
    return tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()


def test_writes_a_png_with_one_panel_per_word(tmp_path, monkeypatch):
    import matplotlib.figure

    panels = []
    original = matplotlib.figure.Figure.add_subplot

    def counting_add_subplot(self, *args, **kwargs):
        axes = original(self, *args, **kwargs)
        panels.append(axes)
        return axes

    monkeypatch.setattr(matplotlib.figure.Figure, "add_subplot", counting_add_subplot)
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype("uint8")
    words = ["a", "small", "red", "circle", "above", "a", "square"]
    attention = np.random.default_rng(1).dirichlet(np.ones(16), size=9)
    path = plot_attention(image, words, attention, str(tmp_path / "plot.png"))
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    decoded = _decode_png(path)
    assert decoded.ndim == 3 and decoded.shape[0] > 100
    assert [axes.get_title() for axes in panels] == ["image"] + words


def test_rejects_too_few_attention_steps_and_non_square_grids(tmp_path):
    image = np.zeros((8, 8, 3), "uint8")
    with pytest.raises(ValueError, match="attention_weights must be"):
        plot_attention(image, ["a", "b"], np.ones((1, 4)), str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="square grid"):
        grid_shape(12)
    assert grid_shape(196) == (14, 14)
