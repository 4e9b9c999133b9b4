"""Every file in cluster_configs/ loads; batch-system and Kubernetes configurations render without submitting
anything; bad configurations are errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CLUSTER_CONFIGS, run_dnmf, summary

from dnmf.runtime import cluster
from dnmf.runtime.cluster import ClusterConfigError, load_cluster_config


def config(name: str) -> cluster.ClusterConfig:
    return load_cluster_config(CLUSTER_CONFIGS / name)


def test_every_shipped_config_loads_and_the_readme_documents_every_kind_and_key():
    kinds = {load_cluster_config(path).kind for path in CLUSTER_CONFIGS.glob("*.yaml")}
    assert kinds == set(cluster.KINDS)
    readme = (CLUSTER_CONFIGS / "README.md").read_text()
    for kind, schema in cluster.SCHEMAS.items():
        assert f"`{kind}`" in readme
        for key in [*schema, *cluster.TLS_KEYS]:
            assert f"`{key}`" in readme, key


def test_local_cluster_binds_to_loopback_by_default():
    default = cluster.local_config()
    assert default.options["host"] == "127.0.0.1"
    assert default.options["dashboard_address"].startswith("127.0.0.1:")
    assert config("local.yaml").options["host"] == "127.0.0.1"
    assert config("tls-local.yaml").options["tls"]["ca_file"] == "certs/ca.pem"
    assert config("tls-local.yaml").path("certs/ca.pem") == str(CLUSTER_CONFIGS / "certs" / "ca.pem")


def test_slurm_job_script():
    with cluster.jobqueue_cluster(config("slurm.yaml"), render_only=True) as jobs:
        script = jobs.job_script()
    for line in ("#SBATCH -J dnmf-worker", "#SBATCH -p normal", "#SBATCH -A my-project", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 02:00:00", "#SBATCH --exclusive", "module load python/3.11"):
        assert line in script.splitlines(), line
    assert "--nworkers 4" in script and "--nthreads 2" in script and "--interface ib0" in script
    assert "--local-directory /tmp" in script


def test_pbs_job_script():
    with cluster.jobqueue_cluster(config("pbs.yaml"), render_only=True) as jobs:
        script = jobs.job_script()
    for line in ("#PBS -N dnmf-worker", "#PBS -q workq", "#PBS -A my-project",
                 "#PBS -l select=1:ncpus=8:mem=32GB", "#PBS -l walltime=02:00:00"):
        assert line in script.splitlines(), line
    assert "--nworkers 4" in script and "source ~/venvs/dnmf/bin/activate" in script


def test_kubernetes_cluster_spec():
    spec = cluster.kubernetes_cluster_spec(config("kubernetes.yaml"))
    assert spec["kind"] == "DaskCluster" and spec["metadata"] == {"name": "dnmf", "namespace": "data-science"}
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 8
    container = worker["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/dnmf:0.1.0"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]


def test_gateway_config():
    gateway = config("gateway.yaml")
    assert gateway.options["address"] == "https://gateway.example.org"
    assert gateway.options["cluster_options"] == {"worker_cores": 1, "worker_memory": 4}
    assert gateway.options["workers"] == 8 and gateway.options["proxy_address"] is None


@pytest.mark.parametrize(("text", "message"), [
    ("kind: local\nworkers: 2\n", "unknown key 'workers'"),
    ("kind: local\nprocesses: 'yes'\n", "the key 'processes' must be of type bool"),
    ("kind: slurm\ncores: 4\n", "the key 'memory' is required"),
    ("kind: local\ntls: {ca_file: a.pem, cert: b.pem, key: c.pem, verify: true}\n", "unknown key 'tls.verify'"),
    ("kind: yarn\n", "'kind' must be one of local, address, slurm, pbs, kubernetes, gateway"),
    ("- kind: local\n", "must be a mapping"),
    ("kind: [local\n", "not valid YAML"),
    ("kind: local\nn_workers: -2\n", "the key 'n_workers' must be at least 1, got -2"),
    ("kind: local\nn_workers: 0\n", "the key 'n_workers' must be at least 1, got 0"),
    ("kind: local\nthreads_per_worker: 0\n", "the key 'threads_per_worker' must be at least 1"),
    ("kind: local\nmemory_limit: lots\n", "the key 'memory_limit' must be bytes (0: no limit), a size"),
    ("kind: local\nmemory_limit: -5\n", "the key 'memory_limit' must be bytes"),
    ("kind: local\nscheduler_port: 70000\n", "the key 'scheduler_port' must be a port number"),
    ("kind: local\ndashboard_address: here\n", "the key 'dashboard_address' must be HOST:PORT, or 'none'"),
    ("kind: local\nhost: ''\n", "the key 'host' must be a non-empty string"),
    ("kind: address\naddress: tcp://a:1\nwait_timeout: .nan\n", "the key 'wait_timeout' must be a finite number"),
    ("kind: address\naddress: tcp://a:1\nwait_for_workers: -1\n", "the key 'wait_for_workers' must be 0 or more"),
    ("kind: slurm\ncores: 0\nmemory: 4GB\n", "the key 'cores' must be at least 1"),
    ("kind: pbs\ncores: 4\nmemory: 4GB\njobs: 0\n", "the key 'jobs' must be at least 1"),
    ("kind: kubernetes\nn_workers: -1\n", "the key 'n_workers' must be at least 1"),
    ("kind: gateway\naddress: https://g\nworkers: 0\n", "the key 'workers' must be at least 1"),
])
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ClusterConfigError) as raised:
        load_cluster_config(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_missing_tls_files_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="dnmf cluster make-certs"):
        cluster.security(config("tls-local.yaml").__class__(
            "local", {**config("tls-local.yaml").options}, "x.yaml", tmp_path))


def test_cluster_show_renders_without_submitting():
    done = run_dnmf("cluster", "show", CLUSTER_CONFIGS / "pbs.yaml", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "#PBS -q workq" in done.stdout and '"resource_spec": "select=1:ncpus=8:mem=32GB"' in done.stdout


def test_cluster_show_refuses_a_negative_worker_count(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: local\nn_workers: -2\n")
    done = run_dnmf("cluster", "show", path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "the key 'n_workers' must be at least 1, got -2" in done.stderr and "Traceback" not in done.stderr


def _fit_on(tmp_path, counts_store, text: str):
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return run_dnmf("fit", counts_store, "--rank", "3", "--max-iter", "3", "--out", tmp_path / "r.zarr",
                    "--cluster", path)


def test_a_local_cluster_of_threads_fits(tmp_path, counts_store):
    done = _fit_on(tmp_path, counts_store, "kind: local\nn_workers: 2\nprocesses: false\n")
    assert done.returncode == 0, done.stderr
    assert summary(done)["status"] == "completed" and summary(done)["cluster"]["workers"] == 2


def test_dashboard_none_logs_no_dashboard_link(tmp_path, counts_store):
    done = _fit_on(tmp_path, counts_store, "kind: local\nn_workers: 1\ndashboard_address: none\n")
    assert done.returncode == 0, done.stderr
    assert "http://" not in done.stderr and "/status" not in done.stderr and "dnmf page" not in done.stderr
    assert summary(done)["cluster"]["dashboard"] is None and summary(done)["cluster"]["dnmf_page"] is None
