"""A tar archive read as it streams by: each member's header checked, its data handed on.

Used by the image check (`image_check.py`) for the outer `docker save` archive
and for each layer inside it. Names must be relative with no `..` or NUL, link
targets must stay inside the archive, and nothing may lie below a symbolic
link; anything else is InvalidInput naming the member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mahiru.errors import InvalidInput

BLOCK = 512
MiB = 1024 * 1024

_REGULAR = {b"0", b"\0", b"7"}
_HARD_LINK, _SYMLINK, _DIRECTORY = b"1", b"2", b"5"
_DEVICES = {b"3", b"4", b"6"}  # character, block, FIFO
_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK = b"x", b"g", b"L", b"K"
GZIP_MAGIC = b"\x1f\x8b"
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Bounds on what an image archive may contain.

    `max_ratio` bounds how far a gzip layer may expand (decompressed bytes
    per compressed byte) once it has produced more than `ratio_floor` bytes.
    """

    max_ratio: float = 100.0
    ratio_floor: int = 64 * MiB
    max_members: int = 500_000
    max_metadata_bytes: int = 1 * MiB


class Consumer(Protocol):
    def feed(self, data: memoryview) -> None: ...

    def close(self) -> None: ...


class _Member(Protocol):
    def start(self, member: TarMember) -> Consumer | None: ...


@dataclass(frozen=True, slots=True)
class TarMember:
    name: str  # normalised: relative, no `.` or `..` parts; "" for the root folder
    kind: bytes
    size: int
    link: str


def problem(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"not a sound image archive: {where}: {message}", {"where": where})


def name_parts(text: str, where: str, what: str) -> list[str]:
    """The parts of a relative archive path; InvalidInput for absolute, `..` or NUL."""
    if "\0" in text:
        raise problem(where, f"{what} {text!r} contains a NUL byte")
    if text.startswith("/"):
        raise problem(where, f"{what} {text!r} is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise problem(where, f"{what} {text!r} leads out of the archive with '..'")
    return parts


def _octal(field: bytes, where: str) -> int:
    if field and field[0] & 0x80:  # base-256, for sizes above 8 GiB
        if field[0] & 0x40:
            raise problem(where, "a negative number in a member header")
        value = field[0] & 0x3F
        for byte in field[1:]:
            value = value << 8 | byte
        return value
    text = field.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise problem(where, f"a member header has the malformed number {text!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            raise problem(where, "a malformed extended (pax) header")
        try:
            length = int(data[position:space])
        except ValueError:
            raise problem(where, "a malformed extended (pax) header") from None
        if length <= space - position or position + length > len(data):
            raise problem(where, "a malformed extended (pax) header")
        record = data[space + 1 : position + length - 1]
        key, equals, value = record.partition(b"=")
        if not equals:
            raise problem(where, "a malformed extended (pax) header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarReader:
    """Reads a tar stream fed in pieces, checking each member and handing its data on."""

    def __init__(self, where: str, members: _Member, limits: ImageLimits, *, layer: bool) -> None:
        self._where = where
        self._members = members
        self._limits = limits
        self._layer = layer
        self._header = bytearray()
        self._remaining = 0  # data bytes of the current member still to come
        self._padding = 0
        self._consumer: Consumer | None = None
        self._metadata: bytearray | None = None  # collecting a pax or GNU long header
        self._metadata_kind = b""
        self._pending: dict[str, str] = {}
        self._ended = False
        self._count = 0
        self._files: set[str] = set()
        self._symlinks: set[str] = set()
        #: Links of the archive, by name: the member each one names.
        self.aliases: dict[str, str] = {}
        self.started = False

    def feed(self, data: memoryview) -> None:
        while data:
            if self._ended:
                return  # what follows the end marker is padding; tar readers ignore it
            if self._remaining:
                take = min(self._remaining, len(data))
                piece, data = data[:take], data[take:]
                self._remaining -= take
                if self._metadata is not None:
                    self._metadata += piece
                elif self._consumer is not None:
                    self._consumer.feed(piece)
                if not self._remaining:
                    self._end_member()
            elif self._padding:
                take = min(self._padding, len(data))
                data = data[take:]
                self._padding -= take
            else:
                take = min(BLOCK - len(self._header), len(data))
                self._header += data[:take]
                data = data[take:]
                if len(self._header) == BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    self._read_header(block)

    def close(self) -> None:
        if self._ended:
            return
        if self._header or self._remaining or self._padding or self._metadata is not None:
            raise problem(self._where, "the archive ends in the middle of a member")
        if not self.started:
            raise problem(self._where, "the archive is empty")

    def _read_header(self, block: bytes) -> None:
        self.started = True
        if block == bytes(BLOCK):
            self._ended = True
            return
        if not looks_like_tar(block):
            raise problem(self._where, "a member header has a bad checksum (not a tar archive?)")
        self._count += 1
        if self._count > self._limits.max_members:
            raise problem(self._where, f"more than {self._limits.max_members} members")
        kind = block[156:157]
        size = _octal(block[124:136], self._where)
        name = _text(block[0:100])
        if block[257:263] == b"ustar\x00" and block[345]:
            name = f"{_text(block[345:500])}/{name}"
        link = _text(block[157:257])
        if kind in (_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK):
            if size > self._limits.max_metadata_bytes:
                raise problem(self._where, f"an extended header of {size} bytes")
            self._metadata = bytearray()
            self._metadata_kind = kind
            self._begin_data(size)
            return
        pending, self._pending = self._pending, {}
        name = pending.get("path", name)
        link = pending.get("linkpath", link)
        if "size" in pending:
            try:
                size = int(pending["size"])
            except ValueError:
                raise problem(self._where, "an extended header has a malformed size") from None
        member = self._check(name, kind, size, link)
        self._consumer = self._members.start(member) if kind in _REGULAR else None
        self._begin_data(size if kind in _REGULAR or kind == _DIRECTORY else 0)

    def _begin_data(self, size: int) -> None:
        if size < 0:
            raise problem(self._where, "a member with a negative size")
        self._remaining = size
        self._padding = -size % BLOCK
        if not size:
            self._end_member()

    def _end_member(self) -> None:
        if self._metadata is not None:
            data, kind = bytes(self._metadata), self._metadata_kind
            self._metadata = None
            if kind == _PAX:
                self._pending.update(_pax_records(data, self._where))
            elif kind == _GNU_LONG_NAME:
                self._pending["path"] = _text(data)
            elif kind == _GNU_LONG_LINK:
                self._pending["linkpath"] = _text(data)
            return
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()

    def _check(self, raw_name: str, kind: bytes, size: int, link: str) -> TarMember:
        where = self._where
        parts = name_parts(raw_name, where, "member")
        name = "/".join(parts)
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self._symlinks:
                raise problem(where, f"member {raw_name!r} lies below the symbolic link {parent!r}")
        if kind in _REGULAR:
            self._files.add(name)
        elif kind == _HARD_LINK:
            target = "/".join(name_parts(link, where, f"hard link {raw_name!r} to"))
            if target not in self._files:
                raise problem(
                    where, f"hard link {raw_name!r} names {link!r}, which is no earlier file"
                )
            self._files.add(name)
            self.aliases[name] = target
        elif kind == _SYMLINK:
            self._check_symlink(raw_name, parts, link)
            self._symlinks.add(name)
        elif kind == _DIRECTORY:
            pass
        elif kind in _DEVICES and self._layer:
            pass  # device nodes and FIFOs of an image's file system; never extracted here
        else:
            raise problem(where, f"member {raw_name!r} has an unsupported type {kind!r}")
        if kind != _SYMLINK:
            self._symlinks.discard(name)
        return TarMember(name, kind, size, link)

    def _check_symlink(self, raw_name: str, parts: list[str], link: str) -> None:
        where = self._where
        if not link or "\0" in link:
            raise problem(where, f"symbolic link {raw_name!r} has an empty or NUL target")
        if link.startswith("/"):
            if self._layer:
                return  # resolves inside the image's root file system
            raise problem(where, f"symbolic link {raw_name!r} points to the absolute {link!r}")
        resolved = parts[:-1]
        for part in link.split("/"):
            if part == "..":
                if not resolved:
                    raise problem(
                        where, f"symbolic link {raw_name!r} points outside the archive ({link!r})"
                    )
                resolved.pop()
            elif part not in ("", "."):
                resolved.append(part)
        self.aliases["/".join(parts)] = "/".join(resolved)


def looks_like_tar(block: bytes) -> bool:
    if block == bytes(BLOCK):
        return True
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])
