"""Bearer tokens: HS256 JWTs signed with ``API_JWT_SECRET``, with scopes.

Scopes: ``read`` (look) and ``operate`` (run, pause, resume, backfill, replay,
sync; implies ``read``).  Tokens live at most ``API_TOKEN_MAX_TTL`` seconds: a
stolen token must not open the API for ever, so one whose ``exp`` lies further
ahead (or whose ``exp - iat`` is longer) is refused like an expired one.  A
missing, malformed, expired, too long-lived or wrongly signed token is a 401;
a valid token without the scope a 403.  Both are decided before the request
body is read, so a refused request never enqueues anything.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ConfigError
from ..settings import Settings

SCOPES = ("read", "operate")
ALGORITHM = "HS256"
#: Secrets shorter than this are refused (HS256 keys should carry 256 bits).
MIN_SECRET_LENGTH = 32

_bearer = HTTPBearer(auto_error=False, description="A JWT minted by `broker-jobs token --scope read|operate`.")


def secret_of(settings: Settings) -> str:
    """``API_JWT_SECRET`` as a string.

    Raises:
      ConfigError: when it is unset or too short.
    """
    value = settings.api_jwt_secret.get_secret_value() if settings.api_jwt_secret else ""
    if not value:
        raise ConfigError("API_JWT_SECRET is not set: set it to a random string of 32+ characters "
                          "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"invalid environment variable API_JWT_SECRET: at least {MIN_SECRET_LENGTH} "
                          "characters are needed")
    return value


def random_secret() -> str:
    """A fresh secret for a development server that was given none."""
    return secrets.token_urlsafe(48)


def mint_token(secret: str, scope: str, ttl: float = 3600.0, subject: str = "broker-jobs",
               max_ttl: float | None = None) -> str:
    """A signed token.

    Parameters:
      secret: ``API_JWT_SECRET``.
      scope: ``read`` or ``operate``.
      ttl: Seconds until it expires.
      subject: Who holds it (kept in the ``sub`` claim).
      max_ttl: ``API_TOKEN_MAX_TTL``: a longer ``ttl`` is refused (the API would refuse the token).

    Raises:
      ConfigError: for an unknown scope or a ``ttl`` beyond ``max_ttl``.
    """
    if scope not in SCOPES:
        raise ConfigError(f"--scope: must be one of {', '.join(SCOPES)}, not {scope!r}")
    if max_ttl is not None and ttl > max_ttl:
        raise ConfigError(f"--ttl: at most API_TOKEN_MAX_TTL={int(max_ttl)} seconds, not {ttl:g}")
    now = int(time.time())
    claims = {"sub": subject, "scope": scope, "iat": now, "exp": now + max(1, int(ttl))}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def scopes_of(claims: dict[str, Any]) -> set[str]:
    """The scopes a token grants (``operate`` includes ``read``)."""
    granted = set(str(claims.get("scope", "")).split())
    if "operate" in granted:
        granted.add("read")
    return granted


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="broker-jobs"'})


def decode(secret: str, token: str, max_ttl: float | None = None) -> dict[str, Any]:
    """The token's claims.

    Parameters:
      secret: ``API_JWT_SECRET``.
      token: The bearer token.
      max_ttl: ``API_TOKEN_MAX_TTL``; None accepts any lifetime.

    Raises:
      HTTPException: 401 naming what is wrong with the token.
    """
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "scope"]})
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.InvalidSignatureError:
        raise _unauthorized("token signature invalid") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorized(f"token lacks the {exc.claim!r} claim") from None
    except jwt.PyJWTError:
        raise _unauthorized("token malformed") from None
    if max_ttl is not None:
        exp, iat = claims["exp"], claims.get("iat")
        # A second of slack for clock skew between minting and checking.
        if not isinstance(exp, int | float) or exp - time.time() > max_ttl + 1 or (
                isinstance(iat, int | float) and exp - iat > max_ttl):
            raise _unauthorized(f"token lives longer than API_TOKEN_MAX_TTL ({int(max_ttl)} s)")
    return claims


def require(scope: str) -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency admitting tokens with ``scope``."""

    def check(request: Request,
              credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise _unauthorized("missing bearer token (Authorization: Bearer <JWT>)")
        claims = decode(request.app.state.jwt_secret, credentials.credentials,
                        getattr(request.app.state.settings, "api_token_max_ttl", None))
        if scope not in scopes_of(claims):
            raise HTTPException(403, detail=f"token lacks the {scope!r} scope")
        request.state.subject = claims.get("sub")  # who acted, for the log lines of operations
        return claims

    return check
