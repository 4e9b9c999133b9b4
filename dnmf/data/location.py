"""Where a store lives: a local directory or an fsspec URL, and the few file operations dnmf does on it (exists,
remove, an atomic replace)."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["Location"]


@dataclass(frozen=True)
class Location:
    """Where a store lives: a local directory, or an fsspec URL."""

    url: str
    storage_options: dict[str, Any]

    @classmethod
    def parse(cls, url: str | os.PathLike[str], storage_options: dict[str, Any] | None) -> Location:
        text = os.fspath(url)
        if text.startswith("file://"):
            text = text[len("file://"):]
        return cls(text.rstrip("/") or text, dict(storage_options or {}))

    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    @property
    def _fs(self) -> tuple[Any, str]:
        import fsspec

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def exists(self) -> bool:
        if self.is_local:
            return os.path.exists(self.url)
        fs, path = self._fs
        return fs.exists(path)

    def child(self, name: str) -> Location:
        return Location(f"{self.url}/{name}", self.storage_options)

    def sibling(self, name: str) -> Location:
        parent, _, _ = self.url.rpartition("/")
        return Location(f"{parent}/{name}" if parent else name, self.storage_options)

    def zarr_kwargs(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options} if not self.is_local and self.storage_options else {}

    def remove(self) -> None:
        """Delete what is here; a symbolic link is removed itself, never what it points to."""
        if self.is_local:
            if os.path.islink(self.url) or os.path.isfile(self.url):
                os.unlink(self.url)
            else:
                shutil.rmtree(self.url, ignore_errors=True)
        else:
            fs, path = self._fs
            if fs.exists(path):
                fs.rm(path, recursive=True)

    def replace_with(self, source: Location) -> None:
        """Move ``source`` to this location, replacing what is here.

        On a local file system this is an atomic rename. Object stores have no rename: the objects are copied,
        so a crash during the copy can leave a partial store there (the staging copy stays complete).
        """
        if self.is_local:
            trash = None
            if os.path.exists(self.url):
                trash = f"{self.url}.dnmf-old-{uuid.uuid4().hex[:8]}"
                os.replace(self.url, trash)
            os.replace(source.url, self.url)
            if trash:
                shutil.rmtree(trash, ignore_errors=True)
            return
        fs, path = self._fs
        fs.invalidate_cache()
        if fs.exists(path):
            fs.rm(path, recursive=True)
        source_path = source._fs[1]
        for name in fs.find(source_path):
            fs.copy(name, path + name[len(source_path):])
        fs.rm(source_path, recursive=True)
