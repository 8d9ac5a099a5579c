import json
import os
import subprocess
import sys

import numpy as np
import pytest
from distributed_training import STEPS
from distributed_training import synthetic_records
from helpers import free_port

from sat_keras.distribute import is_chief
from sat_keras.distribute import make_strategy

SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_training.py")


def run_script(*arguments, env=None):
    return subprocess.Popen([sys.executable, SCRIPT, *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("distributed") / "data")
    synthetic_records(folder)
    return folder


def test_mirrored_over_two_devices_matches_one_device(data_dir, tmp_path):
    output = tmp_path / "losses.json"
    process = run_script("mirrored", data_dir, str(output))
    log = process.communicate(timeout=600)[0]
    assert process.returncode == 0, log[-3000:]
    result = json.loads(output.read_text())
    assert result["replicas"] == 2
    assert len(result["single"]) == len(result["mirrored"]) == STEPS
    np.testing.assert_allclose(result["mirrored"], result["single"], rtol=1e-4)
    for run in ("single", "mirrored"):  # each wrote its run directory
        assert (tmp_path / run / "metrics.jsonl").read_text(), sorted(os.listdir(tmp_path / run))


def test_two_workers_end_with_identical_weights(data_dir, tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(run_script("multi_worker", data_dir, str(tmp_path / f"w{index}.npz"),
                                    env={"TF_CONFIG": json.dumps(tf_config)}))
    logs = [process.communicate(timeout=600)[0] for process in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    first, second = (np.load(tmp_path / f"w{index}.npz") for index in range(2))
    assert len(first["losses"]) == STEPS
    np.testing.assert_array_equal(first["losses"], second["losses"])
    weights = [name for name in first.files if name.startswith("w")]
    assert weights
    for name in weights:
        np.testing.assert_array_equal(first[name], second[name])


def test_strategies_by_name(monkeypatch):
    assert make_strategy("default").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("parameter_server")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")


def test_only_the_chief_writes(monkeypatch):
    class Resolver:
        def __init__(self, task_type, task_id):
            self.task_type, self.task_id = task_type, task_id

    class Strategy:
        def __init__(self, task_type, task_id):
            self.cluster_resolver = Resolver(task_type, task_id)

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}))
    assert is_chief(Strategy(None, None))
    assert is_chief(Strategy("worker", 0)) and not is_chief(Strategy("worker", 1))
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:0"],
                                                            "worker": ["a:1"]}}))
    assert is_chief(Strategy("chief", 0)) and not is_chief(Strategy("worker", 0))
