"""Where registered model artifacts live: a directory per version (artifact, ``schema.json``, ``metadata.json``,
``reference.json``) under ``<store>/<name>/<version>/``.

One interface, two implementations chosen once from ``REPORTSCORE_MODEL_STORE_URL`` by
:func:`reportscore.scoring.stores.open_store`:

- ``file://`` (:class:`LocalStore`): a local directory in embedded mode, a shared volume in distributed mode. A
  version is written to a staging directory on the same filesystem and renamed into place, so a reader never sees
  half an artifact.
- ``s3://bucket/prefix`` (:class:`reportscore.scoring.object_store.ObjectStore`): an S3-compatible bucket. A
  version is uploaded file by file and its manifest last; readers download it into a local cache.

Registration always stages and validates a version locally (:meth:`ArtifactStore.staging_dir`) before
:meth:`ArtifactStore.publish`; a process serving a version asks :meth:`ArtifactStore.model_dir` for a local model
directory to load from.
"""

from __future__ import annotations

import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    pass


class StoreError(ValueError):
    """The store cannot be used (bad URL, unreachable, a version missing, incomplete or altered)."""


class StoreUnavailableError(StoreError):
    """The store did not answer (network, credentials, permissions): worth trying again later."""


class VersionExistsError(StoreError):
    """The store already holds that version (versions are immutable)."""


class ArtifactStore(ABC):
    """A place every process can publish model versions to and load them from."""

    url: str

    @abstractmethod
    def staging_dir(self) -> Path:
        """A new, empty local directory in which registration assembles and validates a version."""

    @abstractmethod
    def publish(self, staging: Path, *, name: str, version: str) -> str:
        """Make the complete ``staging`` directory version ``name``/``version``; returns the version's URI.

        ``staging`` is consumed. Refuses (``VersionExistsError``) to overwrite a published version.
        """

    @abstractmethod
    def unpublish(self, *, name: str, version: str) -> None:
        """Remove a version published by this process (its registration failed afterwards)."""

    @abstractmethod
    def model_dir(self, artifact_uri: str, *, sha256: str) -> Path:
        """A local model directory holding the version of ``artifact_uri`` (an artifact URI this store wrote)."""

    def discard(self, staging: Path) -> None:
        """Remove a staging directory (registration was refused)."""
        shutil.rmtree(staging, ignore_errors=True)


class LocalStore(ArtifactStore):
    """``file://`` directory: a local directory or a volume shared by every process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(unquote(urlparse(url).path))

    def staging_dir(self) -> Path:
        path = self.root / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=False)
        return path

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def publish(self, staging: Path, *, name: str, version: str) -> str:
        """Move the staging directory into place (atomic rename on one filesystem)."""
        target = self.version_dir(name, version)
        if target.exists():
            raise VersionExistsError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        return target.resolve().as_uri()

    def unpublish(self, *, name: str, version: str) -> None:
        shutil.rmtree(self.version_dir(name, version), ignore_errors=True)

    def model_dir(self, artifact_uri: str, *, sha256: str) -> Path:
        """The artifact's own directory (``load_model_dir`` checks the sha256 as it loads)."""
        return local_path(artifact_uri).parent


def local_path(uri: str) -> Path:
    """The path of a ``file://`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise StoreError(f"artifact URI {uri!r} is not a file:// URI")
    return Path(unquote(parsed.path))
