"""A real second user for security tests: a Python that user ``nobody`` can run, with ``distributed`` importable.

The tests run as root, whose interpreter may sit under a folder only root can enter (``/root``). Then the modules
``distributed`` needs are copied into a world-readable temporary folder for the system's Python of the same
version. Where no such user or interpreter exists, :func:`second_user_python` says why, for ``pytest.skip``.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

#: What the other user imports: a Dask client, TLS credentials of their own.
IMPORTS = "import distributed, distributed.security, cryptography.x509"


class SecondUser:
    """Runs Python code as user ``nobody``."""

    def __init__(self, python: str, home: Path, path: str | None) -> None:
        self.python, self.home, self.path = python, home, path

    def run(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "DASK_CONFIG": str(self.home / "dask"),
               "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "10s", "PYTHONDONTWRITEBYTECODE": "1"}
        if self.path:
            env["PYTHONPATH"] = self.path
        return subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                               self.python, "-c", code], capture_output=True, text=True, timeout=timeout)


def _closure(folder: Path) -> None:
    """Copy the top-level packages that ``IMPORTS`` loads from site-packages into ``folder``."""
    listing = subprocess.run([sys.executable, "-c", f"{IMPORTS}\nimport sys, json\n"
                              "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"],
                             capture_output=True, text=True, check=True)
    roots = [Path(p) for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}]
    tops = set()
    for name in filter(None, json.loads(listing.stdout)):
        for root in roots:
            if name.startswith(str(root) + os.sep):
                tops.add(root / Path(name).relative_to(root).parts[0])
    for top in tops:
        for source in [top, *top.parent.glob(f"{top.name.split('.')[0]}.libs")]:
            target = folder / source.name
            if source.is_dir() and not target.exists():
                shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "tests"))
            elif source.is_file():
                shutil.copy2(source, target)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def second_user_python() -> tuple[SecondUser | None, str]:
    """A :class:`SecondUser`, or None and the reason there is none."""
    if os.geteuid() != 0:
        return None, "the tests do not run as root, so they cannot act as another user"
    if shutil.which("runuser") is None:
        return None, "runuser is not installed"
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        return None, "there is no user 'nobody'"
    home = Path(tempfile.mkdtemp(prefix="dnmf-second-user-"))
    home.chmod(0o777)
    user = SecondUser(sys.executable, home, None)
    if user.run(IMPORTS).returncode == 0:
        return user, ""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/bin:/usr/local/bin")
    if system is None:
        return None, f"user nobody cannot run {sys.executable} and there is no system {version}"
    packages = home / "site-packages"
    packages.mkdir()
    _closure(packages)
    user = SecondUser(system, home, str(packages))
    tried = user.run(IMPORTS)
    if tried.returncode != 0:
        return None, f"user nobody cannot import distributed with {system}: {tried.stderr.strip()[-300:]}"
    return user, ""


def remove(user: SecondUser) -> None:
    shutil.rmtree(user.home, ignore_errors=True)
