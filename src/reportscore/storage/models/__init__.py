"""ORM models (tables only; API schemas live in ``reportscore.api.schemas``)."""

from reportscore.storage.models.api_keys import ApiKey
from reportscore.storage.models.base import Base
from reportscore.storage.models.callbacks import CallbackDelivery, CallbackStatus
from reportscore.storage.models.drift import DriftCount
from reportscore.storage.models.exports import ExportWatermark
from reportscore.storage.models.jobs import Job, JobStatus
from reportscore.storage.models.model_versions import ModelPromotion, ModelVersion
from reportscore.storage.models.moderation import ReportFeedback, ReportReasons
from reportscore.storage.models.quality import QualityBin, QualityLabelDelay
from reportscore.storage.models.reports import Report, ReportScore
from reportscore.storage.models.retention import *  # noqa: F403  (indexes only)
from reportscore.storage.models.shadow import ModelShadow, ShadowScore

__all__ = [
    "ApiKey",
    "Base",
    "CallbackDelivery",
    "CallbackStatus",
    "DriftCount",
    "ExportWatermark",
    "Job",
    "JobStatus",
    "ModelPromotion",
    "ModelShadow",
    "ModelVersion",
    "QualityBin",
    "QualityLabelDelay",
    "Report",
    "ReportFeedback",
    "ReportReasons",
    "ReportScore",
    "ShadowScore",
]
