"""The artifact store in an S3-compatible bucket (``s3://bucket/prefix``), through pyarrow's S3 filesystem.

Publishing uploads a version's files under ``<prefix>/<name>/<version>/`` and then ``manifest.json`` (each file's
size and sha256): the manifest is the completion marker, written last, so a version without one (an interrupted
upload) is never loaded. A published version is never overwritten.

Loading downloads a version into a local cache (``<cache_dir>/<bucket>/<key>``), checking every file against the
manifest and the artifact against the sha256 the registry recorded, and renames the complete copy into place; a
later load of the same version uses the cached copy once its files verify again (and downloads it afresh when they
do not).

Credentials come from the standard AWS chain, read by pyarrow itself: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``~/.aws/credentials`` and ``~/.aws/config`` (``AWS_PROFILE``),
or the instance metadata service.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pyarrow import fs

from reportscore.scoring.store import ArtifactStore, StoreError, StoreUnavailableError, VersionExistsError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def _sha256_stream(stream: Any, sink: Any = None) -> tuple[str, int]:
    """sha256 and size of what ``stream`` yields, copied to ``sink`` on the way when given."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


def _sha256_path(path: Path) -> str:
    with path.open("rb") as fh:
        return _sha256_stream(fh)[0]


class ObjectStore(ArtifactStore):
    """Model versions in a bucket; loaded through a verified local cache."""

    def __init__(self, url: str, *, endpoint_url: str | None, region: str | None, cache_dir: Path) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.hostname:
            raise StoreError(f"model store {url!r}: expected s3://bucket/prefix")
        self.url = url
        self.bucket = parsed.hostname
        self.prefix = parsed.path.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.cache_dir = cache_dir
        self._access_key = unquote(parsed.username) if parsed.username else None
        self._secret_key = unquote(parsed.password) if parsed.password else None

    @cached_property
    def _fs(self) -> fs.S3FileSystem:
        options: dict[str, Any] = {"region": self.region}
        if self.endpoint_url:
            endpoint = urlparse(self.endpoint_url)
            options["scheme"] = endpoint.scheme
            options["endpoint_override"] = endpoint.netloc
        if self._access_key is not None:
            options["access_key"] = self._access_key
            options["secret_key"] = self._secret_key or ""
        return fs.S3FileSystem(**options)

    def _where(self) -> str:
        return f"model store {self._safe_url}" + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    @property
    def _safe_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _failed(self, action: str, exc: OSError) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"{self._where()}: {action} failed: {exc}. Check that the store is reachable from this process "
            "(REPORTSCORE_MODEL_STORE_ENDPOINT_URL, REPORTSCORE_MODEL_STORE_REGION) and that the AWS credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) may read and write the bucket"
        )

    # -- keys ------------------------------------------------------------------------------------------------------
    def _version_key(self, name: str, version: str) -> str:
        return "/".join(part for part in (self.bucket, self.prefix, name, version) if part)

    def _uri(self, key: str) -> str:
        return f"s3://{key}"

    # -- publishing ------------------------------------------------------------------------------------------------
    def staging_dir(self) -> Path:
        path = self.cache_dir / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=False)
        return path

    def publish(self, staging: Path, *, name: str, version: str) -> str:
        """Upload every file of ``staging``, then the manifest; refuse when the version is already published."""
        key = self._version_key(name, version)
        files = sorted(p for p in staging.iterdir() if p.is_file())
        try:
            if self._fs.get_file_info(f"{key}/{MANIFEST}").type != fs.FileType.NotFound:
                raise VersionExistsError(f"{self._uri(key)} already exists; versions are immutable")
            entries: dict[str, dict[str, Any]] = {}
            for path in files:
                with path.open("rb") as src, self._fs.open_output_stream(f"{key}/{path.name}") as out:
                    sha256, size = _sha256_stream(src, out)
                entries[path.name] = {"size": size, "sha256": sha256}
            manifest = {
                "name": name,
                "version": version,
                "files": entries,
                "published_at": datetime.now(UTC).isoformat(),
            }
            with self._fs.open_output_stream(f"{key}/{MANIFEST}") as out:
                out.write(json.dumps(manifest, indent=2).encode() + b"\n")
        except OSError as exc:
            raise self._failed(f"uploading {self._uri(key)}", exc) from exc
        shutil.rmtree(staging, ignore_errors=True)
        log.info("model version uploaded", extra={"model_version": version, "uri": self._uri(key)})
        return self._uri(key)

    def unpublish(self, *, name: str, version: str) -> None:
        """Delete the manifest first (readers stop seeing the version), then the files; best effort."""
        key = self._version_key(name, version)
        try:
            self._fs.delete_file(f"{key}/{MANIFEST}")
            self._fs.delete_dir_contents(key, missing_dir_ok=True)
        except OSError:
            log.warning("could not remove an unregistered version from the store", extra={"uri": self._uri(key)})

    # -- loading ---------------------------------------------------------------------------------------------------
    def model_dir(self, artifact_uri: str, *, sha256: str) -> Path:
        """The cached copy of the artifact's version, downloaded and verified first when needed."""
        parsed = urlparse(artifact_uri)
        parts = [parsed.netloc, *unquote(parsed.path).strip("/").split("/")]
        if parsed.scheme != "s3" or len(parts) < 3 or any(p in ("", ".", "..") for p in parts):
            raise StoreError(
                f"artifact URI {artifact_uri!r} is not in an s3:// store; a version registered under another "
                f"REPORTSCORE_MODEL_STORE_URL cannot be loaded from {self._safe_url}: register it again"
            )
        key, artifact = "/".join(parts[:-1]), parts[-1]
        cached = self.cache_dir.joinpath(*parts[:-1])
        if cached.is_dir():
            problem = _verify(cached, artifact=artifact, sha256=sha256)
            if problem is None:
                return cached
            log.warning("cached model version failed verification; downloading it again", extra={"error": problem})
            self._set_aside(cached)
        partial = self._download(key, artifact=artifact, sha256=sha256)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            partial.rename(cached)  # atomic: a cached copy is complete or absent, never replaced while in use
        except OSError:  # another process sharing this cache placed the same version a moment ago
            shutil.rmtree(partial, ignore_errors=True)
            problem = _verify(cached, artifact=artifact, sha256=sha256)
            if problem is not None:
                raise StoreError(f"cached copy of {self._uri(key)} unusable: {problem}") from None
        return cached

    def _set_aside(self, cached: Path) -> None:
        """Move a bad cached copy out of the way (atomically) and delete it."""
        doomed = self.cache_dir / ".partial" / f"stale-{uuid.uuid4().hex}"
        doomed.parent.mkdir(parents=True, exist_ok=True)
        try:
            cached.rename(doomed)
        except FileNotFoundError:  # another process set it aside first
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _download(self, key: str, *, artifact: str, sha256: str) -> Path:
        """A verified copy of version ``key`` in a new directory of the cache."""
        uri = self._uri(key)
        try:
            with self._fs.open_input_stream(f"{key}/{MANIFEST}") as stream:
                raw = stream.read()
        except FileNotFoundError as exc:
            raise StoreError(
                f"{uri} has no {MANIFEST}: the version was never completely uploaded (an interrupted upload) or was "
                "removed; it is not loaded"
            ) from exc
        except OSError as exc:
            raise self._failed(f"reading {uri}/{MANIFEST}", exc) from exc
        try:
            files: dict[str, dict[str, Any]] = json.loads(raw)["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{uri}/{MANIFEST} is not a valid manifest ({exc})") from exc
        if files.get(artifact, {}).get("sha256") != sha256:
            raise StoreError(f"{uri}/{MANIFEST} does not list {artifact} with the registry's sha256 {sha256}")
        partial = self.cache_dir / ".partial" / uuid.uuid4().hex
        partial.mkdir(parents=True)
        try:
            for file_name, entry in files.items():
                if "/" in file_name or file_name in ("", ".", "..", MANIFEST):
                    raise StoreError(f"{uri}/{MANIFEST}: bad file name {file_name!r}")
                try:
                    with (
                        self._fs.open_input_stream(f"{key}/{file_name}") as src,
                        (partial / file_name).open("wb") as out,
                    ):
                        actual, _ = _sha256_stream(src, out)
                except FileNotFoundError as exc:
                    raise StoreError(f"{uri}/{file_name} is missing although the manifest lists it") from exc
                except OSError as exc:
                    raise self._failed(f"downloading {uri}/{file_name}", exc) from exc
                if actual != entry.get("sha256"):
                    raise StoreError(
                        f"{uri}/{file_name}: sha256 {actual} does not match the manifest ({entry.get('sha256')}); "
                        "the object was altered after it was published, refusing it"
                    )
            (partial / MANIFEST).write_bytes(raw)  # last: a cached copy without it is never used
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log.info("model version downloaded", extra={"uri": uri})
        return partial


def _verify(directory: Path, *, artifact: str, sha256: str) -> str | None:
    """None when every file of the cached copy matches its manifest and the artifact the registry; else why not."""
    try:
        files: dict[str, dict[str, Any]] = json.loads((directory / MANIFEST).read_text())["files"]
        if files[artifact]["sha256"] != sha256:
            return f"{directory}: {artifact} is not the registry's sha256 {sha256}"
        for file_name, entry in files.items():
            if _sha256_path(directory / file_name) != entry["sha256"]:
                return f"{directory / file_name}: sha256 differs from the manifest"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{directory}: {exc}"
    return None
