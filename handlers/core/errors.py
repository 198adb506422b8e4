"""Operational errors as data: each exception carries the fields a caller needs."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every operational error; `reason` is one line fit for a user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UsageError(PipelineError):
    """The command line asks for something that cannot mean anything (exit code 2)."""


class ConfigError(PipelineError):
    """A setting (environment variable or option) is missing or invalid."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class StorageError(PipelineError):
    """A storage operation failed; `transient` errors are worth retrying."""

    def __init__(self, operation: str, key: str, detail: str, *, transient: bool) -> None:
        super().__init__(f"{operation} {key!r} failed: {detail}")
        self.operation = operation
        self.key = key
        self.detail = detail
        self.transient = transient


class ObjectNotFound(StorageError):
    """The object does not exist (or vanished between event and read)."""

    def __init__(self, key: str) -> None:
        super().__init__("read", key, "no such object", transient=False)


class BucketNotFound(StorageError):
    """The bucket itself does not exist: a configuration error, never a skipped object."""

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(
            "read", key, f"bucket {bucket!r} does not exist (NoSuchBucket)", transient=False
        )
        self.bucket = bucket


class EventError(PipelineError):
    """A Lambda event does not have the shape the handler expects."""
