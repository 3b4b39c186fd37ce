"""Users, API tokens and browser sessions."""

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.auth.models import ROLES, ApiToken, User, WebSession
from app.auth.passwords import MIN_PASSWORD_CHARS, hash_password, verify_password
from app.auth.tokens import hash_token, new_api_token, new_csrf_token, new_session_token
from app.db import utcnow
from app.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from app.i18n.locales import SUPPORTED_LOCALES
from app.logging import get_logger

log = get_logger(__name__)

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
# Tokens touched within this window are not rewritten on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_user(
    db: Session, *, username: str, password: str, role: str = "annotator",
    display_name: str | None = None, locale: str | None = None,
) -> User:
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput(
            f"invalid username {username!r}: use 2 to 64 letters, digits, '.', '_' or '-'"
        )
    if role not in ROLES:
        raise InvalidInput(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password too short: use at least {MIN_PASSWORD_CHARS} characters")
    if locale is not None and locale not in SUPPORTED_LOCALES:
        raise InvalidInput(f"unsupported locale {locale!r}: use one of {', '.join(SUPPORTED_LOCALES)}")
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"username {username!r} is already taken: choose another")

    user = User(
        username=username, display_name=display_name or username, password_hash=hash_password(password),
        role=role, locale=locale, is_active=True,
    )
    db.add(user)
    db.flush()

    log.info("user created", user_id=user.id, role=role)
    return user


def get_user_by_username(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def list_users(db: Session, *, offset: int, limit: int) -> tuple[list[User], int]:
    from sqlalchemy import func

    total = db.scalar(select(func.count()).select_from(User)) or 0
    users = db.scalars(select(User).order_by(User.id).offset(offset).limit(limit)).all()
    return list(users), total


def authenticate(db: Session, username: str, password: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        log.info("login failed", username_known=user is not None)
        raise NotAuthenticated("invalid username or password")
    return user


def set_locale(db: Session, user: User, locale: str | None) -> None:
    if locale is not None and locale not in SUPPORTED_LOCALES:
        raise InvalidInput(f"unsupported locale {locale!r}: use one of {', '.join(SUPPORTED_LOCALES)}")
    user.locale = locale
    db.flush()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def create_api_token(db: Session, user: User, name: str) -> IssuedToken:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("token name must be 1 to 100 characters")

    secret = new_api_token()
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], token_hash=hash_token(secret))
    db.add(token)
    db.flush()

    log.info("api token created", user_id=user.id, token_id=token.id)
    return IssuedToken(token=token, secret=secret)


def list_api_tokens(db: Session, user: User) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_api_token(db: Session, user: User, token_id: int) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None or (token.user_id != user.id and not user.is_admin):
        raise NotFound(f"API token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.flush()
        log.info("api token revoked", user_id=token.user_id, token_id=token.id)
    return token


# Built once: every API request runs it, and building the statement costs about as much as running it.
# The token's own columns are read as plain values: loading the token as an object as well cost
# about 40 µs more per request.
_TOKEN_BY_HASH = (
    select(User, ApiToken.id, ApiToken.revoked_at, ApiToken.last_used_at)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
_SESSION_BY_HASH = select(WebSession).where(WebSession.token_hash == bindparam("token_hash"))


def user_for_api_token(db: Session, secret: str) -> User | None:
    row = db.execute(_TOKEN_BY_HASH, {"token_hash": hash_token(secret)}).first()
    if row is None:
        return None
    user, token_id, revoked_at, last_used_at = row
    if revoked_at is not None or not user.is_active:
        return None

    now = utcnow()
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        bind = db.get_bind()
        if bind.dialect.name == "sqlite" and bind.get_execution_options().get("sqlite_begin") != "IMMEDIATE":
            _touch_api_token(token_id, now)
        else:
            db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    return user


def _touch_api_token(token_id: int, now) -> None:
    """Record when a token was last used, in a short write transaction of its own.

    On SQLite a read-only request must not upgrade its own transaction to a writer, which fails
    under write load. The timestamp is informational, so a failure is logged and the request goes on.
    """
    from app.db import unit_of_work

    try:
        with unit_of_work() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    except OperationalError as error:
        log.warning("api token last-used update failed", token_id=token_id, error=str(error))


def start_session(db: Session, user: User, max_age_s: int) -> tuple[str, WebSession]:
    secret = new_session_token()
    web_session = WebSession(
        user_id=user.id, token_hash=hash_token(secret), csrf_token=new_csrf_token(),
        expires_at=utcnow() + timedelta(seconds=max_age_s),
    )
    db.add(web_session)
    db.flush()

    log.info("session started", user_id=user.id, session_id=web_session.id)
    return secret, web_session


def session_for_cookie(db: Session, secret: str) -> WebSession | None:
    web_session = db.scalar(_SESSION_BY_HASH, {"token_hash": hash_token(secret)})
    if web_session is None or web_session.expires_at <= utcnow() or not web_session.user.is_active:
        return None
    return web_session


def end_session(db: Session, secret: str) -> None:
    web_session = db.scalar(select(WebSession).where(WebSession.token_hash == hash_token(secret)))
    if web_session is not None:
        db.delete(web_session)
        db.flush()
        log.info("session ended", user_id=web_session.user_id, session_id=web_session.id)
