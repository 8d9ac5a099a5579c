"""The shipped captioner from an installed wheel, with no clone on the path.

Builds the wheel from a copy of the checkout, installs it with `pip
install --no-deps --no-index` into a fresh virtual environment whose
dependencies come from this one's site-packages (a .pth line: the path
only, so this environment's editable sat_keras is not seen there), and
from an empty folder captions a photo with `Captioner.from_preset("flickr8k")` in
Python and with `sat-keras caption PHOTO`, which must agree.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from helpers import FLICKR8K_DIR
from helpers import REPOSITORY
from helpers import shared_path

pytestmark = pytest.mark.slow

PHOTO = "2090545563_a4e66ec76b.jpg"  # the first photo of the Flickr8k dev list
PYTHON_CAPTION = """
import sys
import sat_keras
from sat_keras import Captioner

model = Captioner.from_preset("flickr8k")
[caption] = model.generate([sys.argv[1]])
print(sat_keras.__file__)
print(f"{sys.argv[1]}: {caption}")
"""


def _run(command, cwd, **kwargs):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                            env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3"}, **kwargs)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "sat_keras"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".pytest_cache"))
    output = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", str(output), str(source)], cwd=output)
    [path] = output.glob("sat_keras-*.whl")
    return path


def test_the_wheel_holds_the_shipped_models(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("flickr8k", "shapes"):
        for part in ("saved_model.pb", "variables/variables.index", "assets/vocabulary.txt",
                     "assets.extra/model_config.json"):
            version = sorted(os.listdir(REPOSITORY / "saved_models" / name))
            version = [v for v in version if v.isdigit()][-1]
            assert f"sat_keras/saved_models/{name}/{version}/{part}" in names
    assert "sat_keras/serving/web/index.html" in names


def test_an_installed_wheel_captions_a_photo_in_python_and_on_the_command_line(
        wheel, tmp_path):
    photo = shutil.copy(shared_path(FLICKR8K_DIR / "Flicker8k_Dataset" / PHOTO), tmp_path)
    environment = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(environment)], cwd=tmp_path)
    python = environment / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                cwd=tmp_path).strip()
    with open(os.path.join(site, "dependencies.pth"), "w") as file:
        file.write(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "-q", str(wheel)], cwd=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    installed, python_line = _run([str(python), "-c", PYTHON_CAPTION, photo],
                                  cwd=empty).strip().splitlines()[-2:]
    assert installed.startswith(site), installed  # the wheel's copy, not the clone
    command_line = _run([str(environment / "bin" / "sat-keras"), "caption", photo], cwd=empty)
    assert command_line.strip() == python_line
    caption = python_line.split(": ", 1)[1]
    assert len(caption.split()) >= 3 and "<unk>" not in caption, caption
