"""Turn an import stream into chunks of valid UTF-8 bytes.

Gzip input is recognised by its magic bytes and decompressed while reading. A byte order
mark selects UTF-8, UTF-16 or UTF-32 and is removed. Without a BOM the file must be UTF-8
unless the caller names another codec, and UTF-16 without a BOM is recognised when the
file starts with two ASCII characters, as JSON and CSV files do.
"""

import codecs
import gzip
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from app.items.importing.errors import ImportFormatError

GZIP_MAGIC = b"\x1f\x8b"

# UTF-32 LE must come before UTF-16 LE, because its BOM starts with the UTF-16 LE BOM.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_UTF8_NAMES = ("utf-8", "utf-8-sig")


class _PrefixedReader:
    """A file-like reader that returns `prefix` before the rest of `stream`."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._stream.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._stream.read(size)


def _read_plain(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    while chunk := stream.read(chunk_bytes):
        yield chunk


def _read_gzip(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    reader = gzip.GzipFile(fileobj=stream, mode="rb")
    try:
        while chunk := reader.read(chunk_bytes):
            yield chunk
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportFormatError(
            f"The file starts like gzip data but cannot be decompressed ({exc}). "
            "Upload the file again, or upload it uncompressed."
        ) from exc


def read_raw_chunks(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """Yield the bytes of `stream`, decompressed when they start with the gzip magic bytes."""
    head = stream.read(2)
    while 0 < len(head) < 2:
        more = stream.read(2 - len(head))
        if not more:
            break
        head += more
    source = _PrefixedReader(head, stream)
    if head == GZIP_MAGIC:
        yield from _read_gzip(source, chunk_bytes)  # type: ignore[arg-type]
    else:
        yield from _read_plain(source, chunk_bytes)  # type: ignore[arg-type]


def _canonical_codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ImportFormatError(
            f"Unknown encoding {encoding!r} in the encoding option. Use a Python codec name "
            "such as 'utf-8', 'gb18030', 'gbk', 'utf-16' or 'latin-1'."
        ) from None


def _sniff_utf16_without_bom(head: bytes) -> str | None:
    if len(head) < 4:
        return None
    if head[0] and not head[1] and head[2] and not head[3]:
        return "utf-16-le"
    if not head[0] and head[1] and not head[2] and head[3]:
        return "utf-16-be"
    return None


def _validated_utf8(chunks: Iterator[bytes], start_offset: int) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = start_offset
    for chunk in chunks:
        pending = decoder.getstate()[0]
        if not pending and chunk.isascii():
            yield chunk
            offset += len(chunk)
            continue
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad_offset = offset - len(pending) + exc.start
            bad_bytes = exc.object[exc.start : exc.start + 4].hex(" ")
            raise ImportFormatError(
                f"The file is not valid UTF-8: the bytes at byte offset {bad_offset} ({bad_bytes}) "
                f"cannot be decoded ({exc.reason}). If the file uses another encoding, name it in "
                "the encoding option, for example encoding='gb18030' for Chinese text saved on "
                "Windows, or save the file as UTF-8."
            ) from None
        yield chunk
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportFormatError(
            f"The file is not valid UTF-8: it ends in the middle of a character at byte offset "
            f"{offset - len(decoder.getstate()[0])}. The file may be truncated; upload it again, "
            "or name its encoding in the encoding option."
        ) from None


def _transcoded(chunks: Iterator[bytes], codec: str, start_offset: int, source: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    offset = start_offset
    for chunk in chunks:
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise ImportFormatError(
                f"The file cannot be decoded as {codec} ({source}): the bytes at byte offset "
                f"{offset - pending + exc.start} are invalid ({exc.reason}). Check the encoding "
                "option, or save the file as UTF-8."
            ) from None
        offset += len(chunk)
        if text:
            yield text.encode("utf-8")
    try:
        text = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportFormatError(
            f"The file cannot be decoded as {codec} ({source}): it ends in the middle of a "
            "character. The file may be truncated; upload it again."
        ) from None
    if text:
        yield text.encode("utf-8")


def iter_utf8_chunks(stream: BinaryIO, encoding: str | None, chunk_bytes: int) -> Iterator[bytes]:
    """Yield the decoded content of `stream` as UTF-8 bytes, without a byte order mark.

    Raises ImportFormatError, naming the byte offset and the encoding option, when the
    bytes do not decode. The check runs while reading, so an error far into a file comes
    after the chunks before it. Chunks may end inside a multi-byte character.
    """
    raw = read_raw_chunks(stream, chunk_bytes)
    head = b""
    for chunk in raw:
        head += chunk
        if len(head) >= 4:
            break

    codec = None
    source = ""
    bom_length = 0
    for bom, bom_codec in _BYTE_ORDER_MARKS:
        if head.startswith(bom):
            codec, bom_length, source = bom_codec, len(bom), "from its byte order mark"
            break
    if codec is None and encoding:
        codec, source = _canonical_codec(encoding), "from the encoding option"
    if codec is None:
        codec = _sniff_utf16_without_bom(head)
        source = "detected from the zero bytes at its start"
    if codec is None:
        codec = "utf-8"

    def rest() -> Iterator[bytes]:
        if len(head) > bom_length:
            yield head[bom_length:]
        yield from raw

    if codec in _UTF8_NAMES:
        yield from _validated_utf8(rest(), bom_length)
    else:
        yield from _transcoded(rest(), codec, bom_length, source)
