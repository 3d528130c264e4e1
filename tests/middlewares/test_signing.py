"""KeyRing (rotation, salts, timestamps) and the XSRF token primitives, incl. Tornado interop."""

from __future__ import annotations

import hashlib
import time

import pytest
import tornado.httputil
import tornado.web
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_encode

from middleware.signing import CLOCK_SKEW, KeyRing
from middleware.xsrf import (
    mask_xsrf_token,
    new_xsrf_token,
    unmask_xsrf_token,
    xsrf_tokens_equal,
)

SALT = "microweb.secure_cookie:user"


# -- KeyRing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("secret", ["s3cret", b"s3cret", ["s3cret", "old"], ("s3cret",),
                                    {1: "old", 2: "s3cret"}])
def test_round_trip_every_secret_form(secret: object) -> None:
    ring = KeyRing(secret)  # type: ignore[arg-type]
    signed = ring.sign("alice", salt=SALT)
    assert isinstance(signed, str)
    assert ring.unsign(signed, salt=SALT) == (b"alice", False)


def test_rotation_newest_signs_older_still_verifies() -> None:
    old = KeyRing("first")
    signed_before = old.sign("alice", salt=SALT)
    rotated = KeyRing(["second", "first"])
    assert rotated.unsign(signed_before, salt=SALT) == (b"alice", True)
    fresh = rotated.sign("alice", salt=SALT)
    assert rotated.unsign(fresh, salt=SALT) == (b"alice", False)
    with pytest.raises(BadSignature):  # a key that was dropped no longer verifies
        KeyRing("second").unsign(signed_before, salt=SALT)


def test_dict_form_key_version_picks_signing_key() -> None:
    ring = KeyRing({1: "one", 2: "two", 3: "three"}, key_version=2)
    signed = ring.sign("v", salt=SALT)
    assert KeyRing("two").unsign(signed, salt=SALT) == (b"v", False)
    assert KeyRing({3: "three", 2: "two"}).unsign(signed, salt=SALT) == (b"v", True)
    default = KeyRing({1: "one", 3: "three"}).sign("v", salt=SALT)
    assert KeyRing("three").unsign(default, salt=SALT)[0] == b"v"


@pytest.mark.parametrize("bad", ["", b"", [], {}, ["ok", ""], 42])
def test_bad_secrets_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        KeyRing(bad)  # type: ignore[arg-type]


def test_key_version_missing_is_refused() -> None:
    with pytest.raises(ValueError, match="key_version"):
        KeyRing({1: "a"}, key_version=7)
    with pytest.raises(ValueError, match="key_version"):
        KeyRing("a", key_version=1)


def test_coerce_returns_the_same_ring() -> None:
    ring = KeyRing("x")
    assert KeyRing.coerce(ring) is ring
    assert isinstance(KeyRing.coerce(["x"]), KeyRing)
    assert "x" not in repr(KeyRing("x-secret-value"))


def test_salt_separates_purposes() -> None:
    ring = KeyRing("s3cret")
    signed = ring.sign("alice", salt="microweb.secure_cookie:user")
    with pytest.raises(BadSignature):
        ring.unsign(signed, salt="microweb.secure_cookie:admin")


@pytest.mark.parametrize("mutate", [
    lambda s: s[:-5] + ("A" if s[-5] != "A" else "B") + s[-4:],
    lambda s: "Ym9i" + s[s.index("."):],  # "bob" in base64, original timestamp and signature
    lambda s: s.split(".")[0],
    lambda s: "",
    lambda s: "garbage",
])
def test_tampered_values_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing("s3cret")
    with pytest.raises(BadSignature):
        ring.unsign(mutate(ring.sign("alice", salt=SALT)), salt=SALT)


def _signed_at(offset: int, value: bytes = b"alice") -> str:
    """What KeyRing("s3cret") would have produced ``offset`` seconds from now."""
    signer = TimestampSigner(b"s3cret", salt=SALT, digest_method=hashlib.sha256)
    signer.get_timestamp = lambda: int(time.time()) + offset  # type: ignore[method-assign]
    return signer.sign(base64_encode(value)).decode()


def test_the_clock_helper_matches_keyring_format() -> None:
    assert KeyRing("s3cret").unsign(_signed_at(0), salt=SALT) == (b"alice", False)


def test_max_age_expires_with_signature_expired() -> None:
    ring = KeyRing("s3cret")
    signed = _signed_at(-3600)
    assert ring.unsign(signed, salt=SALT)[0] == b"alice"  # no max_age: any age
    assert ring.unsign(signed, salt=SALT, max_age=7200)[0] == b"alice"
    with pytest.raises(SignatureExpired):
        ring.unsign(signed, salt=SALT, max_age=60)


def test_future_dated_values_are_refused() -> None:
    with pytest.raises(BadSignature) as info:
        KeyRing("s3cret").unsign(_signed_at(31 * 86400), salt=SALT)
    assert not isinstance(info.value, SignatureExpired)
    # a few seconds of clock skew between backends is tolerated
    assert KeyRing("s3cret").unsign(_signed_at(CLOCK_SKEW // 2), salt=SALT)[0] == b"alice"


def test_dumps_loads_json_only() -> None:
    ring = KeyRing(["new", "old"])
    obj = {"user": "alice", "n": [1, 2.5, None, True], "é": "ü" * 300}
    s = ring.dumps(obj, salt="microweb.session")
    assert ring.loads(s, salt="microweb.session") == (obj, False)
    assert KeyRing(["newer", "new"]).loads(s, salt="microweb.session") == (obj, True)
    with pytest.raises(TypeError):  # not JSON: refused, never pickled
        ring.dumps({1, 2}, salt="x")
    with pytest.raises(BadSignature):
        ring.loads(s + "x", salt="microweb.session")
    with pytest.raises(BadSignature):
        ring.loads(s, salt="other")


def test_signed_bytes_and_str_inputs() -> None:
    ring = KeyRing("k")
    signed = ring.sign(b"\x00\xffbytes", salt=SALT)
    assert ring.unsign(signed.encode(), salt=SALT)[0] == b"\x00\xffbytes"


# -- XSRF primitives ---------------------------------------------------------------------------

def test_new_tokens_are_random_16_bytes() -> None:
    tokens = {new_xsrf_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) == 16 for t in tokens)


def test_mask_is_fresh_per_call_and_unmasks() -> None:
    raw = new_xsrf_token()
    a, b = mask_xsrf_token(raw), mask_xsrf_token(raw)
    assert a != b
    assert a.startswith("2|") and len(a.split("|")) == 4
    assert unmask_xsrf_token(a) == unmask_xsrf_token(b) == raw
    assert unmask_xsrf_token(a.encode()) == raw
    assert mask_xsrf_token(raw, timestamp=1234).endswith("|1234")


def test_version_1_plain_hex_is_accepted() -> None:
    raw = new_xsrf_token()
    assert unmask_xsrf_token(raw.hex()) == raw


@pytest.mark.parametrize("bad", [
    None, "", b"", "2|zz|00|1", "2|0011|", "2|00112233|abcd", "2|001122|abcd|1",
    "2|00112233|abcd|notanumber", "3|00112233|abcd|1", "not hex at all", "2|" + "0" * 600,
    "é", "2|00112233||1",
])
def test_malformed_tokens_give_none(bad: object) -> None:
    assert unmask_xsrf_token(bad) is None  # type: ignore[arg-type]


def test_tokens_equal() -> None:
    raw = new_xsrf_token()
    assert xsrf_tokens_equal(raw, bytes(raw))
    assert not xsrf_tokens_equal(raw, new_xsrf_token())
    assert not xsrf_tokens_equal(None, raw)
    assert not xsrf_tokens_equal(b"", b"")
    assert not xsrf_tokens_equal(None, None)


class _Connection:
    """The few calls tornado.web.RequestHandler makes on its connection while we read tokens."""

    def set_close_callback(self, callback: object) -> None:
        pass


def _tornado_handler(cookie: str | None = None) -> tornado.web.RequestHandler:
    headers = tornado.httputil.HTTPHeaders({"Host": "example.com"})
    if cookie:
        headers["Cookie"] = f"_xsrf={cookie}"
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("POST", "/", "HTTP/1.1"),
        headers=headers, connection=_Connection())  # type: ignore[arg-type]
    return tornado.web.RequestHandler(tornado.web.Application(), request)


def test_tornado_made_token_unmasks_to_the_same_raw_token() -> None:
    handler = _tornado_handler()
    masked = handler.xsrf_token.decode()
    raw = handler._get_raw_xsrf_token()[1]
    assert masked.startswith("2|")
    assert unmask_xsrf_token(masked) == raw
    # Tornado also sets the cookie with a masked token of the same raw value
    cookie = handler._new_cookie["_xsrf"].value  # type: ignore[attr-defined]
    assert xsrf_tokens_equal(unmask_xsrf_token(cookie), raw)


def test_our_tokens_pass_tornado_check() -> None:
    raw = new_xsrf_token()
    handler = _tornado_handler(cookie=mask_xsrf_token(raw))
    handler.request.headers["X-Xsrftoken"] = mask_xsrf_token(raw)
    handler.check_xsrf_cookie()  # raises HTTPError(403) on mismatch
    assert handler._decode_xsrf_token(mask_xsrf_token(raw))[1] == raw
    bad = _tornado_handler(cookie=mask_xsrf_token(raw))
    bad.request.headers["X-Xsrftoken"] = mask_xsrf_token(new_xsrf_token())
    with pytest.raises(tornado.web.HTTPError):
        bad.check_xsrf_cookie()


def test_repeated_verification_still_checks_age_and_tampering() -> None:
    ring = KeyRing("s3cret")
    signed = _signed_at(-3600)
    for _ in range(2):  # the second round is answered from what the first one verified
        assert ring.unsign(signed, salt=SALT, max_age=7200) == (b"alice", False)
        with pytest.raises(SignatureExpired):
            ring.unsign(signed, salt=SALT, max_age=60)
        with pytest.raises(BadSignature):
            ring.unsign(signed, salt="microweb.secure_cookie:admin")
        with pytest.raises(BadSignature):
            ring.unsign(_tampered(signed), salt=SALT)
    assert ring.unsign(signed.encode(), salt=SALT, max_age=7200) == (b"alice", False)


def _tampered(signed: str) -> str:
    """Flip a signature character whose every bit counts: the last base64 character of a
    32-byte MAC carries two ignored padding bits, so changing it may not change the MAC."""
    i = len(signed) - 5
    return signed[:i] + ("A" if signed[i] != "A" else "B") + signed[i + 1:]


def test_tampering_any_whole_signature_character_is_refused() -> None:
    ring = KeyRing("s3cret")
    for age in range(0, 40):
        signed = _signed_at(-age)
        with pytest.raises(BadSignature):
            ring.unsign(_tampered(signed), salt=SALT)


def test_values_signed_by_itsdangerous_verify_and_ours_verify_there() -> None:
    signer = TimestampSigner(b"s3cret", salt=SALT, digest_method=hashlib.sha256)
    ring = KeyRing("s3cret")
    assert signer.unsign(ring.sign("alice", salt=SALT)) == base64_encode(b"alice")
    for _ in range(3):  # signed within one second, both give the same bytes
        ours, theirs = ring.sign("alice", salt=SALT), signer.sign(base64_encode(b"alice"))
        if ours == theirs.decode():
            break
    assert ours == theirs.decode()
