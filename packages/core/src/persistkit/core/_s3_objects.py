"""The object store on an S3-compatible server, through boto3 (the ``s3`` extra).

boto3 is imported when the first `S3ObjectStore` is made, never before. What the servers
taught (measured on SeaweedFS 4.48, Ceph RGW 16 and AWS's documentation), and what this
module does about it:

- A conditional write answered with a 5xx, a 409 (AWS: ``ConditionalRequestConflict``) or a
  dropped connection may or may not have been applied. Every write carries a random writer id
  in its metadata (``x-amz-meta-persistkit-writer``); the call re-reads the object (``HEAD``)
  and settles: our id is there, so it landed; the object is as the condition expected, so it
  did not and is sent again (with the same id); anything else cannot be told apart and raises
  `OutcomeUnknownError`. A 412 answered to a resend is settled the same way, since the first
  send may have landed late.
- boto3's automatic retries are off for conditional calls (a retried winner comes back 412
  and would look like a loser); the settling above replaces them. Plain reads and
  unconditional writes keep boto3's standard retries: repeating them changes nothing.
- ETags are the content's MD5 on every server here, so equal bytes have equal versions; the
  docs tell packages to keep a version inside values that can return to an earlier state.
- ETags are sent unquoted (Ceph RGW rejects quoted ones; SeaweedFS and AWS take both).
- A server that ignores a condition (Ceph RGW deletes whatever ``If-Match`` says) is found by
  a probe before the first conditional call (`_s3_capabilities`), and the calls that need the
  ignored condition raise `ConditionNotHonouredError` instead of losing updates.
"""

from __future__ import annotations

import errno
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from persistkit.core import _object_keys, _s3_capabilities
from persistkit.core._object_store import (
    MAX_PAGE_SIZE,
    ObjectStore,
    StoredObject,
    check_page_size,
)
from persistkit.core.errors import (
    ConflictError,
    InvalidArgumentError,
    InvalidNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    OutcomeUnknownError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from persistkit.core._s3_capabilities import S3Capabilities

WRITER_META = "persistkit-writer"
_SEGMENT_MAX = 255
_AMBIGUOUS_STATUS = frozenset({409, 500, 502, 503, 504})


def _import_boto3() -> Any:
    try:
        import boto3  # noqa: PLC0415 - the s3 extra is optional: imported on first use only
    except ImportError as error:
        raise ImportError(
            "s3:// locations need boto3: pip install 'persistkit-core[s3]'"
        ) from error
    return boto3


def split_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into the bucket and the prefix (without slashes at the ends).

    Raises:
        InvalidArgumentError: not an ``s3://`` URL, no bucket, or a prefix a server would
            read as a path (empty, ``.`` or ``..`` segments, a backslash, a segment over
            255 bytes).
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidArgumentError(f"not an s3://bucket/prefix URL: {url!r}")
    if parsed.query or parsed.fragment:
        raise InvalidArgumentError(f"an s3:// URL takes no query or fragment: {url!r}")
    prefix = parsed.path.strip("/")
    check_prefix(prefix)
    return parsed.netloc, prefix


def check_prefix(prefix: str) -> None:
    """Refuse a location prefix whose segments a path-minded server would rewrite."""
    if not prefix:
        return
    for segment in prefix.split("/"):
        if segment in ("", ".", "..") or "\\" in segment or "\0" in segment:
            raise InvalidArgumentError(
                f"the prefix {prefix!r} has a segment a server would treat as a path: {segment!r}"
            )
        if len(segment.encode()) > _SEGMENT_MAX:
            raise InvalidArgumentError(f"a prefix segment is over {_SEGMENT_MAX} bytes")


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket under a prefix, with create-only writes and compare-and-swap.

    The endpoint, region and credentials come from the usual AWS places (``AWS_ENDPOINT_URL``
    or ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_PROFILE``, ``~/.aws/config``) unless given here.

    Args:
        bucket: the bucket (it must exist).
        prefix: the folder-like prefix the objects live under ("" for the whole bucket).
        endpoint_url: the server, e.g. ``http://127.0.0.1:8333``.
        region: the region to sign requests for.
        access_key: with ``secret_key``, the credentials to use.
        secret_key: see ``access_key``.
        session: a ``boto3.session.Session`` to make the clients from (profiles, roles).
        settle_attempts: how many times one conditional call may be sent before its outcome
            is declared unknown.
        retries: boto3's attempts for reads and unconditional writes.

    Example:
        >>> url = "http://127.0.0.1:8333"
        >>> store = S3ObjectStore("jobs", "run-7", endpoint_url=url)  # doctest: +SKIP
        >>> store.put_if_absent("task/1", b"{}")  # doctest: +SKIP
        '99914b932bd37a50b983c5e7c90ae93b'
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session: Any = None,
        settle_attempts: int = 4,
        retries: int = 5,
    ) -> None:
        prefix = prefix.strip("/")
        check_prefix(prefix)
        if settle_attempts < 1:
            raise InvalidArgumentError("settle_attempts must be at least 1")
        boto3 = _import_boto3()
        from botocore.config import Config  # noqa: PLC0415 - part of the optional extra

        if session is None:
            session = boto3.session.Session(
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                region_name=region,
            )
        options: dict[str, Any] = {"endpoint_url": endpoint_url}
        if region is not None:
            options["region_name"] = region
        self.bucket = bucket
        self.prefix = prefix
        self._base = f"{prefix}/" if prefix else ""
        self._room = _object_keys.MAX_NAME_BYTES - len(self._base.encode())
        self._settle_attempts = settle_attempts
        self._plain = session.client(
            "s3",
            config=Config(retries={"mode": "standard", "total_max_attempts": retries}),
            **options,
        )
        self._conditional = session.client(
            "s3",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
            **options,
        )
        self.endpoint_url: str = self._plain.meta.endpoint_url

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3ObjectStore:
        """Open ``s3://bucket/prefix``; ``options`` are those of the constructor."""
        bucket, prefix = split_url(url)
        return cls(bucket, prefix, **options)

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.location!r}, endpoint_url={self.endpoint_url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        for client in (self._plain, self._conditional):
            client.close()

    def capabilities(self) -> S3Capabilities:
        """Which conditions this endpoint and bucket honour (probed once per process).

        The probe writes and removes one hidden object under the prefix; see
        `_s3_capabilities.probe`.
        """
        return _s3_capabilities.capabilities_of(self, self._conditional, self._plain)

    def _name(self, key: str) -> str:
        return self._base + _object_keys.object_name(key, room=self._room)

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    # -- reads and unconditional writes -------------------------------------------------

    def get(self, key: str) -> StoredObject:
        """Read a whole object and its version (one GET)."""
        name = self._name(key)
        try:
            response = self._plain.get_object(Bucket=self.bucket, Key=name)
            data = response["Body"].read()
        except Exception as error:
            self._raise(error, key)
        return StoredObject(data, _unquote(response["ETag"]))

    def exists(self, key: str) -> bool:
        """Tell whether an object has ``key`` (one HEAD: the object is not downloaded)."""
        return self.head(key) is not None

    def head(self, key: str) -> tuple[str, str | None] | None:
        """Return an object's version and writer id, or None if it does not exist (one HEAD)."""
        try:
            response = self._plain.head_object(Bucket=self.bucket, Key=self._name(key))
        except Exception as error:
            if _status(error) == 404:
                return None
            self._raise(error, key)
        return _unquote(response["ETag"]), response.get("Metadata", {}).get(WRITER_META)

    def put(self, key: str, data: bytes) -> str:
        """Replace an object unconditionally (one PUT; retried by boto3 if it fails)."""
        name = self._name(key)
        try:
            response = self._plain.put_object(
                Bucket=self.bucket, Key=name, Body=bytes(data), Metadata=_writer_meta()
            )
        except Exception as error:
            self._raise(error, key)
        return _unquote(response["ETag"])

    def delete(self, key: str) -> None:
        """Remove an object if it exists (one DELETE)."""
        name = self._name(key)
        try:
            self._plain.delete_object(Bucket=self.bucket, Key=name)
        except Exception as error:
            if _status(error) != 404:
                self._raise(error, key)

    def list(
        self, prefix: str = "", *, start_after: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[str]:
        """Yield the keys starting with ``prefix``: one LIST request per ``page_size`` objects."""
        check_page_size(page_size)
        wanted = self._base + _object_keys.name_prefix(prefix)
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": wanted, "MaxKeys": page_size}
        if start_after is not None:
            request["StartAfter"] = self._base + _object_keys.name_prefix(start_after)
        while True:
            try:
                page = self._plain.list_objects_v2(**request)
            except Exception as error:
                self._raise(error, prefix)
            for entry in page.get("Contents", ()):
                key = _object_keys.key_of(entry["Key"][len(self._base) :])
                if key is not None:
                    yield key
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request.pop("StartAfter", None)
            request["ContinuationToken"] = token

    # -- conditional writes --------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create an object only if absent (``If-None-Match: *``); usually one PUT."""
        name = self._name(key)
        self.capabilities().require("if_none_match_put")
        writer = _writer_meta()
        body = bytes(data)

        def send() -> str:
            response = self._conditional.put_object(
                Bucket=self.bucket, Key=name, Body=body, Metadata=writer, IfNoneMatch="*"
            )
            return _unquote(response["ETag"])

        def settle() -> _Outcome:
            found = self.head(key)
            if found is None:
                return _NOT_APPLIED
            if found[1] == writer[WRITER_META]:
                return _Outcome("applied", found[0])
            # Another writer's object: ours cannot land any more. (Ours landing first and
            # being deleted and re-created by another writer within these seconds is the
            # one history this reads wrongly; the docs say so.)
            return _LOST

        def lost() -> Exception:
            return ObjectExistsError(errno.EEXIST, "object exists", key)

        return self._conditional_call(key, send, settle, lost)

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        """Replace an object only if it has ``version`` (``If-Match``); usually one PUT."""
        name = self._name(key)
        self.capabilities().require("if_match_put")
        writer = _writer_meta()
        body = bytes(data)

        def send() -> str:
            response = self._conditional.put_object(
                Bucket=self.bucket, Key=name, Body=body, Metadata=writer, IfMatch=version
            )
            return _unquote(response["ETag"])

        def settle() -> _Outcome:
            found = self.head(key)
            if found is not None and found[1] == writer[WRITER_META]:
                return _Outcome("applied", found[0])
            if found is not None and found[0] == version:
                return _NOT_APPLIED
            return _UNKNOWN  # ours may have landed and been replaced since

        def lost() -> Exception:
            return ConflictError(f"{key!r} is no longer at version {version}")

        return self._conditional_call(key, send, settle, lost)

    def delete_if_match(self, key: str, version: str) -> None:
        """Remove an object only if it has ``version`` (``If-Match``); usually one DELETE."""
        name = self._name(key)
        self.capabilities().require("if_match_delete")

        def send() -> str:
            self._conditional.delete_object(Bucket=self.bucket, Key=name, IfMatch=version)
            return ""

        def settle() -> _Outcome:
            found = self.head(key)
            if found is None:
                return _Outcome("applied", "")  # the version named is gone, as asked
            if found[0] == version:
                return _NOT_APPLIED
            return _UNKNOWN  # ours may have removed it and another writer re-created it

        def lost() -> Exception:
            return ConflictError(f"{key!r} is no longer at version {version}")

        self._conditional_call(key, send, settle, lost)

    def _conditional_call(
        self,
        key: str,
        send: Callable[[], str],
        settle: Callable[[], _Outcome],
        lost: Callable[[], Exception],
    ) -> str:
        """Send a conditional request until its outcome is known.

        A refusal (412, or 404 for a missing object) of the first send is a lost condition.
        After a failure that leaves the outcome open (5xx, 409, no answer), and after a
        refusal of a resend (the earlier send may have landed late), ``settle`` re-reads the
        object and decides: applied, lost, unknown, or not applied (then the same request,
        with the same writer id, is sent again, at most ``settle_attempts`` sends in all).
        """
        sent_before = False
        delay = 0.05
        cause: BaseException | None = None
        for _ in range(self._settle_attempts):
            try:
                return send()
            except Exception as error:
                status = _status(error)
                refused = status == 412 or (status == 404 and _code(error) == "NoSuchKey")
                if refused and not sent_before:
                    raise lost() from None
                if not refused and status not in _AMBIGUOUS_STATUS and not _transport(error):
                    self._raise(error, key)
                sent_before, cause = True, error
            try:
                outcome = settle()
            except StoreUnavailableError as unreachable:
                cause = unreachable
            else:
                if outcome.state == "applied":
                    return outcome.version
                if outcome.state == "lost":
                    raise lost() from cause
                if outcome.state == "unknown":
                    raise OutcomeUnknownError(
                        errno.EIO,
                        f"the server failed ({cause}) and the object changed since: whether "
                        "this write landed cannot be told",
                        self._where(key),
                    ) from cause
            time.sleep(delay)
            delay = min(delay * 4, 2.0)
        raise OutcomeUnknownError(
            errno.EIO,
            f"sent {self._settle_attempts} times without a clear answer ({cause})",
            self._where(key),
        ) from cause

    def _raise(self, error: BaseException, key: str) -> NoReturn:
        translated = translate_error(error, self._where(key), key)
        if translated is error:
            raise error
        raise translated from error


class _Outcome:
    """What re-reading an object says about a conditional request sent before."""

    __slots__ = ("state", "version")

    def __init__(self, state: str, version: str = "") -> None:
        self.state = state
        self.version = version


_NOT_APPLIED = _Outcome("not applied")
_LOST = _Outcome("lost")
_UNKNOWN = _Outcome("unknown")


def _unquote(etag: str) -> str:
    return etag.strip('"')


def _writer_meta() -> dict[str, str]:
    return {WRITER_META: secrets.token_hex(16)}


def _transport(error: BaseException) -> bool:
    """Tell whether ``error`` is a failed connection or a lost reply (not a refused request)."""
    from botocore.exceptions import (  # noqa: PLC0415 - part of the optional extra
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import HTTPClientError  # noqa: PLC0415 - as above

    return isinstance(error, (BotoConnectionError, HTTPClientError))


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _unanswered(error: BaseException, where: str) -> Exception:
    """Map a failure that got no answer from the server."""
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415 - part of the optional extra

    if _transport(error):
        return StoreUnavailableError(errno.EIO, f"cannot reach the store: {error}", where)
    if isinstance(error, BotoCoreError):  # bad parameters and the like: the caller's error
        return InvalidArgumentError(f"boto3 refused the request: {error}")
    return error if isinstance(error, Exception) else RuntimeError(str(error))


def translate_error(error: BaseException, where: str, key: str) -> Exception:
    """Map a boto3/botocore failure to persistkit's typed errors."""
    status, code = _status(error), _code(error)
    if status is None:
        return _unanswered(error, where)
    if code in ("NoSuchKey", "404") and status == 404:
        return ObjectNotFoundError(errno.ENOENT, "no such object", key)
    if code == "KeyTooLongError":
        return InvalidNameError(f"the server says the key is too long for it: {key[:40]!r}...")
    if status >= 500:
        return StoreUnavailableError(errno.EIO, f"the server failed: {code} ({status})", where)
    number = {403: errno.EACCES, 404: errno.ENOENT}.get(status, errno.EIO)
    return ObjectStoreError(number, f"{code} ({status}): {error}", where)
