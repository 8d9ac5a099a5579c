"""The loader registry: a preset handle -> the loader of its storage format.

`ShowAttendTell.from_preset(handle)` and `models.saving.load_captioner(handle)`
both call `get_preset_loader(handle).load(cls, ...)`, as keras-hub's
`Task.from_preset` does; the model class knows no storage format. A handle is

- a registered name: the trained captioners that ship with the package
  ("flickr8k", "shapes"; `shipped_model_directory`), or a name given to
  another handle with `register_preset(name, handle)`;
- an archive URL, `https://...` or `file://...`, ending in `#sha256=HEX`:
  fetched once into the Keras cache (`keras.utils.get_file`), checked
  against the digest and unpacked; the folder inside is the handle;
- a local path or a built-in architecture name, which the registered
  loaders recognise: a preset directory and an architecture name (here),
  a `.keras` file or a run directory holding `model.keras`
  (`models.saving`), a SavedModel export (`export.reload`).

A loader is a class with `matches(handle)` and, bound to a handle,
`load(cls, load_weights=True, **overrides)`. Each module that owns a format
registers its loader with `register_preset_loader`.
"""

import os
import urllib.parse

import keras

from sat_keras.encoders import build_encoder
from sat_keras.models import presets

ARCHIVE_SCHEMES = ("https://", "file://")
# Trained captioners in TF Serving's layout: in an installed wheel under the
# package (`setup.py` copies them there); in a clone in saved_models/ beside it.
SHIPPED_MODELS = ("flickr8k", "shapes")
PACKAGE_MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                  "saved_models")
CLONE_MODELS_DIR = os.path.join(os.path.dirname(PACKAGE_MODELS_DIR), "..", "saved_models")
EXPECTED = ("a registered name ({names}), an architecture name ({architectures}), a "
            "directory holding config.json (written by save_to_preset) or model.keras "
            "(written by sat-keras train), a .keras file, an https:// or file:// archive "
            "ending in #sha256=HEX, or a SavedModel (sat-keras export)")

_LOADERS = []
SHIPPED = object()  # the target of a shipped model's name: `shipped_model_directory`
_REGISTERED = {name: SHIPPED for name in SHIPPED_MODELS}


def register_preset_loader(loader):
    """Adds a loader class (see the module docstring); returns it, so it decorates."""
    _LOADERS.append(loader)
    return loader


def register_preset(name, handle):
    """Makes `name` a handle for `handle` (a path or an archive URL)."""
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"A preset name is a non-empty string without {os.sep!r}. "
                         f"Received: {name!r}")
    _REGISTERED[name] = handle


def registered_names():
    return sorted(_REGISTERED)


def get_preset_loader(handle):
    """The loader of `handle`'s format, bound to its local form.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a handle that no loader recognises.
    """
    local = resolve_handle(handle)
    for loader in _LOADERS:
        if loader.matches(local):
            return loader(local)
    expected = EXPECTED.format(names=", ".join(registered_names()),
                               architectures=", ".join(presets.preset_names()))
    if not os.path.exists(local) and (os.sep in local or local.endswith(".keras")):
        raise FileNotFoundError(f"No model at {local}. Expected {expected}.")
    raise ValueError(f"Unknown preset {handle!r}. Expected {expected}.")


def resolve_handle(handle):
    """A local path or architecture name for `handle`: registered names and
    archive URLs are resolved (an archive fetched once); others returned as given."""
    if not isinstance(handle, (str, os.PathLike)):
        raise TypeError(f"A preset handle is a name, a path or a URL. Received: {handle!r}")
    handle = os.fspath(handle)
    if handle in _REGISTERED:
        target = _REGISTERED[handle]
        return shipped_model_directory(handle) if target is SHIPPED else resolve_handle(target)
    if handle.startswith(ARCHIVE_SCHEMES):
        return fetch_archive(handle)
    return handle


def shipped_model_directory(name):
    """The base directory (numbered versions inside) of a captioner that ships."""
    for root in (PACKAGE_MODELS_DIR, CLONE_MODELS_DIR):
        path = os.path.normpath(os.path.join(root, name))
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(
        f"The trained {name!r} model is not installed: neither {PACKAGE_MODELS_DIR} nor "
        f"{os.path.normpath(CLONE_MODELS_DIR)} holds {name}/. Install sat_keras from its "
        "repository (pip install git+URL, a wheel built from it, or a clone).")


def fetch_archive(url):
    """The unpacked folder of an archive URL ending in #sha256=HEX (cached by Keras)."""
    location, _, fragment = url.partition("#")
    digest = fragment.removeprefix("sha256=")
    if not fragment.startswith("sha256=") or len(digest) != 64:
        raise ValueError(f"An archive handle ends in #sha256= and the archive's 64 hex "
                         f"digits, so that what is fetched is checked. Received: {url!r}")
    name = os.path.basename(urllib.parse.urlparse(location).path)
    unpacked = keras.utils.get_file(
        fname=name, origin=location, file_hash=digest, hash_algorithm="sha256",
        extract=True, cache_subdir=os.path.join("sat_keras", digest[:16]))
    entries = [os.path.join(unpacked, entry) for entry in sorted(os.listdir(unpacked))]
    if any(loader.matches(unpacked) for loader in _LOADERS) or len(entries) != 1:
        return unpacked
    return entries[0]  # the archive's one top folder


class PresetLoader:
    """A storage format: `matches(handle)`; bound to a handle, `load(cls, ...)`."""

    def __init__(self, handle):
        self.handle = handle

    @classmethod
    def matches(cls, handle):
        raise NotImplementedError

    def load(self, cls, load_weights=True, **overrides):
        raise NotImplementedError

    def refuse_overrides(self, load_weights, overrides):
        """For formats that load as they are: a trained model with its weights."""
        if overrides or not load_weights:
            raise ValueError(f"{self.handle!r} is a trained model: it loads as it is (no "
                             f"overrides, load_weights=True). Received: {sorted(overrides)}, "
                             f"load_weights={load_weights}.")


@register_preset_loader
class PresetDirectoryLoader(PresetLoader):
    """A directory written by `ShowAttendTell.save_to_preset`."""

    @classmethod
    def matches(cls, handle):
        return presets.is_preset_directory(handle)

    def load(self, cls, load_weights=True, **overrides):
        return presets.load_preset(self.handle, load_weights=load_weights, **overrides)


@register_preset_loader
class ArchitectureLoader(PresetLoader):
    """A built-in architecture name: a fresh model for the vocabulary given."""

    @classmethod
    def matches(cls, handle):
        return handle in presets.preset_names()

    def load(self, cls, load_weights=True, vocabulary=None, encoder=None,
             encoder_weights="imagenet", **overrides):
        if vocabulary is None:
            raise ValueError(f"The preset {self.handle!r} ships no trained weights, so it "
                             "has no vocabulary: pass vocabulary=... to build its "
                             "architecture.")
        if not issubclass(cls, keras.Model):  # Captioner.from_preset: a ShowAttendTell
            model_class = keras.saving.get_registered_object("sat_keras>ShowAttendTell")
            if not issubclass(model_class, cls):
                raise ValueError(f"The preset {self.handle!r} builds a ShowAttendTell, "
                                 f"not a {cls.__name__}.")
            cls = model_class
        settings = presets.preset_settings(self.handle)
        if encoder is None:
            encoder = build_encoder(weights=encoder_weights, **settings["encoder"])
        image_size = getattr(encoder, "image_size", None) or settings["training"].get(
            "image_size")
        arguments = {"image_size": image_size,
                     **presets.merge_config(settings["model"], overrides)}
        return cls(vocabulary, encoder=encoder, **arguments)
