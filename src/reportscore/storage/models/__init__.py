"""ORM models (tables only; API schemas live in ``reportscore.api.schemas``)."""

from reportscore.storage.models.api_keys import ApiKey
from reportscore.storage.models.base import Base
from reportscore.storage.models.callbacks import CallbackDelivery, CallbackStatus
from reportscore.storage.models.exports import ExportWatermark
from reportscore.storage.models.jobs import Job, JobStatus
from reportscore.storage.models.model_versions import ModelPromotion, ModelVersion
from reportscore.storage.models.moderation import ReportFeedback, ReportReasons
from reportscore.storage.models.quality import QualityBin, QualityLabelDelay
from reportscore.storage.models.reports import Report, ReportScore

__all__ = [
    "ApiKey",
    "Base",
    "CallbackDelivery",
    "CallbackStatus",
    "ExportWatermark",
    "Job",
    "JobStatus",
    "ModelPromotion",
    "ModelVersion",
    "QualityBin",
    "QualityLabelDelay",
    "Report",
    "ReportFeedback",
    "ReportReasons",
    "ReportScore",
]
