"""``s3://`` URLs against a real S3-compatible server (moto's server mode) started on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

from dnmf import NMF, load_result, open_matrix, read_labels, save_matrix


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_options():
    pytest.importorskip("s3fs")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        options = {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{port}"}
        import s3fs

        s3fs.S3FileSystem(**options).mkdir("dnmf-test")
        yield options
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_sparse_round_trip_and_fit_on_s3(s3_options, rng):
    matrix = rng.random((60, 30)) * (rng.random((60, 30)) < 0.3)
    url = "s3://dnmf-test/m.zarr"
    save_matrix(sp.csr_matrix(matrix), url, chunks=(25, 10), labels=(None, [f"c{j}" for j in range(30)]),
                storage_options=s3_options)
    A = open_matrix(url, chunks=(25, 10), storage_options=s3_options)
    np.testing.assert_array_equal(np.vstack([np.hstack([b.toarray() for b in row]) for row in
                                             __import__("dask").compute(A.to_delayed().tolist())[0]]), matrix)
    assert read_labels(url, storage_options=s3_options)[1][3] == "c3"
    with pytest.raises(FileExistsError):
        save_matrix(matrix, url, storage_options=s3_options)
    model = NMF(3, max_iter=10, tol=0, random_state=0).fit(A)
    model.save("s3://dnmf-test/result.zarr", storage_options=s3_options)
    result = load_result("s3://dnmf-test/result.zarr", storage_options=s3_options)
    np.testing.assert_array_equal(result.H, model.components_)


def test_dense_round_trip_on_s3(s3_options, rng):
    matrix = rng.random((20, 12)).astype(np.float32)
    save_matrix(matrix, "s3://dnmf-test/d.zarr", chunks=(8, 5), storage_options=s3_options)
    np.testing.assert_array_equal(open_matrix("s3://dnmf-test/d.zarr", storage_options=s3_options).compute(),
                                  matrix)
