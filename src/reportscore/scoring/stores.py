"""The model store of ``REPORTSCORE_MODEL_STORE_URL``: the one place that looks at its scheme."""

from __future__ import annotations

from urllib.parse import urlparse

from reportscore.scoring.store import ArtifactStore, LocalStore, StoreError
from reportscore.settings import Settings


def open_store(settings: Settings) -> ArtifactStore:
    """The store of ``REPORTSCORE_MODEL_STORE_URL``: the one place that looks at its scheme."""
    url = settings.effective_model_store_url
    scheme = urlparse(url).scheme
    if scheme == "file":
        return LocalStore(url)
    if scheme == "s3":
        from reportscore.scoring.object_store import ObjectStore

        return ObjectStore(
            url,
            endpoint_url=settings.model_store_endpoint_url,
            region=settings.model_store_region,
            cache_dir=settings.effective_model_cache_dir,
        )
    raise StoreError(
        f"model store {url!r}: use file:///path (a local directory or a shared volume) or s3://bucket/prefix"
    )
