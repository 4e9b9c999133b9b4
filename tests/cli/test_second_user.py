"""Another user of the machine cannot run code in the cluster that ``dnmf fit`` starts.

User ``nobody`` finds every port the fit's processes listen on and tries to connect a ``distributed.Client``
to each (``tcp://`` and ``tls://``, without credentials and with a certificate of its own) and to run a payload
with ``client.run``. The same attack on an unauthenticated ``dask scheduler`` succeeds first (a positive control:
the attacker could get in if the door were open).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from cli_helpers import run_dnmf, start_dnmf
from second_user import remove, second_user_python

pytestmark = pytest.mark.cluster

ATTACK = """
import asyncio, json, os
from distributed import Client
from distributed.core import rpc
from distributed.protocol.pickle import dumps
from distributed.security import Security

marker = {marker!r}
def payload():
    with open(marker, "a") as handle:
        handle.write(f"{{os.getuid()}}\\n")
    return os.getuid()

own = Security.temporary()
CREDENTIALS = {{"none": Security(require_encryption=False), "own certificate": own}}

async def with_client(address, name):
    async with Client(address, asynchronous=True, security=CREDENTIALS[name], timeout=5) as client:
        uids = await client.run(payload)
        uids["scheduler"] = await client.run_on_scheduler(payload)
        return uids

async def with_rpc(address, name):
    args = CREDENTIALS[name].get_connection_args("client")
    async with rpc(address, connection_args=args, timeout=5) as remote:
        answer = await remote.run(function=dumps(payload))
    assert answer["status"] == "OK", answer
    return answer["result"]

async def main():
    attempts = [(how, address, name) for how, addresses in (("client", {clients!r}), ("rpc", {rpcs!r}))
                for address in addresses for name in CREDENTIALS]
    calls = [asyncio.wait_for((with_client if how == "client" else with_rpc)(address, name), 30)
             for how, address, name in attempts]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    return [{{"how": how, "address": address, "credentials": name, "ran": not isinstance(outcome, BaseException),
             "outcome": repr(outcome)[:300]}} for (how, address, name), outcome in zip(attempts, outcomes)]

print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture(scope="module")
def attacker():
    user, reason = second_user_python()
    if user is None:
        print(f"SKIPPED second-user test: {reason}")
        pytest.skip(reason)
    yield user
    remove(user)


def attack(attacker, marker: str, clients: list[str], rpcs: list[str]) -> list[dict]:
    """``nobody`` connects a Client to each of ``clients`` and runs the payload everywhere through it, and sends
    the payload to each of ``rpcs`` directly (the ``run`` handler of workers and nannies)."""
    done = attacker.run(ATTACK.format(marker=marker, clients=clients, rpcs=rpcs), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def listening_ports(pid: int) -> set[int]:
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    ports = set()
    for process in processes:
        for connection in process.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN:
                assert connection.laddr.ip == "127.0.0.1", connection
                ports.add(connection.laddr.port)
    return ports


def scheduler_address(fit, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fit.stderr], [], [], 1.0)
        if not ready:
            assert fit.poll() is None, "".join(seen)
            continue
        line = fit.stderr.readline()
        seen.append(line)
        if "Scheduler " in line and " workers" in line:
            return line.split("Scheduler ", 1)[1].split()[0]
    raise AssertionError("the fit never logged its scheduler: " + "".join(seen))


def drain(process: subprocess.Popen) -> list[str]:
    """Read ``process``'s stdout and stderr in the background into the list returned, so that a fit that logs
    for minutes never blocks on a full pipe (where SIGTERM could not end it either)."""
    logged: list[str] = []
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=lambda s=stream: logged.extend(iter(s.readline, "")), daemon=True).start()
    return logged


def test_another_user_cannot_run_code_in_the_fit_cluster(tmp_path, counts_store, dask_cluster, attacker):
    from distributed import Client

    with Client(dask_cluster[0], timeout=30) as client:
        control_workers = list(client.scheduler_info()["workers"])
    control = attack(attacker, str(attacker.home / "control"), [dask_cluster[0]], control_workers)
    assert [r for r in control if r["credentials"] == "none" and r["ran"]] == [
        r for r in control if r["credentials"] == "none"], control
    assert (attacker.home / "control").read_text().split() == ["0"] * (2 * len(control_workers) + 1)

    marker = attacker.home / "fit"
    fit = start_dnmf("fit", counts_store, "--rank", "3", "--max-iter", "100000", "--tol", "0",
                     "--checkpoint-every", "100000", "--out", tmp_path / "r.zarr")
    try:
        address = scheduler_address(fit)
        logged = drain(fit)
        ports = listening_ports(fit.pid)
        port = int(address.rsplit(":", 1)[1])
        assert port in ports and len(ports) >= 3
        clients = [f"{protocol}://127.0.0.1:{port}" for protocol in ("tcp", "tls")]
        rpcs = [f"{protocol}://127.0.0.1:{p}" for p in sorted(ports) for protocol in ("tcp", "tls")]
        results = attack(attacker, str(marker), clients, rpcs)
        assert fit.poll() is None, "".join(logged)
    finally:
        fit.terminate()
        fit.wait(timeout=120)
    assert len(results) == 2 * (len(clients) + len(rpcs))
    assert not [r for r in results if r["ran"]], results
    assert not marker.exists()
    assert address.startswith("tls://127.0.0.1:")


@pytest.fixture
def shared_folder():
    """A folder every user may create entries in (sticky, like /tmp), outside root's private pytest folders."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        reason = "needs root and runuser to act as user nobody"
        print(f"SKIPPED second-user test: {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="dnmf-shared-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_nobody(*command: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *command], check=True, timeout=60)


def test_a_checkpoint_folder_planted_by_another_user_is_refused(shared_folder, counts_store, scheduler):
    planted = shared_folder / "r.zarr.checkpoint"
    as_nobody("mkdir", "-m", "0755", str(planted))
    done = run_dnmf("fit", counts_store, "--rank", "2", "--max-iter", "3", "--out", shared_folder / "r.zarr",
                    "--scheduler", scheduler, timeout=180)
    assert done.returncode == 2, done.stderr
    assert "belongs to user 'nobody'" in done.stderr and "Traceback" not in done.stderr
    assert planted.stat().st_uid == 65534 and list(planted.iterdir()) == []
    assert not (shared_folder / "r.zarr").exists()


def test_a_result_store_planted_by_another_user_is_not_taken_as_done(shared_folder, counts_store, scheduler):
    planted = shared_folder / "r.zarr"
    as_nobody("mkdir", "-m", "0755", str(planted))
    as_nobody("sh", "-c", f"echo '{{\"zarr_format\": 3, \"node_type\": \"group\", \"attributes\": "
              f"{{\"dnmf\": {{\"kind\": \"result\", \"version\": 1}}}}}}' > {planted}/zarr.json")
    done = run_dnmf("fit", counts_store, "--rank", "2", "--max-iter", "3", "--out", planted, "--scheduler",
                    scheduler, "--force", timeout=180)
    assert done.returncode == 2, done.stderr
    assert "result store" in done.stderr and "belongs to user 'nobody'" in done.stderr
    assert sorted(p.name for p in planted.iterdir()) == ["zarr.json"] and planted.stat().st_uid == 65534
