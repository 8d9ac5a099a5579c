"""Dataset readers by name: `read_dataset("synthetic", data_dir)`."""

from sat_keras.data.synthetic import read_synthetic

READERS = {"synthetic": read_synthetic}


def dataset_names():
    return sorted(READERS)


def read_dataset(name, data_dir):
    """The `CaptionRecord`s of a dataset in `data_dir`."""
    if name not in READERS:
        raise ValueError(f"Unknown dataset {name!r}. Available: {dataset_names()}")
    return READERS[name](data_dir)
