"""The Lambda context a handler gets when it is called outside Lambda (tests, local runs)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalContext:
    """The attributes of Lambda's context object that logging and metrics read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str = ""
    log_stream_name: str = ""

    @classmethod
    def make(cls, function_name: str = "") -> LocalContext:
        name = function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        return cls(
            function_name=name,
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:local:000000000000:function:{name}",
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0") or 0),
            aws_request_id=str(uuid.uuid4()),
        )

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000
