"""Random secrets for API tokens, browser sessions and CSRF, and their stored hashes."""

import hashlib
import secrets

API_TOKEN_PREFIX = "sft_"


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # The tokens carry 256 random bits, so a fast hash is enough; argon2 would only add latency
    # to every request.
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
