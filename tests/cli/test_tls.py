"""TLS: a LocalCluster from a tls configuration, a ``dnmf fit`` over it with the configuration's certificates, and
clients without them refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dask
import pytest
import yaml
from cli_helpers import run_dnmf, summary

from dnmf.runtime import cluster
from dnmf.runtime.launch import LOST_WORKER_TIMEOUT

pytestmark = pytest.mark.cluster


def tls_config(folder, **options) -> dict:
    return {"ca_file": str(folder / "ca.pem"), "cert": str(folder / "cert.pem"), "key": str(folder / "key.pem"),
            **options}


def attempt_connection(address: str, certificates=None) -> subprocess.CompletedProcess:
    """Connect a Client in a fresh process (a refused Client can leave this process's IO loop unusable): with the
    certificates in ``certificates``, or with none. Exits 0 only if the connection was accepted."""
    security = ("from distributed.security import Security\n"
                f"security = Security(tls_ca_file={str(certificates / 'ca.pem')!r}, "
                f"tls_client_cert={str(certificates / 'cert.pem')!r}, "
                f"tls_client_key={str(certificates / 'key.pem')!r}, "
                "require_encryption=True)\n") if certificates else "security = None\n"
    script = security + f"from distributed import Client\nClient({address!r}, security=security, timeout=5).close()\n"
    return subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)


def test_fit_over_tls_and_clients_without_the_certificates_are_refused(tmp_path, counts_store):
    made = run_dnmf("cluster", "make-certs", tmp_path / "certs", timeout=120)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "certs" / "key.pem").stat().st_mode & 0o077 == 0
    cluster.make_certificates(tmp_path / "other")
    local = {"kind": "local", "n_workers": 1, "memory_limit": "1GiB", "dashboard_address": "none",
             "tls": {"ca_file": "certs/ca.pem", "cert": "certs/cert.pem", "key": "certs/key.pem"}}
    (tmp_path / "tls-local.yaml").write_text(yaml.safe_dump(local))
    with cluster.connect(cluster.load_cluster_config(tmp_path / "tls-local.yaml")) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        # A worker that is slow to start again after it died keeps its Nanny (15 s by default).
        assert dask.config.get("distributed.deploy.lost-worker-timeout") == LOST_WORKER_TIMEOUT
        (tmp_path / "address.yaml").write_text(yaml.safe_dump(
            {"kind": "address", "address": address, "tls": tls_config(tmp_path / "certs")}))
        done = run_dnmf("fit", counts_store, "--rank", "2", "--max-iter", "3", "--out", tmp_path / "r.zarr",
                        "--cluster", tmp_path / "address.yaml")
        assert done.returncode == 0, done.stderr
        assert summary(done)["cluster"]["scheduler"] == address

        no_certificates = attempt_connection(address)
        assert no_certificates.returncode != 0 and re.search("TLS|ssl|SSL", no_certificates.stderr)
        assert attempt_connection(address.replace("tls://", "tcp://")).returncode != 0
        assert attempt_connection(address, tmp_path / "other").returncode != 0
        assert len(client.scheduler_info()["workers"]) == 1


def test_make_certs_replaces_a_readable_key_by_a_private_one(tmp_path):
    folder = tmp_path / "certs"
    folder.mkdir(mode=0o700)
    (folder / "key.pem").write_text("old key")
    (folder / "key.pem").chmod(0o644)
    made = run_dnmf("cluster", "make-certs", folder, timeout=120)
    assert made.returncode == 0, made.stderr
    key = folder / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]


def test_make_certs_refuses_a_key_symlink_and_leaves_its_target_alone(tmp_path):
    folder = tmp_path / "certs"
    folder.mkdir(mode=0o700)
    elsewhere = tmp_path / "someone-elses-file"
    elsewhere.write_text("theirs")
    elsewhere.chmod(0o644)
    (folder / "key.pem").symlink_to(elsewhere)
    made = run_dnmf("cluster", "make-certs", folder, timeout=120)
    assert made.returncode == 2, made.stderr
    assert "symbolic link" in made.stderr and "key.pem" in made.stderr and "Traceback" not in made.stderr
    assert elsewhere.read_text() == "theirs" and elsewhere.stat().st_mode & 0o777 == 0o644
    assert (folder / "key.pem").is_symlink()
    assert sorted(p.name for p in folder.iterdir()) == ["key.pem"]


def test_make_certs_refuses_a_folder_others_may_write(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    made = run_dnmf("cluster", "make-certs", folder, timeout=120)
    assert made.returncode == 2 and "only you can write" in made.stderr, made.stderr
    assert list(folder.iterdir()) == []


def test_make_certs_creates_a_private_folder(tmp_path):
    paths = cluster.make_certificates(tmp_path / "new" / "certs")
    assert (tmp_path / "new" / "certs").stat().st_mode & 0o777 == 0o700
    assert {name: oct(os.stat(path).st_mode & 0o777) for name, path in paths.items()} == {
        "ca_file": "0o644", "cert": "0o644", "key": "0o600"}
