"""examples/show_attend_tell.ipynb, run top to bottom as a user runs it.

Parameters are injected papermill-style: a cell after the one tagged
"parameters" overrides its values. The tests keep the notebook's own values
(EPOCHS and BATCH_SIZE None: the preset's; INSTALL True, which installs only
when sat_keras is missing; DOWNLOAD True, which fetches only what is missing)
and give only where things are on this machine (the data, the work folder,
the ResNet50 weights, a photo) and `MAX_IMAGES`, the notebook's one
documented way to run on less data. The default suite runs the synthetic
path (the synthetic preset and its small CNN); the slow suite runs the
notebook's default, the Flickr8k recipe (ResNet50 features, the
flickr8k_resnet50 preset), on shared photos.
"""

import ast
import json
import pathlib
import re

import nbclient
import nbformat
import pytest
from helpers import FLICKR8K_DIR
from helpers import encode_image
from helpers import flickr8k_subset
from resnet50_weights import MAKE_WEIGHTS
from resnet50_weights import resnet50_weights

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "show_attend_tell.ipynb"
COLAB_BADGE = ("https://colab.research.google.com/github/sat-keras/sat_keras/blob/main/"
               "examples/show_attend_tell.ipynb")
REPOSITORY = "git+https://github.com/sat-keras/sat_keras"


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_cell(notebook):
    tagged = [index for index, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def parameter_defaults(notebook):
    source = notebook.cells[parameters_cell(notebook)].source
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


# The parameters a test may give: where things are on this machine, and the data size.
LOCAL = {"DATASET", "DATA_DIR", "WORK_DIR", "ENCODER_WEIGHTS", "PHOTO", "MAX_IMAGES"}


def run_notebook(work_dir, **parameters):
    """Executes the notebook with `parameters` injected; returns its printed text."""
    notebook = read_notebook()
    assert set(parameters) <= LOCAL, f"the notebook's own values: {set(parameters) - LOCAL}"
    assert set(parameters) <= set(parameter_defaults(notebook))
    injected = nbformat.v4.new_code_cell(
        "\n".join(f"{name} = {value!r}" for name, value in parameters.items()),
        metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(parameters_cell(notebook) + 1, injected)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(work_dir)}}).execute()
    return "".join(output.get("text", "") for cell in notebook.cells
                   if cell.cell_type == "code" for output in cell.outputs)


def rest_and_python_captions(text):
    """The captions the notebook printed for the photo: over REST, and in Python."""
    found = {kind: json.loads(re.search(rf"^{kind}: (.*)$", text, re.M).group(1))
             for kind in ("over REST", "in Python")}
    return found["over REST"], found["in Python"]


def assert_the_results_were_written(work_dir):
    for figure in ("attention.png", "photo_attention.png"):
        assert (work_dir / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (work_dir / "model" / "model.keras").exists()
    export = work_dir / "saved_models" / "captioner" / "1"
    assert (export / "saved_model.pb").exists()
    assert (export / "assets" / "vocabulary.txt").exists()


def test_the_notebook_is_the_colab_recipe_and_is_stored_without_outputs():
    notebook = read_notebook()
    assert COLAB_BADGE in notebook.cells[0].source
    defaults = parameter_defaults(notebook)
    assert defaults["DATASET"] == "flickr8k" and defaults["INSTALL"] is True
    assert defaults["EPOCHS"] is None and defaults["BATCH_SIZE"] is None
    assert defaults["MAX_IMAGES"] is None and defaults["DOWNLOAD"] is True
    assert defaults["REPOSITORY"] == REPOSITORY
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert '"pip", "install", "-q", REPOSITORY' in code
    assert 'preset = "flickr8k_resnet50"' in code
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "docs/results/flickr8k.md" in markdown and "GPU time has not been measured" in markdown
    assert all(not cell.outputs and cell.execution_count is None
               for cell in notebook.cells if cell.cell_type == "code")


def test_the_notebook_runs_top_to_bottom_on_synthetic_data(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode_image("jpeg", height=80, width=100))
    work_dir = tmp_path / "run"
    text = run_notebook(tmp_path, DATASET="synthetic", WORK_DIR=str(work_dir),
                        MAX_IMAGES=60, PHOTO=str(photo))
    assert "preset synthetic: 48 train and 6 dev images" in text
    assert "'batch_size': 64," in text and "'epochs': 9," in text  # the preset's
    assert re.search(r"dev \(6 images\), beam 3, \w+ tokenization:\nBLEU-1 0\.\d+, BLEU-2 .*"
                     r"BLEU-4 0\.\d+", text)
    assert_the_results_were_written(work_dir)
    rest, python = rest_and_python_captions(text)
    assert rest and rest == python  # the export decodes the JPEG as Python does


@pytest.mark.slow
@pytest.mark.needs_shared(FLICKR8K_DIR, MAKE_WEIGHTS)
def test_the_notebook_trains_the_flickr8k_recipe_on_shared_photos(tmp_path):
    data_dir = flickr8k_subset(tmp_path / "flickr8k", train=100, dev=20)
    (tmp_path / "flickr8k" / "Flickr_8k.testImages.txt").write_text("")  # complete: no download
    weights = resnet50_weights(tmp_path / "resnet50")
    unseen = (FLICKR8K_DIR / "Flickr_8k.devImages.txt").read_text().split()[30]  # not in data_dir
    work_dir = tmp_path / "run"
    text = run_notebook(tmp_path, DATA_DIR=data_dir, WORK_DIR=str(work_dir),
                        ENCODER_WEIGHTS=weights, MAX_IMAGES=80,
                        PHOTO=str(FLICKR8K_DIR / "Flicker8k_Dataset" / unseen))
    assert "preset flickr8k_resnet50: 80 train and 20 dev images" in text
    assert "'batch_size': 64," in text and "'epochs': 12," in text  # the preset's
    assert "100 photos, annotations of shape (49, 2048)" in text  # conv5_block3_out, 7x7
    assert "val_bleu_4" in text and re.search(r"kept epoch \d+ of \d+: val BLEU-4 0\.", text)
    assert re.search(r"dev \(20 images\), beam 5, length penalty 1, <unk> suppressed, "
                     r"\w+ tokenization:\nBLEU-1 0\.\d+, .*BLEU-4 0\.\d+", text)
    assert_the_results_were_written(work_dir)
    rest, python = rest_and_python_captions(text)
    assert rest and rest == python  # the export decodes the JPEG as Python does
