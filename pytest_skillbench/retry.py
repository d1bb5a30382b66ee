"""HTTP fault policy shared by every network client (judges and served students).

Which statuses are worth retrying, and how long a server asked us to wait.
"""

from __future__ import annotations

import email.utils
import time

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def is_retryable_status(code: int) -> bool:
    """The statuses above, and any other 5xx except 501 (gateways invent their own, e.g. 520-524)."""
    return code in RETRY_STATUSES or (code >= 500 and code != 501)


def parse_retry_after(headers) -> float | None:
    """``retry-after-ms`` (milliseconds) or ``retry-after`` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())
