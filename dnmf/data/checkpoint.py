"""Checkpoints between iterations: versioned, committed by a manifest written last, validated on resume.

Layout::

    checkpoint/               mode 0700 when dnmf creates it
      dnmf-checkpoint.json    the marker: {"kind": "checkpoint", "format": 1, "created_folder": true}
      manifest.json           {"format": 1, "versions": ["v00000012", "v00000011"]}, newest first
      v00000012/              a Zarr v3 group: arrays W and H, attributes {"state": {...}}
      v00000011/

Protocol (see DESIGN.md §5): every checkpoint goes into a new version folder; W and H are written there by the
workers, block by block; the state (JSON, never pickle) carries checksums of both arrays; only then is the
manifest replaced (write to a temporary file and rename, or one object put on an object store). Versions beyond
the last :data:`KEEP` are deleted after the manifest moved. On load, versions are tried newest first; one whose
arrays are missing, truncated or do not match their checksums, or whose state does not match its schema
(:mod:`dnmf.data.checkpoint_state`), is skipped with a warning.

Trust (see :mod:`dnmf.data.safety`): a local checkpoint folder is used only if it belongs to the current user and
no one else may write to it, and only if dnmf made it (its marker, or a layout of nothing but dnmf's files, as
checkpoints of dnmf 0.1.0 have) or it is empty. Each block of W and H carries a BLAKE2b hash of its bytes
(``state["hashes"]``); checkpoints of dnmf 0.1.0, which have per-block sums only, are still read. A version
folder that is a symbolic link, or holds one, is skipped as damaged and never written through. :meth:`discard`
deletes only dnmf's own files, and the folder itself only if dnmf created it and nothing else is left in it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from dnmf.core.engine import Progress
from dnmf.data.checkpoint_files import (
    HASH,
    CheckpointFolder,
    block_hashes,
    check_version_tree,
    hash_list,
)
from dnmf.data.checkpoint_state import check_state
from dnmf.data.store import Location, write_blocks
from dnmf.runtime.client import active_client

__all__ = ["KEEP", "Checkpoint", "CheckpointError", "CheckpointStore", "CheckpointWarning", "open_run"]

logger = logging.getLogger("dnmf")

KEEP = 2
FORMAT = 1
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^v(\d{8})$")


class CheckpointError(ValueError):
    """No usable checkpoint, or one that belongs to another run."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint version was skipped."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the factors (lazy, read from Zarr) and the JSON state."""

    iteration: int
    W: da.Array
    H: da.Array
    state: dict[str, Any]


def _block_sum(block: np.ndarray) -> np.ndarray:
    return np.array([[np.sum(block, dtype=np.float64)]])


def checksum(x: da.Array) -> da.Array:
    """Per-block float64 sums, in block order: the checksums of dnmf 0.1.0, still written for it to read, and
    checked for checkpoints without hashes."""
    return x.map_blocks(_block_sum, chunks=((1,) * x.numblocks[0], (1,) * x.numblocks[1]), dtype=np.float64,
                        token="dnmf-checkpoint-sum", meta=np.empty((0, 0), dtype=np.float64))


def _read_factors(group: zarr.Group, state: dict[str, Any], url: str) -> tuple[da.Array, da.Array]:
    """W and H of a version, read lazily on their recorded grids, in layers named ``dnmf-checkpoint-read-*``. The
    key token covers the state's checksums, so a rewritten version never reuses keys of the one it replaced."""
    token = tokenize(url, state)
    return tuple(da.from_zarr(group[name], chunks=tuple(tuple(c) for c in state["chunks"][name]), inline_array=True,
                              name=f"dnmf-checkpoint-read-{name.lower()}-{token}") for name in ("W", "H"))


class CheckpointStore:
    """A checkpoint folder at a local path or fsspec URL."""

    def __init__(self, url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        self.location = Location.parse(url, storage_options)
        self.folder = CheckpointFolder(self.location)

    @property
    def url(self) -> str:
        return self.location.url

    def check(self) -> None:
        """Refuse a folder this run may not use (see :meth:`CheckpointFolder.check`)."""
        self.folder.check()

    def discard(self) -> bool:
        """Delete dnmf's checkpoint files here (see :meth:`CheckpointFolder.discard`)."""
        return self.folder.discard()

    # -- writing ---------------------------------------------------------------------------------------------

    def write(self, iteration: int, W: da.Array, H: da.Array, state: dict[str, Any]) -> str:
        """Write version ``iteration`` and commit it; returns the version name."""
        version = f"v{iteration:08d}"
        target = self.location.child(version)
        self.folder.prepare()
        target.remove()
        group = zarr.open_group(store=target.url, mode="w", zarr_format=3, **target.zarr_kwargs())
        stores = []
        for name, factor in (("W", W), ("H", H)):
            regular = regular_of(factor)
            array = group.create_array(name, shape=factor.shape, dtype=factor.dtype, compressors=None,
                                       chunks=tuple(c[0] for c in regular.chunks))
            stores.append(write_blocks(regular, array, f"dnmf-checkpoint-write-{name.lower()}"))
        _, w_sums, h_sums, w_hashes, h_hashes = dask.compute(stores, checksum(W), checksum(H), block_hashes(W),
                                                             block_hashes(H))
        full_state = {**state, "iteration": iteration,
                      "checksums": {"W": w_sums.ravel().tolist(), "H": h_sums.ravel().tolist()},
                      "hashes": {"kind": HASH, "W": hash_list(w_hashes), "H": hash_list(h_hashes)},
                      "chunks": {"W": [list(map(int, c)) for c in W.chunks],
                                 "H": [list(map(int, c)) for c in H.chunks]}}
        group.attrs.update({"dnmf": {"kind": "checkpoint", "format": FORMAT}, "state": full_state})
        self._commit(version)
        return version

    def read_factors(self, version: str) -> tuple[da.Array, da.Array]:
        """W and H of a committed version, read lazily (the next iteration's graph reads them). Continuing from
        these instead of the in-memory factors cuts the lineage a distributed scheduler keeps: a lost block is
        then re-read from here, not recomputed from the first iteration on."""
        group = zarr.open_group(store=self.location.child(version).url, mode="r",
                                **self.location.zarr_kwargs())
        return _read_factors(group, dict(group.attrs["state"]), self.location.child(version).url)

    def checkpointer(self, run: dict[str, Any]) -> Callable[[da.Array, da.Array, Progress],
                                                            tuple[da.Array, da.Array] | None]:
        """The engine's checkpoint hook for a run described by ``run`` (JSON).

        On a distributed cluster the loop then continues from the factors read back from the checkpoint, so
        that a worker lost later costs a re-read of them rather than a recomputation of the whole run.
        """

        def checkpoint(W: da.Array, H: da.Array, progress: Progress) -> tuple[da.Array, da.Array] | None:
            version = self.write(progress.iteration, W, H, {"progress": progress.to_json(), "run": run})
            return self.read_factors(version) if active_client() is not None else None

        return checkpoint

    def _commit(self, version: str) -> None:
        versions = [version] + [v for v in self._manifest_versions() if v != version]
        self._write_manifest({"format": FORMAT, "versions": versions[:KEEP]})
        for old in versions[KEEP:] + [v for v in self._version_folders() if v not in versions[:KEEP]]:
            self.location.child(old).remove()

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest)
        path = self.location.child(MANIFEST)
        if self.location.is_local:
            os.makedirs(self.url, exist_ok=True)
            temporary = f"{path.url}.tmp-{uuid.uuid4().hex[:8]}"
            with open(temporary, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path.url)
        else:
            fs, remote = path._fs
            fs.pipe_file(remote, text.encode())

    # -- reading ---------------------------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.location.child(MANIFEST)
        try:
            if self.location.is_local:
                with open(path.url) as handle:
                    manifest = json.load(handle)
            else:
                fs, remote = path._fs
                manifest = json.loads(fs.cat_file(remote))
            versions = manifest["versions"]
            if not isinstance(versions, list) or not all(isinstance(v, str) and _VERSION.match(v) for v in versions):
                raise ValueError("versions is not a list of version names")
            return manifest
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            warnings.warn(f"The checkpoint manifest at {path.url!r} is unreadable ({error}); looking for complete "
                          "versions in the folder instead.", CheckpointWarning, stacklevel=3)
            return None

    def _manifest_versions(self) -> list[str]:
        manifest = self._read_manifest()
        return list(manifest["versions"]) if manifest else []

    def _version_folders(self) -> list[str]:
        if not self.location.exists():
            return []
        if self.location.is_local:
            names = os.listdir(self.url)
        else:
            fs, remote = self.location._fs
            names = [entry.rstrip("/").rpartition("/")[2] for entry in fs.ls(remote, detail=False)]
        return sorted((name for name in names if _VERSION.match(name)), reverse=True)

    def exists(self) -> bool:
        """Whether any checkpoint (complete or not) is here (a marker alone is none)."""
        return bool(self._manifest_versions() or self._version_folders())

    def _interrupted(self, version: str) -> bool:
        """Whether ``version``, which no manifest lists, is a write that stopped before its end: its group has no
        state (the state is written after the arrays, and the manifest after the state), or no metadata yet."""
        target = self.location.child(version)
        try:
            group = zarr.open_group(store=target.url, mode="r", **target.zarr_kwargs())
        except FileNotFoundError:
            return True
        except Exception:  # noqa: BLE001 - metadata that is there but unreadable is damage, not an early stop
            return False
        return "state" not in group.attrs

    def _load_version(self, version: str) -> Checkpoint:
        target = self.location.child(version)
        if self.location.is_local:
            check_version_tree(target.url)
        group = zarr.open_group(store=target.url, mode="r", **target.zarr_kwargs())
        check_state(group.attrs.get("state"), version)
        state = dict(group.attrs["state"])
        W, H = dask.persist(*_read_factors(group, state, target.url))
        hashes = state.get("hashes")
        if hashes is not None:
            if not isinstance(hashes, dict) or hashes.get("kind") != HASH:
                raise ValueError(f"the hashes are not {HASH} hashes")
            w_hashes, h_hashes = dask.compute(block_hashes(W), block_hashes(H))
            if hash_list(w_hashes) != hashes["W"] or hash_list(h_hashes) != hashes["H"]:
                raise ValueError("the arrays do not match their checksums (BLAKE2b hashes of their blocks): "
                                 "missing, truncated or changed chunks")
            return Checkpoint(int(state["iteration"]), W, H, state)
        w_sums, h_sums = dask.compute(checksum(W), checksum(H))
        if w_sums.ravel().tolist() != state["checksums"]["W"] or h_sums.ravel().tolist() != state["checksums"]["H"]:
            raise ValueError("the arrays do not match their checksums (missing or truncated chunks)")
        return Checkpoint(int(state["iteration"]), W, H, state)

    def load(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None when there is none at all.

        Raises
        ------
        CheckpointError
            If versions exist but none is complete and valid.
        """
        listed = self._manifest_versions()
        candidates = listed + [v for v in self._version_folders() if v not in listed]
        if not candidates:
            return None
        problems = []
        for version in candidates:
            try:
                checkpoint = self._load_version(version)
            except Exception as error:  # any damage: missing arrays, bad metadata, decode errors, checksums
                if version not in listed and self._interrupted(version):
                    logger.info("Ignoring %s: a checkpoint write stopped before it was complete.",
                                self.location.child(version).url)
                    continue
                problems.append(f"{version}: {type(error).__name__}: {error}")
                warnings.warn(f"Skipping damaged checkpoint {self.location.child(version).url!r}: {error}",
                              CheckpointWarning, stacklevel=2)
                continue
            logger.info("Loaded checkpoint %s (iteration %d)", self.location.child(version).url,
                        checkpoint.iteration)
            return checkpoint
        if not problems:  # only writes that never finished: there was no checkpoint yet
            return None
        raise CheckpointError(f"No complete checkpoint in {self.url!r}; every version is damaged: "
                              + "; ".join(problems) + ". Delete the folder to start afresh.")


def _differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two JSON records, one ``"key: checkpoint has X, this run has Y"`` line each."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: checkpoint has {old!r}, this run has {new!r}")
    return lines


def open_run(url: str | os.PathLike[str] | None, *, resume: bool,
             run: dict[str, Any]) -> tuple[CheckpointStore | None, Checkpoint | None]:
    """The checkpoint store of a fit described by ``run`` (JSON: parameters, input fingerprint), and the
    checkpoint to resume from, if any.

    Raises
    ------
    ValueError
        If ``resume`` is asked for without a checkpoint folder.
    FileExistsError
        If a checkpoint exists and ``resume`` is False: a user's checkpoint is never overwritten.
    CheckpointError
        If the checkpoint belongs to another run (the message lists what differs), or none is complete.
    dnmf.data.safety.UnsafeLocationError, dnmf.data.safety.NotOwnStoreError
        If the folder belongs to another user, others may write to it, or dnmf did not make it
        (:meth:`CheckpointStore.check`).
    """
    if url is None:
        if resume:
            raise ValueError("resume=True needs a checkpoint folder: NMF(..., checkpoint='path/to/folder').")
        return None, None
    store = CheckpointStore(url)
    store.check()
    if not resume:
        if store.exists():
            raise FileExistsError(f"A checkpoint already exists at {store.url!r}. Pass fit(..., resume=True) to "
                                  "continue it, or delete it (or choose another folder) to start afresh.")
        return store, None
    loaded = store.load()
    if loaded is None:
        logger.info("No checkpoint at %s: starting afresh.", store.url)
        return store, None
    differences = _differences(loaded.state.get("run", {}), run)
    if differences:
        raise CheckpointError(f"The checkpoint at {store.url!r} belongs to another run: " + "; ".join(differences)
                              + ". Use another checkpoint folder for this run.")
    logger.info("Resuming from iteration %d of %s.", loaded.iteration, store.url)
    return store, loaded


def regular_of(x: da.Array) -> da.Array:
    """``x`` on a regular grid (every chunk but the last of equal size), as Zarr needs for parallel writes."""
    return x.rechunk(tuple(c[0] for c in x.chunks))
