"""Explicit pagination shared by every list endpoint and page."""

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from app.config import get_settings
from app.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_request(
    page: Annotated[int, Query(description="1-based page number")] = 1,
    page_size: Annotated[int | None, Query(description="rows per page")] = None,
) -> PageRequest:
    settings = get_settings()
    size = settings.default_page_size if page_size is None else page_size
    if page < 1:
        raise InvalidInput(f"invalid page {page}: pages start at 1")
    if not 1 <= size <= settings.max_page_size:
        raise InvalidInput(
            f"invalid page_size {size}: use 1 to {settings.max_page_size} (SFTDESK_MAX_PAGE_SIZE)"
        )
    return PageRequest(page=page, page_size=size)


Pagination = Annotated[PageRequest, Depends(page_request)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
    pages: int

    @classmethod
    def build(cls, items: list[T], total: int, request: PageRequest) -> "Page[T]":
        pages = max(1, -(-total // request.page_size))
        return cls(items=items, total=total, page=request.page, page_size=request.page_size, pages=pages)
