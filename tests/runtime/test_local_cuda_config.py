"""The ``local-cuda`` cluster kind (dask-cuda's LocalCUDACluster): validation, and the error without dask-cuda."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dnmf.runtime import cluster
from dnmf.runtime.cluster import ClusterConfigError, MissingExtraError, load_cluster_config
from dnmf.runtime.launch import connect

SHIPPED = Path(__file__).resolve().parents[2] / "cluster_configs" / "local-cuda.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gpus.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads_with_its_devices_and_defaults():
    config = load_cluster_config(SHIPPED)
    assert config.kind == "local-cuda" and "local-cuda" in cluster.KINDS
    assert config.options["devices"] == ["0", "1"] and config.options["host"] == "127.0.0.1"
    assert config.options["threads_per_worker"] == 1 and config.options["n_workers"] is None


@pytest.mark.parametrize("text,message", [
    ("kind: local-cuda\ndevices: [gpu0]\n", "'devices' must list GPUs by index"),
    ("kind: local-cuda\ndevices: []\n", "'devices' must list GPUs by index"),
    ("kind: local-cuda\ndevices: ['0', '1']\nn_workers: 3\n", "'n_workers' (3) must equal the number of devices (2)"),
    ("kind: local-cuda\nrmm_pool_size: 24\n", "'rmm_pool_size' must be of type str"),
    ("kind: local-cuda\ngpus: 2\n", "unknown key 'gpus'"),
])
def test_bad_local_cuda_configs_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ClusterConfigError, match="gpus.yaml") as raised:
        load_cluster_config(path)
    assert message in str(raised.value)


def test_uuid_devices_are_accepted(tmp_path):
    config = load_cluster_config(write(tmp_path, "kind: local-cuda\ndevices: ['GPU-8e3c', 'MIG-1a2b']\n"))
    assert config.options["devices"] == ["GPU-8e3c", "MIG-1a2b"]


@pytest.mark.skipif(importlib.util.find_spec("dask_cuda") is not None,
                    reason="dask-cuda is installed here, so the kind would start a cluster instead of refusing")
def test_starting_without_dask_cuda_names_the_gpu_extra():
    with pytest.raises(MissingExtraError,
                       match=r"cluster kind 'local-cuda' needs dask-cuda: pip install 'dnmf\[gpu\]'"):
        with connect(load_cluster_config(SHIPPED)):
            pass


@pytest.mark.parametrize("text,key", [
    ("kind: local-cuda\nthreads_per_worker: 0\n", "threads_per_worker"),
    ("kind: local-cuda\ndevice_memory_limit: lots\n", "device_memory_limit"),
    ("kind: local-cuda\ndashboard_address: nowhere\n", "dashboard_address"),
])
def test_local_cuda_values_are_checked_like_local(tmp_path, text, key):
    with pytest.raises(ClusterConfigError, match=f"'{key}'"):
        load_cluster_config(write(tmp_path, text))
