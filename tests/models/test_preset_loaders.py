"""The loader registry: every kind of handle goes through one lookup."""

import hashlib
import os
import tarfile

import numpy as np
import pytest
from helpers import tiny_image_model

from sat_keras import CaptionEnsemble
from sat_keras import Captioner
from sat_keras import ShowAttendTell
from sat_keras import cli
from sat_keras.export import export_captioner
from sat_keras.export.reload import SavedModelLoader
from sat_keras.models import preset_loaders
from sat_keras.models.preset_loaders import ArchitectureLoader
from sat_keras.models.preset_loaders import PresetDirectoryLoader
from sat_keras.models.preset_loaders import get_preset_loader
from sat_keras.models.saving import KerasFileLoader
from sat_keras.models.saving import load_captioner
from sat_keras.models.saving import save_captioner
from sat_keras.serving import server

IMAGES = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def handles(tmp_path_factory):
    """One tiny model written in each local format: {kind: path}, and the model."""
    root = tmp_path_factory.mktemp("handles")
    model = tiny_image_model()
    paths = {"preset": model.save_to_preset(str(root / "preset")),
             "run": save_captioner(model, str(root / "run")),
             "keras": str(root / "model.keras"),
             "export": str(root / "export")}
    model.save(paths["keras"])
    export_captioner(model, os.path.join(paths["export"], "1"), beam_size=2, max_length=6)
    return model, paths


def _token_ids(model):
    return model.caption(images=IMAGES, beam_size=2, max_length=6)["token_ids"]


@pytest.mark.parametrize("kind, loader", [
    ("preset", PresetDirectoryLoader), ("run", KerasFileLoader), ("keras", KerasFileLoader),
    ("export", SavedModelLoader)])
def test_each_format_has_its_loader_and_loads_the_same_model(handles, kind, loader):
    model, paths = handles
    assert type(get_preset_loader(paths[kind])) is loader
    for loaded in (ShowAttendTell.from_preset(paths[kind]), Captioner.from_preset(paths[kind]),
                   load_captioner(paths[kind])):
        assert isinstance(loaded, ShowAttendTell)
        np.testing.assert_array_equal(_token_ids(loaded), _token_ids(model))


def test_an_architecture_name_needs_a_vocabulary(handles):
    model, _ = handles
    assert type(get_preset_loader("synthetic")) is ArchitectureLoader
    for cls in (ShowAttendTell, Captioner):  # Captioner.from_preset builds a ShowAttendTell
        fresh = cls.from_preset("synthetic", vocabulary=model.vocabulary, decoder={"units": 16})
        assert type(fresh) is ShowAttendTell and fresh.decoder.units == 16
        assert fresh.vocabulary == model.vocabulary
    with pytest.raises(ValueError, match="pass vocabulary="):
        load_captioner("synthetic")
    with pytest.raises(ValueError, match="builds a ShowAttendTell, not a CaptionEnsemble"):
        CaptionEnsemble.from_preset("synthetic", vocabulary=model.vocabulary)
    with pytest.raises(ValueError, match="holds a ShowAttendTell, not a CaptionEnsemble"):
        CaptionEnsemble.from_preset(handles[1]["run"])


def test_a_preset_directorys_overrides_merge_into_its_nested_config(handles):
    model, paths = handles
    changed = ShowAttendTell.from_preset(paths["preset"], load_weights=False,
                                         decoder={"units": 16})
    assert changed.decoder.units == 16  # one decoder argument changed ...
    assert changed.decoder.embedding_dim == model.decoder.embedding_dim  # ... the others kept
    assert changed.decoder.attention_dim == model.decoder.attention_dim


def test_trained_models_refuse_overrides(handles):
    _, paths = handles
    for kind in ("keras", "export"):
        with pytest.raises(ValueError, match="loads as it is"):
            ShowAttendTell.from_preset(paths[kind], decoder={"units": 16})


def test_unknown_names_and_missing_paths_say_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match="Unknown preset 'nope'.*flickr8k.*save_to_preset"):
        ShowAttendTell.from_preset("nope")
    with pytest.raises(ValueError, match="Unknown preset"):
        ShowAttendTell.from_preset(str(tmp_path))  # a directory holding nothing of ours
    with pytest.raises(FileNotFoundError, match="No model at .*or a SavedModel"):
        load_captioner(str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="a name, a path or a URL"):
        ShowAttendTell.from_preset(3)


def test_a_registered_name_stands_for_its_handle(handles, monkeypatch):
    model, paths = handles
    monkeypatch.setattr(preset_loaders, "_REGISTERED", dict(preset_loaders._REGISTERED))
    preset_loaders.register_preset("tiny", paths["export"])
    assert "tiny" in preset_loaders.registered_names()
    np.testing.assert_array_equal(_token_ids(ShowAttendTell.from_preset("tiny")),
                                  _token_ids(model))
    with pytest.raises(ValueError, match="non-empty string"):
        preset_loaders.register_preset("a/b", paths["export"])


def test_shipped_names_come_from_the_package_before_the_clone(handles, tmp_path, monkeypatch):
    _, paths = handles
    package, clone = tmp_path / "package", tmp_path / "clone"
    os.makedirs(clone / "flickr8k")
    monkeypatch.setattr(preset_loaders, "PACKAGE_MODELS_DIR", str(package))
    monkeypatch.setattr(preset_loaders, "CLONE_MODELS_DIR", str(clone))
    assert preset_loaders.resolve_handle("flickr8k") == str(clone / "flickr8k")  # a clone
    os.makedirs(package)
    os.symlink(paths["export"], package / "flickr8k")  # an installed wheel
    assert preset_loaders.resolve_handle("flickr8k") == str(package / "flickr8k")
    assert type(get_preset_loader("flickr8k")) is SavedModelLoader
    with pytest.raises(FileNotFoundError, match="'shapes' model is not installed"):
        preset_loaders.resolve_handle("shapes")


def test_the_shipped_models_are_found_in_this_checkout():
    for name in preset_loaders.SHIPPED_MODELS:
        assert type(get_preset_loader(name)) is SavedModelLoader


def _archive(source, path):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source, arcname="tiny")
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def test_an_archive_url_is_fetched_once_and_checked(handles, tmp_path, monkeypatch):
    model, paths = handles
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    digest = _archive(paths["export"], tmp_path / "tiny.tar.gz")
    url = (tmp_path / "tiny.tar.gz").as_uri()
    loaded = ShowAttendTell.from_preset(f"{url}#sha256={digest}")
    np.testing.assert_array_equal(_token_ids(loaded), _token_ids(model))
    os.remove(tmp_path / "tiny.tar.gz")  # the cached copy serves from now on
    assert type(get_preset_loader(f"{url}#sha256={digest}")) is SavedModelLoader
    with pytest.raises(ValueError, match="#sha256="):
        ShowAttendTell.from_preset(url)  # no digest: nothing is fetched unchecked


def test_an_archive_with_another_digest_is_refused(handles, tmp_path, monkeypatch):
    _, paths = handles
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    _archive(paths["preset"], tmp_path / "tiny.tar.gz")
    with pytest.raises(ValueError, match="(?i)hash|corrupted"):
        ShowAttendTell.from_preset((tmp_path / "tiny.tar.gz").as_uri() + "#sha256=" + "0" * 64)


def test_the_cli_defaults_to_the_shipped_captioner_and_serves_rest_on_8501(monkeypatch):
    parser = cli.build_parser()
    assert parser.parse_args(["caption", "photo.jpg"]).model == "flickr8k"
    args = parser.parse_args(["serve"])
    assert (args.model_dir, args.host, args.port, args.rest_port) == (
        "flickr8k", "127.0.0.1", 8500, 8501)
    served = {}
    monkeypatch.setattr(cli, "serve", lambda model_dir, **kwargs: served.update(
        model_dir=model_dir, **kwargs) or 0)
    assert cli.main(["serve", "--rest-port", "0"]) == 0
    assert served["model_dir"] == "flickr8k" and served["rest_port"] is None  # 0: no REST


def test_serve_resolves_a_registered_name_to_its_directory(monkeypatch):
    started = {}

    class Stopped(Exception):
        pass

    def local_server(model_dir, port, rest_port, model_name, host, **settings):
        started.update(model_dir=model_dir, model_name=model_name, host=host)
        raise Stopped

    monkeypatch.setattr(server.shutil, "which", lambda name: None)
    monkeypatch.setattr(server, "LocalServer", local_server)
    with pytest.raises(Stopped):
        server.serve("shapes")
    assert started == {"model_dir": preset_loaders.shipped_model_directory("shapes"),
                       "model_name": "shapes", "host": "127.0.0.1"}  # loopback by default
