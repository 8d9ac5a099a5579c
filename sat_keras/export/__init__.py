"""Export: the SavedModel for TF Serving and its in-graph checks of image bytes."""

from sat_keras.export import reload  # noqa: F401  (registers the SavedModel preset loader)
from sat_keras.export.image_checks import ImageLimits
from sat_keras.export.saved_model import export_captioner

__all__ = ["ImageLimits", "export_captioner"]
