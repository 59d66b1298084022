"""Why a provider stream failed, as one stable vocabulary.

Every failure the upstream reader can observe is reduced to a
:class:`FailureReason` before it reaches the failover policy. The enum values
are stable lower-case strings: they are written into the event log, used as
metric labels and shown in the UI, so renaming one is a breaking change.

The helpers here answer the questions the policy asks about a failure:

* :func:`is_account_level` — does the failure condemn the *account* (wrong
  credentials, expired, at its connection limit, HTTP 401/403) rather than the
  one stream? Then every other stream of that account is skipped for the
  rest of the failover round: trying them would fail the same way and burn
  the two-second budget.
* :func:`is_transient` — is it the kind of failure (a reset, a stall, a live
  stream that simply ended) after which reconnecting to the *same* stream is
  a sensible last resort?
  Content failures (:data:`CONTENT_REASONS`) are not: a provider that shows a
  black picture shows it again on a new connection.
* :func:`counts_against_stream` — should the stream's circuit breaker hear
  about it? An account that is merely full says nothing about the stream.

It also translates the lower layers' vocabulary into reasons, once, at the
boundary: :func:`reason_for_http_status` for a non-2xx answer and
:func:`reason_for_error` for the exceptions of :mod:`streamforge.errors`.
:func:`safe_detail` makes a free-text detail fit for the event log (short, one
line, no credentials even if a URL slipped in).
"""

from __future__ import annotations

import re
from enum import StrEnum

from streamforge.errors import (
    AccountExpiredError,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamingError,
)


class FailureReason(StrEnum):
    """Why an upstream attempt failed. Values are stable identifiers."""

    CONNECTION_ERROR = "connection_error"
    """Refused, DNS failure, reset or TLS failure."""
    CONNECT_TIMEOUT = "connect_timeout"
    """No TCP/TLS connection within the connect timeout."""
    HEADER_TIMEOUT = "header_timeout"
    """Connected, but no response headers within the header timeout."""
    HTTP_ERROR = "http_error"
    """A non-2xx status that is not account-level (404, 5xx …); code in the detail."""
    INVALID_CONTENT = "invalid_content"
    """HTTP 200 but HTML, text, an empty body or bytes that are not MPEG-TS."""
    STALL = "stall"
    """The connection stayed open but no bytes arrived within the stall timeout."""
    END_OF_STREAM = "end_of_stream"
    """The provider closed a live stream (EOF)."""
    READ_ERROR = "read_error"
    """The connection broke while reading the body."""
    CREDENTIAL_ERROR = "credential_error"
    """Wrong credentials, HTTP 401/403, or a password that cannot be decrypted."""
    ACCOUNT_LIMIT = "account_limit"
    """The account has no free connection (ours or the provider's count)."""
    ACCOUNT_INACTIVE = "account_inactive"
    """The account is expired, disabled or banned."""
    PROBE_TIMEOUT = "probe_timeout"
    """An upgrade probe did not deliver enough valid MPEG-TS within its timeout."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """A round ran out of time with this attempt pending for less than the hedge delay."""
    HUNG = "hung"
    """The attempt delivered no video within the hedge delay and was closed: another
    attempt won the round, or the round ran out of time (counts against the stream)."""
    BEHIND_LIVE = "behind_live"
    """Valid MPEG-TS, but its media time fell more than the live lag limit behind the
    wall clock (a stall with a clock, a drip, a provider slower than real time)."""
    BLACK_PICTURE = "black_picture"
    """The picture stayed black for the black threshold."""
    FROZEN_PICTURE = "frozen_picture"
    """The picture did not change (a freeze or a static slate) for the frozen threshold."""
    SILENT_AUDIO = "silent_audio"
    """The sound stayed below about -60 dBFS for the silence threshold."""
    NO_VIDEO = "no_video"
    """The PMT lists video but none of its packets arrive."""
    NO_AUDIO = "no_audio"
    """The PMT lists audio but none of its packets arrive."""
    UNDECODABLE = "undecodable"
    """The video's keyframes failed to decode over a window."""


_ACCOUNT_LEVEL = frozenset(
    {
        FailureReason.CREDENTIAL_ERROR,
        FailureReason.ACCOUNT_LIMIT,
        FailureReason.ACCOUNT_INACTIVE,
    }
)
_ACCOUNT_LEVEL_STATUS = frozenset({401, 403})
_TRANSIENT = frozenset(
    {
        FailureReason.CONNECTION_ERROR,
        FailureReason.STALL,
        FailureReason.END_OF_STREAM,
        FailureReason.READ_ERROR,
        FailureReason.BEHIND_LIVE,
    }
)
#: The reasons judged from the media itself (the stream still sends valid MPEG-TS).
CONTENT_REASONS = frozenset(
    {
        FailureReason.BLACK_PICTURE,
        FailureReason.FROZEN_PICTURE,
        FailureReason.SILENT_AUDIO,
        FailureReason.NO_VIDEO,
        FailureReason.NO_AUDIO,
        FailureReason.UNDECODABLE,
    }
)
_NOT_THE_STREAMS_FAULT = frozenset({FailureReason.ACCOUNT_LIMIT, FailureReason.BUDGET_EXCEEDED})


def is_account_level(reason: FailureReason, http_status: int | None = None) -> bool:
    """True when the failure is the account's, so its other streams would fail too.

    Credential errors, an inactive account and a full account are always
    account-level; so is an HTTP 401 or 403 whatever reason it was filed under.
    """
    if reason in _ACCOUNT_LEVEL:
        return True
    return http_status in _ACCOUNT_LEVEL_STATUS


def is_transient(reason: FailureReason) -> bool:
    """True for failures after which reconnecting to the same stream may work.

    Live streams end on token expiry and encoder restarts, connections reset,
    a connection that fell behind live may be a slow route; a black or frozen
    picture (the provider's content, not the connection), a timeout, an error
    status or a ban page, however, will not fix itself within a failover budget.
    """
    return reason in _TRANSIENT


def counts_against_stream(reason: FailureReason) -> bool:
    """True when the stream's circuit breaker should count this failure.

    A full account and a round that ran out of time say nothing about the
    stream itself; every other failure does.
    """
    return reason not in _NOT_THE_STREAMS_FAULT


def reason_for_http_status(status: int) -> FailureReason:
    """The reason for a non-2xx answer to a stream request.

    401/403 are credential errors (panels answer them for wrong or expired
    credentials); everything else is a plain HTTP error whose code belongs in
    the detail.
    """
    if status in _ACCOUNT_LEVEL_STATUS:
        return FailureReason.CREDENTIAL_ERROR
    return FailureReason.HTTP_ERROR


def reason_for_error(error: ProviderError) -> FailureReason:
    """Translate one of StreamForge's provider exceptions into a reason."""
    if isinstance(error, ProviderHTTPError):
        return reason_for_http_status(error.status)
    if isinstance(error, ProviderUnreachable):
        return FailureReason.CONNECTION_ERROR
    if isinstance(error, ProviderTimeout):
        return FailureReason.HEADER_TIMEOUT
    if isinstance(error, ProviderAuthError):
        return FailureReason.CREDENTIAL_ERROR
    if isinstance(error, AccountExpiredError):
        return FailureReason.ACCOUNT_INACTIVE
    if isinstance(error, ProviderBadResponse):
        return FailureReason.INVALID_CONTENT
    return FailureReason.CONNECTION_ERROR


_MAX_DETAIL = 300
_LIVE_PATH = re.compile(r"/(live|movie|series|timeshift)/[^/\s]+/[^/\s]+/", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"\b(password|passwd|pass|username|token)=[^&\s]*", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def safe_detail(detail: str) -> str:
    """One short line fit for the event log, with Xtream credentials redacted.

    The reader is expected never to put a URL with credentials into a detail;
    this is the last line of defence: ``/live/USER/PASS/`` path segments and
    ``password=``/``username=``/``token=`` query values are replaced by ``***``.
    """
    text = _LIVE_PATH.sub(lambda m: f"/{m.group(1)}/***/***/", detail)
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 1] + "…"
    return text


class UpstreamFailure(StreamingError):
    """Why an upstream stopped. ``detail`` is one line without credentials."""

    def __init__(self, reason: FailureReason, detail: str, status: int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status
