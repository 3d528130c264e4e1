"""One versioned key ring signs secure cookies, XSRF-bearing cookies and session cookies.

The newest (or chosen) key signs; every key verifies, so secrets rotate without logging anyone
out. Values carry itsdangerous timestamps; a value dated in the future is refused (a forged or
replayed-from-a-broken-clock value), and ``max_age`` bounds how old a value may be.
Payloads are JSON (never pickle).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from hmac import compare_digest
from typing import Any

from itsdangerous import (
    BadPayload,
    BadSignature,
    BadTimeSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
)

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

    __slots__ = ("_derived", "_keys", "_signers", "_stamp", "_verified")

    def __init__(self, secret: SecretSpec, key_version: int | None = None) -> None:
        if isinstance(secret, KeyRing):
            if key_version is not None:
                raise ValueError("cannot change key_version of an existing KeyRing")
            self._keys: tuple[bytes, ...] = secret._keys
        else:
            self._keys = _ordered_keys(secret, key_version)
        # Per-salt signer cache: configuration derived once, never per-request state.
        self._signers: dict[str, tuple[TimestampSigner, ...]] = {}
        self._derived: dict[str, tuple[bytes, ...]] = {}
        self._stamp: tuple[int, bytes] = (0, b"")
        self._verified: dict[tuple[str, str | bytes], tuple[bytes, int, bytes, bool]] = {}

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

    def _derived_for(self, salt: str) -> tuple[bytes, ...]:
        """The HMAC key of every key for ``salt``, derived as itsdangerous derives it."""
        derived = self._derived.get(salt)
        if derived is None:
            # PERF: itsdangerous hashes salt + key into the HMAC key on every call and builds
            # HMAC objects in Python; deriving once per salt and one C call per signature
            # (hmac.digest) saves ~8 µs a call.
            salted = salt.encode("utf-8") + b"signer"
            derived = tuple(hashlib.sha256(salted + key).digest() for key in self._keys)
            self._derived[salt] = derived
        return derived

    def _sign_payload(self, payload: bytes, salt: str) -> str:
        """``payload.timestamp.signature``, byte for byte what ``TimestampSigner.sign`` makes."""
        now = int(time.time())
        stamp = self._stamp
        if stamp[0] != now:  # PERF: one base64 timestamp per second, not per call
            stamp = self._stamp = (now, _b64encode(now.to_bytes(8, "big").lstrip(b"\x00")))
        signed = payload + b"." + stamp[1]
        mac = hmac.digest(self._derived_for(salt)[0], signed, "sha256")
        return (signed + b"." + _b64encode(mac)).decode("ascii")

    def sign(self, value: str | bytes, *, salt: str) -> str:
        """Sign ``value`` (with a timestamp) using the signing key.

        The value travels URL-safe base64 encoded, so the result is cookie- and URL-safe ASCII
        whatever bytes were signed.
        """
        if isinstance(value, str):
            value = value.encode("utf-8")
        return self._sign_payload(_b64encode(value), salt)

    def unsign(self, signed: str | bytes, *, salt: str, max_age: float | None = None
               ) -> tuple[bytes, bool]:
        """Verify ``signed`` with every key; return (value, signed_with_an_older_key).

        Raises ``BadSignature`` when tampered or dated in the future, ``SignatureExpired``
        (a subclass) when older than ``max_age`` seconds.
        """
        # PERF: a client sends the same signed cookie on every request; what an exact string
        # verified to is remembered (bounded), so a repeat costs a dict lookup and the age
        # check (re-done every time: it depends on the clock). Only byte-identical strings
        # hit, and the lookup compares full strings, so nothing about other values leaks.
        cache_key = (salt, signed)
        hit = self._verified.get(cache_key)
        if hit is not None:
            _check_age(hit[0], hit[1], max_age)
            return hit[2], hit[3]
        value, old_key, signed_at = self._verify(signed, salt, max_age)
        try:
            plain = _b64decode(value)
        except ValueError as exc:  # only reachable with a valid signature: a leaked key
            raise BadSignature("signed value is not base64") from exc
        if signed_at is not None:
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[cache_key] = (value, signed_at, plain, old_key)
        return plain, old_key

    def _verify(self, signed: str | bytes, salt: str, max_age: float | None
                ) -> tuple[bytes, bool, int | None]:
        """Check the signature (newest key first) and the timestamp's age: (value, signed with
        an older key, the timestamp when checked here; None when itsdangerous checked it)."""
        if isinstance(signed, str):
            signed = signed.encode("utf-8")
        # PERF: the canonical form our own sign() produces is checked with the derived keys
        # (~4 µs instead of ~40); anything else (tampered, non-canonical base64, no timestamp)
        # takes itsdangerous' path below, so what is accepted and what is raised stay its own.
        payload, _, signature = signed.rpartition(b".")
        value, dot, stamp = payload.rpartition(b".")
        if dot and 0 < len(stamp) <= 11:
            for index, key in enumerate(self._derived_for(salt)):
                mac = hmac.digest(key, payload, "sha256")
                if compare_digest(_b64encode(mac), signature):
                    signed_at = _stamp_seconds(stamp)
                    if signed_at is None:
                        break
                    _check_age(value, signed_at, max_age)
                    return value, index > 0, signed_at
        return (*self._verify_slow(signed, salt, max_age), None)

    def _verify_slow(self, signed: bytes, salt: str, max_age: float | None
                     ) -> tuple[bytes, bool]:
        """itsdangerous' own verification, key by key (the error it raises is kept)."""
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
        return self._sign_payload(_PAYLOAD.dump_payload(obj), salt)

    def loads(self, s: str | bytes, *, salt: str, max_age: float | None = None
              ) -> tuple[Any, bool]:
        """Reverse of :meth:`dumps`; same error contract as :meth:`unsign`."""
        payload, old_key, _ = self._verify(s, salt, max_age)
        try:
            return _PAYLOAD.load_payload(payload), old_key
        except BadPayload as exc:  # signed by us yet undecodable: treat as forged
            raise BadSignature(f"undecodable signed payload: {exc}") from exc


# PERF: binascii with a translation table, as base64.urlsafe_* do minus two Python layers.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64encode(data: bytes) -> bytes:
    """URL-safe base64 without padding (itsdangerous' encoding)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _b64decode(data: bytes) -> bytes:
    """Reverse of :func:`_b64encode`, lenient like itsdangerous (raises ``binascii.Error``)."""
    return binascii.a2b_base64(data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4))


#: How many verified strings a KeyRing remembers (then it starts over: bounded memory).
_VERIFIED_MAX = 4096

#: The latest timestamp we accept as such (year 9999); later ones go the slow way.
_MAX_STAMP = 253402300799


def _stamp_seconds(stamp: bytes) -> int | None:
    """The seconds inside a canonical base64 timestamp, or None to let itsdangerous decide."""
    try:
        seconds = int.from_bytes(_b64decode(stamp), "big")
    except ValueError:  # binascii.Error
        return None
    return seconds if 0 < seconds <= _MAX_STAMP else None


#: Every form a ``secret`` setting may take.
SecretSpec = Secret | Sequence[Secret] | Mapping[int, Secret] | KeyRing


def _check_age(value: bytes, signed_at: float, max_age: float | None) -> None:
    age = time.time() - signed_at
    if age < -CLOCK_SKEW:
        raise BadTimeSignature(f"timestamp {-age:.0f}s in the future", payload=value)
    if max_age is not None and age > max_age:
        raise SignatureExpired(f"signature age {age:.0f}s > {max_age}s", payload=value)
