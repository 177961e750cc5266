"""Which conditional requests an S3 endpoint really honours, probed once and remembered.

Servers that do not implement a condition mostly ignore its header instead of refusing it:
Ceph RGW 16 deletes an object whatever ``If-Match`` says. Trusting such a server would turn
every lost compare-and-swap into a silently lost update, so before the first conditional call
on an endpoint and bucket, one hidden object (``<prefix>/.persistkit-probe-<random>``, a name
no key encodes to) is written, tried with false and true conditions, and removed. The answers
are kept per endpoint and bucket for the life of the process; a call whose condition is not
honoured raises `ConditionNotHonouredError`.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from persistkit.core.errors import ConditionNotHonouredError, StoreUnavailableError

if TYPE_CHECKING:
    from persistkit.core._s3_objects import S3ObjectStore

PROBE_PREFIX = ".persistkit-probe-"
_WRONG_ETAG = "0" * 32

_cache: dict[tuple[str, str], S3Capabilities] = {}
_cache_lock = threading.Lock()

_NAMES = {
    "if_none_match_put": "If-None-Match: * on PUT (create only if absent)",
    "if_match_put": "If-Match on PUT (compare-and-swap)",
    "if_match_delete": "If-Match on DELETE (delete only an unchanged object)",
}


@dataclass(frozen=True, slots=True)
class S3Capabilities:
    """The conditions one S3 endpoint and bucket were seen to honour.

    Attributes:
        endpoint_url: the server probed.
        bucket: the bucket probed.
        if_none_match_put: a create-only PUT fails when the object exists.
        if_match_put: a PUT with a stale ``If-Match`` fails and changes nothing.
        if_match_delete: a DELETE with a stale ``If-Match`` fails and removes nothing.
    """

    endpoint_url: str
    bucket: str
    if_none_match_put: bool
    if_match_put: bool
    if_match_delete: bool

    def require(self, condition: str) -> None:
        """Raise `ConditionNotHonouredError` unless ``condition`` is honoured."""
        if not getattr(self, condition):
            raise ConditionNotHonouredError(
                errno.EOPNOTSUPP,
                f"this server ignores {_NAMES[condition]}; relying on it would lose updates, "
                "so the call is refused",
                f"{self.endpoint_url} bucket {self.bucket}",
            )


def forget() -> None:
    """Drop every remembered answer (after a server was upgraded or replaced)."""
    with _cache_lock:
        _cache.clear()


def capabilities_of(store: S3ObjectStore, conditional: Any, plain: Any) -> S3Capabilities:
    """Return the cached answer for ``store``'s endpoint and bucket, probing it the first time."""
    cache_key = (store.endpoint_url, store.bucket)
    found = _cache.get(cache_key)
    if found is not None:
        return found
    with _cache_lock:
        found = _cache.get(cache_key)
        if found is None:
            found = _cache[cache_key] = probe(store, conditional, plain)
    return found


def probe(store: S3ObjectStore, conditional: Any, plain: Any) -> S3Capabilities:
    """Try each condition on a hidden object: a false condition must be refused, a true one kept.

    Costs ten requests at most, once per endpoint and bucket per process.

    Raises:
        StoreUnavailableError: the server could not be reached or failed (nothing is cached).
    """
    bucket = store.bucket
    name = f"{store.prefix}/{PROBE_PREFIX}{secrets.token_hex(8)}".lstrip("/")
    try:
        plain.put_object(Bucket=bucket, Key=name, Body=b"probe")
        if_none_match = _refused(
            lambda: conditional.put_object(Bucket=bucket, Key=name, Body=b"x", IfNoneMatch="*")
        )
        stale_put_refused = _refused(
            lambda: conditional.put_object(
                Bucket=bucket, Key=name, Body=b"stale", IfMatch=_WRONG_ETAG
            )
        )
        etag = plain.head_object(Bucket=bucket, Key=name)["ETag"].strip('"')
        fresh_put_kept = not _refused(
            lambda: conditional.put_object(Bucket=bucket, Key=name, Body=b"fresh", IfMatch=etag)
        )
        stale_delete_refused = _refused(
            lambda: conditional.delete_object(Bucket=bucket, Key=name, IfMatch=_WRONG_ETAG)
        ) and _exists(plain, bucket, name)
        etag = (
            plain.head_object(Bucket=bucket, Key=name)["ETag"].strip('"')
            if _exists(plain, bucket, name)
            else _WRONG_ETAG
        )
        fresh_delete_kept = not _refused(
            lambda: conditional.delete_object(Bucket=bucket, Key=name, IfMatch=etag)
        ) and not _exists(plain, bucket, name)
    except StoreUnavailableError:
        raise
    except Exception as error:
        raise StoreUnavailableError(
            errno.EIO,
            f"probing which conditions the server honours failed: {error}",
            f"{store.endpoint_url} bucket {bucket}",
        ) from error
    finally:
        # Best effort: a probe object left by a failure is hidden from listings anyway.
        with contextlib.suppress(Exception):
            plain.delete_object(Bucket=bucket, Key=name)
    return S3Capabilities(
        endpoint_url=store.endpoint_url,
        bucket=bucket,
        if_none_match_put=if_none_match,
        if_match_put=stale_put_refused and fresh_put_kept,
        if_match_delete=stale_delete_refused and fresh_delete_kept,
    )


def _refused(call: Any) -> bool:
    """Run a request; True when the server refused it (412, or 400/501 for an unknown header)."""
    try:
        call()
    except Exception as error:
        response = getattr(error, "response", None)
        status = (
            response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(response, dict)
            else None
        )
        if status in (400, 412, 501):
            return True
        raise
    return False


def _exists(plain: Any, bucket: str, name: str) -> bool:
    try:
        plain.head_object(Bucket=bucket, Key=name)
    except Exception as error:
        response = getattr(error, "response", None)
        if (
            isinstance(response, dict)
            and response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
        ):
            return False
        raise
    return True
