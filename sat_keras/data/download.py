"""Fetching Flickr8k where there is internet, laid out as `read_flickr8k` reads it.

The archives are those TensorFlow's own captioning tutorial uses: the
images (`Flicker8k_Dataset/*.jpg`, about 1 GB) and the text files (the token
file and the split lists). `keras.utils.get_file` downloads each once into
`<data_dir>/downloads/` (checked against the expected hash when one is
given); the members are then unpacked by name, never outside `data_dir`.
"""

import os
import shutil
import zipfile

import keras

from sat_keras.data.flickr8k import SPLIT_FILES

FLICKR8K_IMAGES_URL = (
    "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip")
FLICKR8K_TEXT_URL = (
    "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip")
IMAGE_DIR = "Flicker8k_Dataset"
TOKEN_FILE = "Flickr8k.token.txt"
TEXT_FILES = (TOKEN_FILE, *SPLIT_FILES.values())


def flickr8k_is_complete(data_dir):
    """Whether `data_dir` holds the token file, the three split lists and images."""
    image_dir = os.path.join(data_dir, IMAGE_DIR)
    return (all(os.path.exists(os.path.join(data_dir, name)) for name in TEXT_FILES)
            and os.path.isdir(image_dir) and any(os.scandir(image_dir)))


def _unpack(archive, data_dir, wanted):
    """Writes the members `wanted(name) -> relative path or None` picks; returns how many."""
    root = os.path.realpath(data_dir)
    count = 0
    try:
        members = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive} is not a zip archive ({error}); delete it and retry.") \
            from None
    with members:
        for member in members.infolist():
            if member.is_dir() or "__MACOSX" in member.filename:
                continue
            relative = wanted(member.filename)
            if relative is None:
                continue
            target = os.path.realpath(os.path.join(root, relative))
            if os.path.commonpath([root, target]) != root:
                raise ValueError(f"{archive}: member {member.filename!r} would be written "
                                 f"outside {data_dir}.")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with members.open(member) as source, open(target + ".partial", "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(target + ".partial", target)
            count += 1
    return count


def _text_member(name):
    base = os.path.basename(name)
    return base if base in TEXT_FILES else None


def _image_member(name):
    parts = name.replace("\\", "/").split("/")
    if IMAGE_DIR in parts[:-1] and parts[-1].lower().endswith(".jpg"):
        return os.path.join(IMAGE_DIR, parts[-1])
    return None


def download_flickr8k(data_dir, images_url=None, text_url=None, images_hash=None,
                      text_hash=None, print_fn=print):
    """Downloads and unpacks Flickr8k into `data_dir` unless it is already there.

    Args:
        data_dir: where the dataset goes (created if missing).
        images_url, text_url: the two archives (any URL `keras.utils.get_file`
            reads, `file://` included); default `FLICKR8K_IMAGES_URL` and
            `FLICKR8K_TEXT_URL`.
        images_hash, text_hash: optional sha256 or md5 of the archives.

    Returns:
        `data_dir`, ready for `read_flickr8k`.

    Raises:
        ValueError: an archive that is not a zip, or that lacks a needed file.
    """
    data_dir = os.path.abspath(data_dir)
    if flickr8k_is_complete(data_dir):
        return data_dir
    os.makedirs(data_dir, exist_ok=True)
    downloads = os.path.join(data_dir, "downloads")
    for url, file_hash, wanted in ((text_url or FLICKR8K_TEXT_URL, text_hash, _text_member),
                                   (images_url or FLICKR8K_IMAGES_URL, images_hash,
                                    _image_member)):
        print_fn(f"Fetching {url}")
        archive = keras.utils.get_file(origin=url, file_hash=file_hash, cache_dir=data_dir,
                                       cache_subdir="downloads")
        count = _unpack(archive, data_dir, wanted)
        print_fn(f"  {count} files from {os.path.relpath(archive, data_dir)}")
    if not flickr8k_is_complete(data_dir):
        missing = [name for name in TEXT_FILES
                   if not os.path.exists(os.path.join(data_dir, name))]
        raise ValueError(f"The archives did not hold the whole dataset: missing "
                         f"{missing or [IMAGE_DIR + '/*.jpg']} in {data_dir} "
                         f"(archives kept in {downloads}).")
    return data_dir
