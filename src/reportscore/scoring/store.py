"""Where registered model artifacts live: a directory per version, laid out like any model directory.

``file://`` URLs only (a local directory in embedded mode, a shared volume in distributed mode). A version is
written to a staging directory first and renamed into place, so a reader never sees half an artifact.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse


class StoreError(ValueError):
    """The store URL is not usable."""


class ArtifactStore:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise StoreError(
                f"model store {url!r}: only file:// URLs are supported (a local directory or a shared volume)"
            )
        self.url = url
        self.root = Path(unquote(parsed.path))

    def staging_dir(self) -> Path:
        path = self.root / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=False)
        return path

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def publish(self, staging: Path, *, name: str, version: str) -> Path:
        """Move a complete staging directory into place (atomic rename on one filesystem)."""
        target = self.version_dir(name, version)
        if target.exists():
            raise StoreError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        return target

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def uri(path: Path) -> str:
        return path.resolve().as_uri()

    @staticmethod
    def local_path(uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise StoreError(f"artifact URI {uri!r} is not a file:// URI")
        return Path(unquote(parsed.path))
