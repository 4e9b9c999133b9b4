"""The local-disk cache of a streamed store's blocks: files round trip exactly, and only this user's are read."""

from __future__ import annotations

import os
import shutil

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from dnmf.core.alignment import ALIGNMENT
from dnmf.runtime import local_cache
from dnmf.runtime.local_cache import StripCache, load_blocks, save_blocks


def _blocks() -> list:
    rng = np.random.default_rng(0)
    csr = sp.random(40, 30, density=0.1, format="csr", dtype=np.float32, random_state=1)
    empty = sp.csr_matrix((7, 30), dtype=np.float64)
    return [csr, empty, rng.random((5, 4)), np.asfortranarray(rng.random((6, 3)).astype(np.float32))]


def _private(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return folder


def test_blocks_round_trip_exactly(tmp_path):
    path = _private(tmp_path) / "strip.npy"
    blocks = _blocks()
    assert save_blocks(path, blocks)
    loaded = load_blocks(path)
    assert len(loaded) == len(blocks)
    for got, want in zip(loaded, blocks, strict=True):
        assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
        if sp.issparse(want):
            for part in ("indptr", "indices", "data"):
                assert np.array_equal(getattr(got, part), getattr(want, part))
                assert getattr(got, part).dtype == getattr(want, part).dtype
        else:
            assert np.array_equal(got, want) and got.flags.f_contiguous == want.flags.f_contiguous
    assert [p.name for p in path.parent.iterdir()] == ["strip.npy"], "the temporary file was left behind"


def _arrays(block):
    return [block.indptr, block.indices, block.data] if sp.issparse(block) else [block]


def test_kept_blocks_are_aligned_pages_of_the_file_that_tasks_may_write_privately(tmp_path):
    path = _private(tmp_path) / "strip.npy"
    blocks = [*_blocks(), sp.csr_matrix((3, 30), dtype=np.float32)]  # empty arrays at the very end of the file
    assert save_blocks(path, blocks)
    before = path.read_bytes()
    loaded = load_blocks(path)
    arrays = [array for block in loaded for array in _arrays(block) if array.size]
    assert all(array.ctypes.data % ALIGNMENT == 0 for array in arrays)
    assert all(not array.flags.owndata and array.flags.writeable for array in arrays), "mapped, not read"
    for array in arrays:
        array[...] = 0
    assert path.read_bytes() == before, "a write to a mapped block reached the file"
    for got, want in zip(load_blocks(path), blocks, strict=True):
        for ours, theirs in zip(_arrays(got), _arrays(want), strict=True):
            assert np.array_equal(ours, theirs)


def test_nothing_is_read_from_a_folder_others_may_write_to(tmp_path):
    folder = _private(tmp_path)
    assert save_blocks(folder / "strip.npy", _blocks())
    folder.chmod(0o777)
    assert load_blocks(folder / "strip.npy") is None
    folder.chmod(0o700)
    assert load_blocks(folder / "strip.npy") is not None


def test_a_link_or_a_damaged_file_is_not_read(tmp_path):
    folder = _private(tmp_path)
    assert save_blocks(folder / "strip.npy", _blocks())
    (folder / "link.npy").symlink_to(folder / "strip.npy")
    assert load_blocks(folder / "link.npy") is None
    data = (folder / "strip.npy").read_bytes()
    (folder / "cut.npy").write_bytes(data[: len(data) // 2])
    assert load_blocks(folder / "cut.npy") is None
    assert load_blocks(folder / "absent.npy") is None


def test_a_strip_is_not_cached_where_the_disk_would_be_nearly_full(tmp_path, monkeypatch):
    folder = _private(tmp_path)
    monkeypatch.setattr(local_cache, "MIN_FREE_BYTES", shutil.disk_usage(folder).free + 1)
    assert not save_blocks(folder / "strip.npy", _blocks())
    assert list(folder.iterdir()) == []


def test_outside_a_worker_the_cache_reads_every_time():
    reads = []
    cache = StripCache()
    for _ in range(2):
        assert cache.blocks("strip.npy", lambda: reads.append(1) or [np.ones(2)], [(2,)])[0].tolist() == [1.0, 1.0]
    assert len(reads) == 2


def _nobody() -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@pytest.mark.skipif(os.geteuid() != 0 or _nobody() is None,
                    reason="needs root, to give files to a second user (nobody)")
def test_a_file_of_another_user_is_not_read(tmp_path):
    """A cache file of another local user (who can write next to this user's worker folders in a shared scratch
    space) where a worker of this host would look for a strip is ignored, and so is this user's own file in that
    user's folder."""
    uid, gid = _nobody()
    folder = _private(tmp_path)
    assert save_blocks(folder / "planted.npy", _blocks())
    os.chown(folder / "planted.npy", uid, gid)
    assert load_blocks(folder / "planted.npy") is None
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    assert save_blocks(theirs / "ours.npy", _blocks())
    os.chown(theirs, uid, gid)
    assert load_blocks(theirs / "ours.npy") is None
    os.chown(theirs, os.geteuid(), os.getegid())
    assert load_blocks(theirs / "ours.npy") is not None


def _writable_tmpfs() -> str | None:
    for line in open("/proc/self/mounts").read().splitlines() if os.path.exists("/proc/self/mounts") else []:
        device, point, kind, options, *_ = line.split()
        if kind == "tmpfs" and "rw" in options.split(",") and os.access(point, os.W_OK):
            return point
    return None


@pytest.mark.skipif(_writable_tmpfs() is None, reason="needs a writable tmpfs mount (e.g. /dev/shm)")
def test_nothing_is_cached_on_a_file_system_in_memory(tmp_path):
    import tempfile

    assert not local_cache.in_memory_filesystem(_private(tmp_path))
    with tempfile.TemporaryDirectory(dir=_writable_tmpfs()) as folder:
        path = Path(folder) / "strip.npy"
        assert local_cache.in_memory_filesystem(Path(folder))
        assert not save_blocks(path, _blocks())
        assert list(Path(folder).iterdir()) == []


@pytest.mark.cluster
def test_a_worker_keeps_a_strip_and_reads_it_back_only_for_the_same_blocks(tmp_path):
    """On a real worker process: the first read of a strip is kept, the second is served from the file, and a
    file whose blocks do not have the shapes asked for (another grid's) is not used."""
    from distributed import Client, LocalCluster

    def reads_of(cache: StripCache) -> list[int]:
        counts = []
        for shapes in ([(3, 4)], [(3, 4)], [(4, 4)]):
            reads = []
            cache.blocks("strip.npy", lambda: reads.append(1) or [np.ones(shapes[0])], shapes)
            counts.append(len(reads))
        return counts

    cache = StripCache()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", local_directory=tmp_path) as cluster, Client(cluster) as client:
        assert client.submit(reads_of, cache, pure=False).result() == [1, 0, 1]
        kept = client.run(lambda dask_worker: sorted(os.listdir(cache.folder(Path(dask_worker.local_directory)))))
        assert list(kept.values()) == [["strip.npy"]]
        client.run(local_cache.drop, cache.token)
        assert not any(client.run(lambda dask_worker: cache.folder(Path(dask_worker.local_directory)).exists())
                       .values())
