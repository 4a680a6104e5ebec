"""Model registry over HTTP (admin): upload and register, list, show, promote, roll back."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import AppState, State
from reportscore.api.schemas.models import ModelList, ModelVersionDetail, ModelVersionOut
from reportscore.api.schemas.tasks import ErrorBody, ValidationErrorBody
from reportscore.scoring import registration
from reportscore.scoring.store import StoreError

router = APIRouter(prefix="/models", tags=["models (admin)"], dependencies=[requires("admin")])


async def _save(upload: UploadFile, directory: Path, default_name: str) -> Path:
    name = Path(upload.filename or default_name).name or default_name
    target = directory / name
    with target.open("wb") as out:
        await run_in_threadpool(shutil.copyfileobj, upload.file, out)
    return target


@router.post(
    "",
    status_code=201,
    summary="Register a new model version (validated before anything changes)",
    response_model=ModelVersionOut,
    responses={
        400: {"model": ErrorBody, "description": "The body is not valid multipart/form-data."},
        409: {"model": ErrorBody, "description": "That version is already registered."},
        413: {"model": ErrorBody, "description": "Upload over REPORTSCORE_MAX_BODY_BYTES."},
        422: {
            "model": ErrorBody | ValidationErrorBody,
            "description": "The artifact, schema or reference sample was rejected (a reason), or a form field is "
            "missing or invalid (FastAPI's validation errors).",
        },
        503: {"model": ErrorBody, "description": "The model store is unreachable; nothing was registered."},
    },
)
async def register(
    state: State,
    artifact: Annotated[
        UploadFile, File(description="The model artifact: .json/.ubj (XGBoost), .skops, .onnx, .keras, .pkl/.joblib")
    ],
    version: Annotated[
        str,
        Form(
            description="The new version's name, e.g. 1.1.0",
            examples=["1.1.0"],
            pattern=registration.VERSION_PATTERN.pattern,
        ),
    ],
    # Optional files are typed without ``| None`` so the schema does not offer ``null`` (a form field is absent, or
    # it is a file).
    schema_file: Annotated[
        UploadFile, File(alias="schema", description="Feature schema JSON (default: the service's)")
    ] = None,  # type: ignore[assignment]
    reference: Annotated[UploadFile, File(description="Reference sample (.parquet) of real reports, for drift")] = None,  # type: ignore[assignment]
) -> Any:
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        directory = Path(tmp)
        artifact_path = await _save(artifact, directory, "artifact")
        schema_path = await _save(schema_file, directory, "schema.json") if schema_file is not None else None
        reference_path = await _save(reference, directory, "reference.parquet") if reference is not None else None
        try:
            view = await run_in_threadpool(
                lambda: registration.register_model(
                    db=state.db,
                    settings=state.settings,
                    artifact=artifact_path,
                    version=version,
                    schema=schema_path,
                    reference=reference_path,
                    by="http",
                )
            )
        except registration.RegistrationError as exc:
            status = 409 if "already registered" in str(exc) else 422
            raise HTTPException(status_code=status, detail=str(exc)) from None
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
    return ModelVersionOut.of(view)


@router.get("", summary="List registered versions and the champion", response_model=ModelList)
async def list_versions(state: State) -> Any:
    views = await run_in_threadpool(lambda: registration.list_models(db=state.db, settings=state.settings))
    champion = next((v.version for v in views if v.is_champion), None)
    return ModelList(champion=champion, versions=[ModelVersionOut.of(v) for v in views])


@router.post(
    "/rollback",
    summary="Restore the previous champion",
    response_model=ModelVersionOut,
    responses={409: {"model": ErrorBody, "description": "No earlier champion."}},
)
async def rollback(state: State) -> Any:
    try:
        view = await run_in_threadpool(lambda: registration.rollback(db=state.db, settings=state.settings, by="http"))
    except registration.NothingToRollBackError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return ModelVersionOut.of(view)


@router.get(
    "/{version}",
    summary="Show a version: metadata, feature schema, reference distribution",
    response_model=ModelVersionDetail,
    responses={404: {"model": ErrorBody, "description": "Not registered."}},
)
async def show(state: State, version: str) -> Any:
    return ModelVersionDetail.of_detail(await _lookup(state, version))


@router.post(
    "/{version}/promote",
    summary="Make a version the champion (every process switches within REPORTSCORE_MODEL_REFRESH_S)",
    response_model=ModelVersionOut,
    responses={404: {"model": ErrorBody, "description": "Not registered."}},
)
async def promote(state: State, version: str) -> Any:
    try:
        view = await run_in_threadpool(
            lambda: registration.promote(db=state.db, settings=state.settings, version=version, by="http")
        )
    except registration.UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ModelVersionOut.of(view)


async def _lookup(state: AppState, version: str) -> registration.ModelVersionView:
    try:
        return await run_in_threadpool(
            lambda: registration.show_model(db=state.db, settings=state.settings, version=version)
        )
    except registration.UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
