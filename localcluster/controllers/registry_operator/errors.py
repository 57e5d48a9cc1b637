"""Errors of a sync. Permanent errors (StorageNotConfigured, VerificationFailed) are not retried and
surface as Degraded=True at once; everything else is transient (Progressing=True)."""
from __future__ import annotations


class SyncError(Exception):
    """A transient error: the message is what `Unable to apply resources: %s` shows."""

    permanent = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermanentError(SyncError):
    permanent = True

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


STORAGE_NOT_CONFIGURED = "storage backend not configured"


def storage_not_configured() -> PermanentError:
    return PermanentError("StorageNotConfigured", STORAGE_NOT_CONFIGURED)


def verification_failed(what: str) -> PermanentError:
    return PermanentError("VerificationFailed", f"unable to complete resource: {what}")
