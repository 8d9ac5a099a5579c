from sat_keras.data.images import load_image_files
from sat_keras.data.images import make_image_dataset
from sat_keras.data.pipeline import make_caption_dataset
from sat_keras.data.records import CaptionRecord
from sat_keras.data.synthetic import generate_synthetic
from sat_keras.data.synthetic import read_synthetic

__all__ = [
    "CaptionRecord",
    "generate_synthetic",
    "load_image_files",
    "make_caption_dataset",
    "make_image_dataset",
    "read_synthetic",
]
