import keras
import numpy as np

from sat_keras.layers.per_image import weighted_annotations


def test_each_row_weighs_its_own_images_annotations():
    rng = np.random.default_rng(0)
    annotations = rng.normal(size=(3, 4, 5)).astype("float32")  # 3 images
    weights = rng.random(size=(6, 4)).astype("float32")  # 2 rows per image
    expected = np.einsum("rl,rld->rd", weights, np.repeat(annotations, 2, axis=0))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(weighted_annotations(weights, annotations)), expected,
        rtol=1e-5)
