"""Access tokens: short-lived JWTs signed with JWT_SECRET.

`verify` accepts exactly what `issue` makes: the configured HMAC algorithm only
(never `none`, never another one signed with the same secret), our `aud` and
`iss`, a UUID `sub`, no future `nbf`, and no `crit` header: RFC 7515 says a
token whose critical extensions the reader does not understand is invalid, we
understand none, and PyJWT (which knows `b64`, and before 2.12 knew none but
let every one pass) cannot be trusted to refuse them for us.
"""

from __future__ import annotations

import time
import uuid

import jwt

from handlers.deps import AccessClaims
from protocol.errors import Unauthorized

ISSUER = "taskhub"
AUDIENCE = "taskhub"


class JwtAccessTokens:
    def __init__(self, secret: str, algorithm: str, ttl: int) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"JwtAccessTokens(algorithm={self._algorithm!r}, ttl={self._ttl})"

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._secret, algorithm=self._algorithm)

    def verify(self, token: str) -> AccessClaims:
        try:
            if "crit" in jwt.get_unverified_header(token):
                raise jwt.InvalidTokenError("critical header extensions are not supported")
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "jti"]},
            )
            user_id = uuid.UUID(claims["sub"])
            session_id = uuid.UUID(claims["sid"]) if "sid" in claims else None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("access token expired", {"reason": "token_expired"}) from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthorized("access token is not valid", {"reason": "invalid_token"}) from None
        return AccessClaims(user_id=user_id, session_id=session_id, expires_at=int(claims["exp"]))
