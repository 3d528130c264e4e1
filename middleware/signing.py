"""One versioned key ring signs secure cookies, XSRF-bearing cookies and session cookies.

The newest (or chosen) key signs; every key verifies, so secrets rotate without logging anyone
out. Values carry itsdangerous timestamps; a value dated in the future is refused (a forged or
replayed-from-a-broken-clock value), and ``max_age`` bounds how old a value may be.
Payloads are JSON (never pickle).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from itsdangerous import (
    BadData,
    BadPayload,
    BadSignature,
    BadTimeSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
)
from itsdangerous.encoding import base64_decode, base64_encode

__all__ = ["CLOCK_SKEW", "BadSignature", "KeyRing", "SecretSpec", "SignatureExpired"]

#: Seconds a signature's timestamp may lie ahead of this machine's clock (load-balanced
#: backends never agree exactly); anything further in the future is rejected as tampering.
CLOCK_SKEW = 60

Secret = str | bytes

# URLSafeSerializer only lends its payload codec (compact JSON, zlib if shorter, base64);
# the signing itself goes through KeyRing.sign so every key and the timestamp rules apply.
_PAYLOAD = URLSafeSerializer(b"unused-for-signing")


def _as_bytes(key: object) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise ValueError("a signing secret must be a non-empty str or bytes")
    return key


def _ordered_keys(secret: SecretSpec, key_version: int | None) -> tuple[bytes, ...]:
    """Normalise the accepted secret forms to a tuple of keys, signing key first."""
    if isinstance(secret, str | bytes):
        if key_version is not None:
            raise ValueError("key_version needs a dict of {version: secret}")
        return (_as_bytes(secret),)
    if isinstance(secret, Mapping):
        if not secret:
            raise ValueError("the secret dict is empty")
        version = max(secret) if key_version is None else key_version
        if version not in secret:
            raise ValueError(f"key_version {version!r} is not in the secret dict")
        others = sorted((v for v in secret if v != version), reverse=True)
        return tuple(_as_bytes(secret[v]) for v in [version, *others])
    if isinstance(secret, Sequence):
        if not secret:
            raise ValueError("the secret list is empty")
        if key_version is not None:
            raise ValueError("key_version needs a dict of {version: secret}")
        return tuple(_as_bytes(k) for k in secret)
    raise TypeError(f"unsupported secret type {type(secret).__name__}")


class KeyRing:
    """Versioned secrets: the newest key signs, every key verifies (rotation without logouts).

    ``secret`` is one key (str/bytes), a list or tuple (newest first) or Tornado's dict
    ``{version: key}`` where ``key_version`` picks the signing key (default: the highest).
    """

    __slots__ = ("_keys", "_signers")

    def __init__(self, secret: SecretSpec, key_version: int | None = None) -> None:
        if isinstance(secret, KeyRing):
            if key_version is not None:
                raise ValueError("cannot change key_version of an existing KeyRing")
            self._keys: tuple[bytes, ...] = secret._keys
        else:
            self._keys = _ordered_keys(secret, key_version)
        # Per-salt signer cache: configuration derived once, never per-request state.
        self._signers: dict[str, tuple[TimestampSigner, ...]] = {}

    @classmethod
    def coerce(cls, secret: SecretSpec, key_version: int | None = None) -> KeyRing:
        """Return ``secret`` unchanged if it already is a KeyRing, else build one."""
        if isinstance(secret, KeyRing) and key_version is None:
            return secret
        return cls(secret, key_version)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never show the secrets themselves
        return f"<KeyRing keys={len(self._keys)}>"

    def _signers_for(self, salt: str) -> tuple[TimestampSigner, ...]:
        signers = self._signers.get(salt)
        if signers is None:
            signers = tuple(
                TimestampSigner(key, salt=salt, digest_method=hashlib.sha256)
                for key in self._keys)
            self._signers[salt] = signers
        return signers

    def sign(self, value: str | bytes, *, salt: str) -> str:
        """Sign ``value`` (with a timestamp) using the signing key.

        The value travels URL-safe base64 encoded, so the result is cookie- and URL-safe ASCII
        whatever bytes were signed.
        """
        if isinstance(value, str):
            value = value.encode("utf-8")
        return self._signers_for(salt)[0].sign(base64_encode(value)).decode("ascii")

    def unsign(self, signed: str | bytes, *, salt: str, max_age: float | None = None
               ) -> tuple[bytes, bool]:
        """Verify ``signed`` with every key; return (value, signed_with_an_older_key).

        Raises ``BadSignature`` when tampered or dated in the future, ``SignatureExpired``
        (a subclass) when older than ``max_age`` seconds.
        """
        value, old_key = self._verify(signed, salt, max_age)
        try:
            return base64_decode(value), old_key
        except BadData as exc:  # only reachable with a valid signature: a leaked key
            raise BadSignature("signed value is not base64") from exc

    def _verify(self, signed: str | bytes, salt: str, max_age: float | None
                ) -> tuple[bytes, bool]:
        """Try the signing key first, then the older ones; check the timestamp's age."""
        error: BadSignature = BadSignature("signature does not match")
        for index, signer in enumerate(self._signers_for(salt)):
            try:
                value, signed_at = signer.unsign(signed, return_timestamp=True)
            except BadSignature as exc:
                error = exc
                continue
            _check_age(value, signed_at.timestamp(), max_age)
            return value, index > 0
        raise error

    def dumps(self, obj: Any, *, salt: str) -> str:
        """JSON-encode (never pickle), compress if shorter, timestamp and sign ``obj``."""
        return self._signers_for(salt)[0].sign(_PAYLOAD.dump_payload(obj)).decode("ascii")

    def loads(self, s: str | bytes, *, salt: str, max_age: float | None = None
              ) -> tuple[Any, bool]:
        """Reverse of :meth:`dumps`; same error contract as :meth:`unsign`."""
        payload, old_key = self._verify(s, salt, max_age)
        try:
            return _PAYLOAD.load_payload(payload), old_key
        except BadPayload as exc:  # signed by us yet undecodable: treat as forged
            raise BadSignature(f"undecodable signed payload: {exc}") from exc


#: Every form a ``secret`` setting may take.
SecretSpec = Secret | Sequence[Secret] | Mapping[int, Secret] | KeyRing


def _check_age(value: bytes, signed_at: float, max_age: float | None) -> None:
    age = time.time() - signed_at
    if age < -CLOCK_SKEW:
        raise BadTimeSignature(f"timestamp {-age:.0f}s in the future", payload=value)
    if max_age is not None and age > max_age:
        raise SignatureExpired(f"signature age {age:.0f}s > {max_age}s", payload=value)
