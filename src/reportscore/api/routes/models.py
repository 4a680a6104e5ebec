"""Model registry over HTTP (admin): upload and register, list, show, promote, roll back."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from reportscore.api.auth import requires
from reportscore.api.deps import AppState, State
from reportscore.api.params import AwareIsoTime, utc
from reportscore.api.schemas.models import ModelList, ModelVersionDetail, ModelVersionOut, RemoteModelIn
from reportscore.api.schemas.shadow import ComparisonOut, ShadowList
from reportscore.api.schemas.tasks import ErrorBody, ValidationErrorBody
from reportscore.scoring import registration
from reportscore.scoring.store import StoreError
from reportscore.shadow import admin
from reportscore.shadow.compare import compare_with_champion
from reportscore.shadow.evidence import METRICS, EvidenceError, Requirement

REQUIREMENT_PATTERN = "^(" + "|".join(re.escape(m) for m in sorted(METRICS)) + r"):[0-9]*\.?[0-9]+%?$"
"""``require_better``: METRIC:CHANGE or METRIC:PERCENT% (what ``Requirement.parse`` reads), refused by validation."""

router = APIRouter(prefix="/models", tags=["models (admin)"], dependencies=[requires("admin")])


async def _save(upload: UploadFile, directory: Path, default_name: str) -> Path:
    name = Path(upload.filename or default_name).name or default_name
    target = directory / name
    with target.open("wb") as out:
        await run_in_threadpool(shutil.copyfileobj, upload.file, out)
    return target


def _examples(**examples: tuple[str, Any]) -> dict[str, Any]:
    """An OpenAPI response's JSON examples, from ``name=(summary, body)``."""
    found = {name.replace("_", " "): {"summary": summary, "value": body} for name, (summary, body) in examples.items()}
    return {"content": {"application/json": {"examples": found}}}


REGISTER_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "The body is not valid multipart/form-data.",
        **_examples(no_boundary=("No multipart boundary", {"detail": "Missing boundary in multipart."})),
    },
    409: {
        "model": ErrorBody,
        "description": "That version is already registered: versions are immutable, register a new one.",
        **_examples(
            version_exists=(
                "The version exists",
                {"detail": "reportscore-reference 1.0.0 is already registered; versions are immutable"},
            )
        ),
    },
    413: {
        "model": ErrorBody,
        "description": "The upload is larger than REPORTSCORE_MAX_BODY_BYTES (the whole multipart body counts).",
        **_examples(too_large=("Over the size limit", {"detail": "request body larger than 8388608 bytes"})),
    },
    422: {
        "model": ErrorBody | ValidationErrorBody,
        "description": "The artifact, schema or reference sample was rejected (``detail`` says why; the serving model "
        "is unchanged), or a form field is missing or invalid (FastAPI's validation errors).",
        **_examples(
            artifact_rejected=(
                "The artifact does not load as a model of its format",
                {
                    "detail": "artifact rejected: model.ubj: not a loadable XGBoost model (XGBoost's reason: "
                    "Invalid model format in: `model.ubj`.)"
                },
            ),
            unknown_type=(
                "The file name's suffix names no model format",
                {
                    "detail": "model.bin: unknown artifact type; expected .json/.ubj (XGBoost), .skops, .onnx, "
                    ".keras, .pkl/.joblib (with REPORTSCORE_TRUST_PICKLE=true)"
                },
            ),
            schema_rejected=(
                "The feature schema is not valid",
                {"detail": "feature schema rejected: feature schema is malformed: missing or wrong key 'features'"},
            ),
            invalid_field=(
                "A form field is invalid",
                {
                    "detail": [
                        {
                            "type": "string_pattern_mismatch",
                            "loc": ["body", "version"],
                            "msg": f"String should match pattern '{registration.VERSION_PATTERN.pattern}'",
                            "input": "1.1.0 beta",
                            "ctx": {"pattern": registration.VERSION_PATTERN.pattern},
                        }
                    ]
                },
            ),
        ),
    },
    503: {
        "model": ErrorBody,
        "description": "The model store (REPORTSCORE_MODEL_STORE_URL) did not answer; nothing was registered.",
        **_examples(
            store_unreachable=(
                "The model store is unreachable",
                {
                    "detail": "model store s3://models/reportscore (endpoint http://minio:9000): uploading "
                    "s3://models/reportscore/reportscore-reference/2.0.0 failed: ... "
                    "Check that the store is reachable from this process "
                    "(REPORTSCORE_MODEL_STORE_ENDPOINT_URL, REPORTSCORE_MODEL_STORE_REGION) and that the AWS "
                    "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) may read and write the bucket"
                },
            )
        ),
    },
}
"""How ``POST /models`` refuses an upload; nothing is registered and the serving model stays."""


@router.post(
    "",
    status_code=201,
    summary="Register a new model version (validated before anything changes)",
    response_model=ModelVersionOut,
    responses=REGISTER_REFUSALS,
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
            status = 409 if isinstance(exc, registration.VersionExistsError) else 422
            reason = str(exc).replace(f"{directory}/", "")  # name the uploaded file, not the server's copy
            raise HTTPException(status_code=status, detail=reason) from None
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
    return ModelVersionOut.of(view)


@router.post(
    "/remote",
    status_code=201,
    summary="Register a model served by a V2 (Open Inference Protocol) endpoint (validated like an upload)",
    response_model=ModelVersionOut,
    responses={
        409: REGISTER_REFUSALS[409],
        422: {
            "model": ErrorBody | ValidationErrorBody,
            "description": "The endpoint did not answer, or not with one finite score in 0..1 per row (``detail`` "
            "says why; nothing is registered), or a field is invalid.",
            **_examples(
                endpoint_down=(
                    "The endpoint does not answer",
                    {
                        "detail": "artifact rejected: ModelUnavailableError: remote model fraud at "
                        "http://mlserver:8080 unavailable after 3 tries: ConnectError: [Errno 111] Connection refused"
                    },
                )
            ),
        },
        503: REGISTER_REFUSALS[503],
    },
)
async def register_remote(state: State, body: RemoteModelIn) -> Any:
    try:
        view = await run_in_threadpool(
            lambda: registration.register_remote(
                db=state.db,
                settings=state.settings,
                url=body.url,
                version=body.version,
                output=body.output,
                output_column=body.output_column,
                input_name=body.input_name,
                by="http",
            )
        )
    except registration.RegistrationError as exc:
        status = 409 if isinstance(exc, registration.VersionExistsError) else 422
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
    "/compare",
    summary="Champion vs challenger on the live reports both scored: agreement, top-k overlap, histograms, and "
    "on reviewed reports ROC AUC, PR AUC, precision@k and Brier with 95% CIs and a verdict",
    response_model=ComparisonOut,
    responses={404: {"model": ErrorBody, "description": "No champion registered."}},
)
async def compare(
    state: State,
    challenger: Annotated[str, Query(description="The version to compare (a shadow, or an earlier champion)")],
    champion: Annotated[str | None, Query(description="Default: the current champion")] = None,
    since: Annotated[AwareIsoTime | None, Query(description="Scored at or after (ISO 8601 with offset)")] = None,
    until: Annotated[AwareIsoTime | None, Query(description="Scored before (ISO 8601 with offset)")] = None,
    abuse_type: Annotated[Literal["MSG", "PRF"] | None, Query(description="Only this abuse type")] = None,
) -> Any:
    """Times without a UTC offset, or numbers, are refused; times beyond the calendar's ends are clamped to them."""
    since = utc(since) if since is not None else None
    until = utc(until) if until is not None else None
    try:
        result = await run_in_threadpool(
            lambda: compare_with_champion(
                db=state.db,
                settings=state.settings,
                challenger=challenger,
                champion=champion,
                since=since,
                until=until,
                abuse_type=abuse_type,
            )
        )
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ComparisonOut(**result.as_dict())


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
    responses={
        404: {"model": ErrorBody, "description": "Not registered."},
        409: {"model": ErrorBody, "description": "``require_better`` was given and the evidence is not there."},
    },
)
async def promote(
    state: State,
    version: str,
    require_better: Annotated[
        str | None,
        Query(
            pattern=REQUIREMENT_PATTERN,
            description="Refuse unless the comparison with the champion shows this improvement: auc:0.01 or auc:5%",
        ),
    ] = None,
) -> Any:
    if require_better is not None:
        requirement = Requirement.parse(require_better)  # the pattern admits only what parses
        try:
            result = await run_in_threadpool(
                lambda: compare_with_champion(db=state.db, settings=state.settings, challenger=version)
            )
            requirement.check(result)
        except (LookupError, EvidenceError) as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
    try:
        view = await run_in_threadpool(
            lambda: registration.promote(db=state.db, settings=state.settings, version=version, by="http")
        )
    except registration.UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ModelVersionOut.of(view)


@router.post(
    "/{version}/shadow",
    summary="Score a version beside the champion, off the answer's path (every process follows within "
    "REPORTSCORE_MODEL_REFRESH_S)",
    response_model=ShadowList,
    responses={
        404: {"model": ErrorBody, "description": "Not registered."},
        409: {"model": ErrorBody, "description": "REPORTSCORE_MAX_SHADOWS shadows already run."},
    },
)
async def shadow(
    state: State,
    version: str,
    fraction: Annotated[float, Query(gt=0, le=1, description="Share of reports it scores")] = 1.0,
) -> Any:
    try:
        shadows = await run_in_threadpool(
            lambda: admin.start_shadow(
                db=state.db, settings=state.settings, version=version, fraction=fraction, by="http"
            )
        )
    except registration.UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except admin.ShadowLimitError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return ShadowList.of(shadows)


@router.delete(
    "/{version}/shadow",
    summary="Stop shadowing a version (its stored scores stay for comparisons)",
    response_model=ShadowList,
    responses={404: {"model": ErrorBody, "description": "Not a shadow."}},
)
async def stop_shadow(state: State, version: str) -> Any:
    def stop() -> list[Any] | None:
        if not admin.stop_shadow(db=state.db, settings=state.settings, version=version):
            return None
        return admin.list_shadows(db=state.db, settings=state.settings)

    shadows = await run_in_threadpool(stop)
    if shadows is None:
        raise HTTPException(status_code=404, detail=f"{version} is not a shadow")
    return ShadowList.of(shadows)


async def _lookup(state: AppState, version: str) -> registration.ModelVersionView:
    try:
        return await run_in_threadpool(
            lambda: registration.show_model(db=state.db, settings=state.settings, version=version)
        )
    except registration.UnknownVersionError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
