"""The peer of `h200 bench api`: the seeds' stack answering the same authenticated
`GET /api/v1/clusters_summary` (FastAPI + uvicorn, PyJWT EdDSA verification against the
backend's JWKS, a permission dependency, a Redis sliding-window rate limit per subject and the
security headers). `h200 bench api` installs it into a scratch virtualenv and runs it with one
and with two uvicorn workers; it is a bench fixture and never shipped.

Configuration (environment): PEER_JWKS (the JWKS document), PEER_ISSUER, PEER_AUDIENCE,
PEER_REDIS_URL, PEER_REDIS_PREFIX (the bench's own key prefix), PEER_RATE_LIMIT (requests per
60 s window; the bench raises it as it raises ours, so every request is counted, none refused).
"""

import json
import os
import time
import uuid

import jwt
import redis.asyncio as redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

JWKS = json.loads(os.environ["PEER_JWKS"])
KEYS = {key["kid"]: jwt.PyJWK(key, algorithm="EdDSA") for key in JWKS["keys"]}
ISSUER = os.environ.get("PEER_ISSUER", "h200")
AUDIENCE = os.environ.get("PEER_AUDIENCE", "h200-api")
RATE_LIMIT = int(os.environ.get("PEER_RATE_LIMIT", "600"))
WINDOW_SECS = 60
PREFIX = os.environ.get("PEER_REDIS_PREFIX", "peer")
REDIS = redis.Redis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}

app = FastAPI()


@app.middleware("http")
async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


@app.exception_handler(HTTPException)
async def problem(request: Request, error: HTTPException):
    return JSONResponse(
        {"type": "about:blank", "status": error.status_code, "code": error.detail},
        status_code=error.status_code,
        media_type="application/problem+json",
        headers=SECURITY_HEADERS,
    )


async def current_claims(request: Request) -> dict:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise HTTPException(401, "MISSING_CREDENTIALS")
    token = header[7:]
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = KEYS[kid]
        return jwt.decode(
            token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER
        )
    except (KeyError, jwt.PyJWTError):
        raise HTTPException(401, "INVALID_TOKEN")


def require(permission: str):
    async def permitted(claims: dict = Depends(current_claims)) -> dict:
        if permission not in claims.get("permissions", []):
            raise HTTPException(403, "INSUFFICIENT_PERMISSIONS")
        return claims

    return permitted


async def rate_limited(claims: dict = Depends(require("clusters:read"))) -> dict:
    key = f"{PREFIX}:{claims['sub']}"
    now = time.time()
    async with REDIS.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, 0, now - WINDOW_SECS)
        pipe.zadd(key, {uuid.uuid4().hex: now})
        pipe.zcard(key)
        pipe.expire(key, WINDOW_SECS)
        _, _, count, _ = await pipe.execute()
    if count > RATE_LIMIT:
        raise HTTPException(429, "RATE_LIMITED")
    return claims


@app.get("/api/v1/clusters_summary")
async def clusters_summary(stream: str = "default", claims: dict = Depends(rate_limited)):
    return {"stream": stream, "clusters": [], "total": 0}


@app.get("/health")
async def health():
    return {"status": "healthy"}
