"""``SessionMiddleware``: a lazily loaded session per request, saved only when it changed.

Reads the session cookie (its value is signed with the key ring), writes
``environ["microweb.session"]`` (a :class:`~middleware.sessions.session.Session`), and when the
response starts saves the session if it was modified (or refreshes a sliding expiry), sets or
expires the cookie, deletes regenerated or invalidated ids and sends ``session_created`` /
``session_destroyed``.

Security: ids are 256 bits from :mod:`secrets`; an id that is forged, malformed or unknown to
the store starts a new session with a fresh id (an attacker cannot choose ids) and is never
echoed back. Call ``session.regenerate()`` at login. A store that fails answers 503 and is
logged with its name; the response the app produced is then replaced, so no write is lost
silently.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from itsdangerous import BadSignature
from werkzeug.http import dump_cookie

from .. import keys
from .._cookies import cookie_value
from .._wsgi import (
    ClosingIterator,
    ExcInfo,
    Headers,
    StartResponse,
    WSGIApp,
    WSGIEnvironment,
    add_vary,
    close_iterable,
)
from ..base import Middleware
from ..signals import session_created, session_destroyed
from ..signing import KeyRing, SecretSpec
from .serializers import JSONSerializer, SessionSerializer
from .session import Session
from .stores.base import SESSION_ID_RE, Store, StoreUnavailable, new_session_id
from .stores.cookie import CookieStore, SessionTooLarge
from .stores.memory import MemoryStore

__all__ = ["SessionMiddleware"]

log = logging.getLogger("middleware.sessions")

_UNAVAILABLE = ("503 Service Unavailable",
                b"503 Service Unavailable: the session store is unavailable. Try again shortly.\n")
_UNSAVABLE = ("500 Internal Server Error",
              b"500 Internal Server Error: the session could not be saved.\n")


class _Outcome:
    """What must replace the app's response, shared by the request and the session's loader.

    PERF: the loader holds this, not the request: a loader holding the request would make a
    reference cycle (environ -> session -> loader -> request -> environ) that only the cyclic
    garbage collector frees, for every request.
    """

    __slots__ = ("replacement",)

    def __init__(self) -> None:
        #: (status, body) that replaces the app's response after a store or save failure
        self.replacement: tuple[str, bytes] | None = None


class _Request:
    """Per-request state (the middleware instance itself holds configuration only)."""

    __slots__ = ("cookie", "cookies", "environ", "outcome", "session", "started")

    session: Session

    def __init__(self, environ: WSGIEnvironment, cookie: str | None) -> None:
        self.environ = environ
        self.cookie = cookie
        self.started = False
        #: the Set-Cookie values of the commit (None until the session is committed)
        self.cookies: list[str] | None = None
        self.outcome = _Outcome()


class SessionMiddleware(Middleware):
    """Server-side (or cookie) sessions for any WSGI app at ``environ["microweb.session"]``.

    ``secret`` signs the session cookie (str, list newest first, ``{version: key}`` dict or a
    :class:`~middleware.signing.KeyRing`). ``store`` defaults to a :class:`MemoryStore`.
    ``max_age`` (seconds) is the idle lifetime when ``sliding`` (refreshed at most every
    ``refresh_interval`` seconds by a cheap touch), else the absolute lifetime. ``permanent=False``
    makes a browser-session cookie (the server still expires it after ``max_age``).
    ``secure=None`` marks the cookie Secure when the request is https (as ProxyMiddleware
    resolved it).
    """

    provides: ClassVar[tuple[str, ...]] = (keys.SESSION,)
    uses: ClassVar[tuple[str, ...]] = (keys.PROXY_RESOLVED,)

    def __init__(self, app: WSGIApp, secret: SecretSpec, store: Store | None = None, *,
                 cookie_name: str = "session", max_age: int = 14 * 86400,
                 sliding: bool = True, refresh_interval: int = 60, permanent: bool = True,
                 secure: bool | None = None, httponly: bool = True, samesite: str | None = "Lax",
                 domain: str | None = None, path: str = "/",
                 serializer: SessionSerializer | None = None,
                 key_version: int | None = None) -> None:
        super().__init__(app)
        self.keyring = KeyRing.coerce(secret, key_version)
        self.store: Store = store if store is not None else MemoryStore()
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        if samesite is not None and samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError("samesite must be 'Lax', 'Strict', 'None' or None")
        self.cookie_name = cookie_name
        self.max_age = int(max_age)
        self.sliding = sliding
        self.refresh_interval = max(0, int(refresh_interval))
        self.permanent = permanent
        self.secure = secure
        self.httponly = httponly
        self.samesite = samesite
        self.domain = domain
        self.path = path
        self.serializer: SessionSerializer = serializer or JSONSerializer()
        self.salt = "microweb.session:" + cookie_name
        # PERF: resolved once: most stores have no per-request check
        self._check_environ = (None if type(self.store).check_environ is Store.check_environ
                               else self.store.check_environ)

    def __repr__(self) -> str:
        return (f"SessionMiddleware(store={self.store!r}, cookie_name={self.cookie_name!r}, "
                f"max_age={self.max_age})")

    # -- loading -----------------------------------------------------------------------------

    def _read_sid(self, value: str | None) -> str | None:
        """The id inside a signed cookie value, or None if forged, expired or misshapen."""
        if not value:
            return None
        try:
            raw, _ = self.keyring.unsign(value, salt=self.salt, max_age=self.max_age)
        except BadSignature:
            return None
        sid = raw.decode("ascii", "replace")
        return sid if SESSION_ID_RE.fullmatch(sid) else None

    def _loader(self, cookie: str | None, outcome: _Outcome) -> Callable[[Session], None]:
        def load(session: Session) -> None:
            if self.store.client_side:
                self._load_from_cookie(cookie, session)
                return
            sid = self._read_sid(cookie)
            try:
                record = self.store.load(sid) if sid else None
            except StoreUnavailable as exc:
                # Remembered here, so even an app that turns the error into its own 500 page
                # answers 503; re-raised so the app does not carry on without its session.
                self._fail(outcome, exc)
                raise
            if record is None:
                session._fill(None, {}, None, None)
                return
            data = self._decode(record[0], sid)
            if data is None:
                session._fill(None, {}, None, None)
            else:
                session._fill(sid, data, record[0], record[1])
        return load

    def _load_from_cookie(self, cookie: str | None, session: Session) -> None:
        assert isinstance(self.store, CookieStore)
        raw = (self.store.decode(cookie, self.keyring, self.salt, self.max_age)
               if cookie else None)
        data = self._decode(raw, None) if raw is not None else None
        if data is None:
            session._fill(None, {}, None, None)
        else:
            assert cookie is not None
            signed_at = self.store.signed_at(cookie)
            expires = None if signed_at is None else signed_at + self.max_age
            session._fill(None, data, raw, expires)

    def _decode(self, raw: bytes, sid: str | None) -> dict[str, Any] | None:
        try:
            return self.serializer.loads(raw)
        except (ValueError, TypeError) as exc:
            log.warning("session %s in %s is unreadable (%s): starting a new session",
                        (sid or "cookie")[:8], self.store, exc)
            return None

    # -- saving ------------------------------------------------------------------------------

    def _cookie(self, environ: WSGIEnvironment, value: str, expire: bool = False) -> str:
        secure = self.secure
        if secure is None:
            secure = environ.get("wsgi.url_scheme") == "https"
        max_age: int | None = self.max_age if self.permanent else None
        return dump_cookie(self.cookie_name, "" if expire else value,
                           max_age=0 if expire else max_age,
                           expires=0 if expire else None, path=self.path, domain=self.domain,
                           secure=secure, httponly=self.httponly, samesite=self.samesite,
                           max_size=0)

    def _commit(self, req: _Request) -> list[str]:
        """Write what happened to the session; return the Set-Cookie header values."""
        session = req.session
        session.committed = True
        for sid in session._dropped:
            self.store.delete(sid)
        if session.invalidated and session_destroyed.receivers:
            session_destroyed.send(session, environ=req.environ)
        data = session.data
        if not data:
            if session.sid is not None and not session.fresh:  # emptied: forget it
                self.store.delete(session.sid)
            return [self._cookie(req.environ, "", expire=True)] if req.cookie else []
        if (not self.store.client_side and session.sid is not None and not session.fresh
                and not session.modified and session._unchanged()):
            # PERF: read-only request with plain values: nothing to serialize and compare
            return self._refresh(req) if self._needs_refresh(session) else []
        raw = self.serializer.dumps(data)
        if self.store.client_side:
            return self._commit_cookie(req, raw)
        if session.sid is None or session.fresh:
            session.sid = session.sid or new_session_id()
            self.store.save(session.sid, raw, self.max_age)
            if session_created.receivers:
                session_created.send(session, environ=req.environ)
        elif session.modified or raw != session._original:
            self.store.save(session.sid, raw, self._remaining(session))
        elif self._needs_refresh(session):
            return self._refresh(req)
        else:
            return []
        return [self._cookie(req.environ, self.keyring.sign(session.sid, salt=self.salt))]

    def _remaining(self, session: Session) -> int:
        """The ttl for rewriting a stored session: ``max_age`` again when sliding, else what
        is left of its absolute lifetime (writing to it must not make it live longer)."""
        if self.sliding or session.expires is None:
            return self.max_age
        return max(1, min(self.max_age, math.ceil(session.expires - time.time())))

    def _refresh(self, req: _Request) -> list[str]:
        """Extend an unchanged stored session's life (sliding expiry) and re-send its cookie."""
        sid = req.session.sid
        assert sid is not None
        self.store.touch(sid, self.max_age)
        return [self._cookie(req.environ, self.keyring.sign(sid, salt=self.salt))]

    def _needs_refresh(self, session: Session) -> bool:
        if not self.sliding or session.expires is None:
            return False
        return session.expires - time.time() < self.max_age - self.refresh_interval

    def _commit_cookie(self, req: _Request, raw: bytes) -> list[str]:
        session = req.session
        assert isinstance(self.store, CookieStore)
        if not (session.modified or raw != session._original
                or (self.sliding and (session.expires is None or self._needs_refresh(session)))):
            return []  # unchanged, and re-signed less than refresh_interval ago
        value = self.store.encode(raw, self.keyring, self.salt)
        set_cookie = self._cookie(req.environ, value)
        self.store.check_size(set_cookie, self.cookie_name)
        if session.new and session_created.receivers:
            session_created.send(session, environ=req.environ)
        return [set_cookie]

    # -- the WSGI flow -----------------------------------------------------------------------

    def _fail(self, target: _Request | _Outcome, exc: BaseException) -> None:
        """Remember that the response must be replaced, and log why (naming the store)."""
        outcome = target.outcome if isinstance(target, _Request) else target
        if outcome.replacement is not None:
            return
        if isinstance(exc, StoreUnavailable):
            log.error("session store unavailable: %s", exc.description,
                      extra={"session_store": exc.store_name})
            outcome.replacement = _UNAVAILABLE
        else:
            log.error("session could not be saved in %s: %s", self.store, exc,
                      exc_info=exc)
            outcome.replacement = _UNSAVABLE

    def _start(self, req: _Request, start_response: StartResponse) -> StartResponse:
        def session_start_response(status: str, headers: Headers,
                                   exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            req.started = True
            headers = list(headers)
            if req.outcome.replacement is None and req.session.loaded:
                if req.cookies is None:  # commit once, even if the app restarts the response
                    try:
                        req.cookies = self._commit(req)
                    except (StoreUnavailable, SessionTooLarge, TypeError, ValueError) as exc:
                        self._fail(req, exc)
                if req.cookies is not None:
                    if req.cookies:
                        headers.extend(("Set-Cookie", c) for c in req.cookies)
                    _vary_cookie(headers)
            if req.outcome.replacement is not None:
                return _replace(req, start_response, exc_info)
            return start_response(status, headers, exc_info) if exc_info else \
                start_response(status, headers)
        return session_start_response

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        if self._check_environ is not None:
            self._check_environ(environ)
        cookie = cookie_value(environ.get("HTTP_COOKIE"), self.cookie_name)
        req = _Request(environ, cookie)
        req.session = Session(self._loader(cookie, req.outcome),
                              None if self.store.client_side else new_session_id)
        environ[keys.SESSION] = req.session
        hooked = self._start(req, start_response)
        try:
            body = self.app(environ, hooked)
        except StoreUnavailable as exc:
            if req.started:
                raise
            self._fail(req, exc)
            _replace(req, start_response, None)
            return [_UNAVAILABLE[1]]
        if not req.started:
            return ClosingIterator(self._late_start(req, body, start_response),
                                   [lambda: self._after(req)])
        if req.outcome.replacement is not None:
            close_iterable(body)
            return [req.outcome.replacement[1]]
        if req.session.loaded:
            if type(body) is list:
                # PERF: a list is complete: nothing can touch the session during iteration, so
                # check now and hand the list on (outer layers keep their whole-body paths).
                if req.session._late:
                    self._after(req)
                return body
            return ClosingIterator(body, [lambda: self._after(req)])
        return body  # PERF: untouched session: the app's iterable (and file_wrapper) as is

    def _late_start(self, req: _Request, body: Iterable[bytes],
                    start_response: StartResponse) -> Iterator[bytes]:
        """Iterate an app that calls start_response lazily (a generator), replacing if needed."""
        try:
            for chunk in body:
                if req.outcome.replacement is not None:
                    break
                yield chunk
        except StoreUnavailable as exc:
            if req.started and req.outcome.replacement is None:
                raise
            self._fail(req, exc)
            if not req.started:
                _replace(req, start_response, None)
        finally:
            close_iterable(body)
        if req.outcome.replacement is not None:
            yield req.outcome.replacement[1]

    def _after(self, req: _Request) -> None:
        if req.session._late:
            log.warning("the session was modified after the response started: that change "
                        "is not saved (modify the session before the first byte is sent)")


def _vary_cookie(headers: Headers) -> None:
    """Responses that read the session differ per cookie: tell caches."""
    add_vary(headers, "Cookie")


def _replace(req: _Request, start_response: StartResponse,
             exc_info: ExcInfo | None) -> Callable[[bytes], object]:
    """Send the replacement status (503 or 500) instead of the app's response."""
    assert req.outcome.replacement is not None
    req.started = True
    status, body = req.outcome.replacement
    headers = [("Content-Type", "text/plain; charset=utf-8"),
               ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    if status.startswith("503"):
        headers.append(("Retry-After", "5"))
    if exc_info:
        start_response(status, headers, exc_info)
    else:
        start_response(status, headers)
    return lambda data: None  # the app's own body is discarded
