"""Callback signatures: HMAC-SHA256 over ``f"{timestamp}.{body}"`` with the deployment's callback secret.

The receiver snippet of docs/callbacks.md is the receiving side of :func:`sign`; tests verify real deliveries with it.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Reportscore-Timestamp"
"""Unix time in whole seconds when the delivery was signed."""
SIGNATURE_HEADER = "X-Reportscore-Signature"
"""``sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">``."""
TASK_ID_HEADER = "X-Reportscore-Task-Id"
"""The task id (the receiver's de-duplication key: a callback may arrive more than once)."""
ATTEMPT_HEADER = "X-Reportscore-Attempt"
"""1 for the first delivery, 2 for the first retry, …"""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def sign(*, secret: str, timestamp: int, body: bytes, task_id: str, attempt: int) -> dict[str, str]:
    """The headers of one delivery."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        TASK_ID_HEADER: task_id,
        ATTEMPT_HEADER: str(attempt),
    }
