"""How an AWS call of the ecs executor failed: one clear message each, and whether to retry.

Refused or missing credentials and a missing region are not retried (a retry cannot fix them);
throttling and AWS's own errors are.
"""

from __future__ import annotations

from executors.base import ExecutorError

__all__ = ["aws_error", "error_code", "error_message"]

# Error codes meaning the credentials themselves were refused (a retry cannot help).
_AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
    }
)


def _error(exc: BaseException) -> dict[str, object]:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return error if isinstance(error, dict) else {}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("AccessDeniedException"), else ""."""
    return str(_error(exc).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """AWS's message for the error, else the exception's text."""
    return str(_error(exc).get("Message", "")) or str(exc)


def aws_error(exc: BaseException, doing: str, where: str) -> ExecutorError:
    """One clear message per way an AWS call fails; credentials problems are not retried."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ExecutorError(
            f"ecs: no AWS credentials on this agent ({exc}); provide them the way boto3 looks "
            "for them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or "
            "task role",
            retryable=False,
        )
    if isinstance(exc, NoRegionError):
        return ExecutorError(
            "ecs: no AWS region: set the job's region key or AWS_REGION on the agent",
            retryable=False,
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return ExecutorError(f"ecs: cannot connect to {where} while {doing}: {exc}")
    if isinstance(exc, ReadTimeoutError):
        return ExecutorError(f"ecs: {where} did not answer in time while {doing}")
    if isinstance(exc, ClientError):
        code, message = error_code(exc), error_message(exc)
        if code in _AUTH_CODES:
            return ExecutorError(
                f"ecs: AWS refused the credentials while {doing}: {code}: {message}",
                retryable=False,
            )
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _DENIED_CODES or status in (401, 403):
            return ExecutorError(
                f"ecs: access denied while {doing}: {code}: {message}", retryable=False
            )
        transient = code in _TRANSIENT_CODES or status >= 500
        return ExecutorError(f"ecs: {doing} failed: {code}: {message}", retryable=transient)
    return ExecutorError(f"ecs: {doing} failed: {exc}")
