import pathlib

import nbclient
import nbformat

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "show_attend_tell.ipynb"


def test_the_notebook_runs_top_to_bottom_on_synthetic_data(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    parameters[0].source = (
        f'DATASET = "synthetic"\nDATA_DIR = None\nDOWNLOAD = False\nWORK_DIR = r"{tmp_path}"\n'
        'ENCODER_WEIGHTS = None\nEPOCHS = 1\nSYNTHETIC_IMAGES = 60\nINSTALL = False\n'
        'PACKAGE = None')
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "BLEU-4" in outputs
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "model" / "model.keras").exists()
