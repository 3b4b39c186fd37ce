"""REST routes for the caller's account, API tokens and (for admins) users."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.auth import service
from app.deps import DB, ApiUser, TransactionRoute, require_admin
from app.pagination import Page, Pagination

router = APIRouter(prefix="/api/v1", tags=["auth"], route_class=TransactionRoute)


class UserOut(BaseModel):
    username: str
    display_name: str
    role: str
    locale: str | None
    is_active: bool


class UserIn(BaseModel):
    username: str
    password: str
    role: str = "annotator"
    display_name: str | None = None
    locale: str | None = None


class TokenIn(BaseModel):
    name: str = Field(description="what the token is for, e.g. 'ingest script'")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="the secret; shown only in this response")


def _user_out(user) -> UserOut:
    return UserOut(
        username=user.username, display_name=user.display_name, role=user.role, locale=user.locale,
        is_active=user.is_active,
    )


def _token_out(token) -> dict:
    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "created_at": token.created_at,
        "last_used_at": token.last_used_at, "revoked_at": token.revoked_at,
    }


@router.get("/me")
def me(user: ApiUser) -> UserOut:
    return _user_out(user)


@router.get("/users")
def list_users(db: DB, user: ApiUser, page: Pagination) -> Page[UserOut]:
    require_admin(user)
    users, total = service.list_users(db, offset=page.offset, limit=page.page_size)
    return Page[UserOut].build([_user_out(u) for u in users], total, page)


@router.post("/users", status_code=201)
def create_user(body: UserIn, db: DB, user: ApiUser) -> UserOut:
    require_admin(user)
    return _user_out(service.create_user(db, **body.model_dump()))


@router.get("/tokens")
def list_tokens(db: DB, user: ApiUser) -> list[TokenOut]:
    return [TokenOut(**_token_out(t)) for t in service.list_api_tokens(db, user)]


@router.post("/tokens", status_code=201)
def create_token(body: TokenIn, db: DB, user: ApiUser) -> IssuedTokenOut:
    issued = service.create_api_token(db, user, body.name)
    return IssuedTokenOut(**_token_out(issued.token), token=issued.secret)


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: int, db: DB, user: ApiUser) -> TokenOut:
    return TokenOut(**_token_out(service.revoke_api_token(db, user, token_id)))
