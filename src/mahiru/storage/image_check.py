"""Checking a container image archive while it streams in: the rules of the ingress gate.

Every image that arrives at a site (a user's upload, an asset or result
fetched from a peer) is written to the blob store through an `ImageCheck`,
which reads the bytes as they pass, with no second pass over the file. It
accepts only a sound `docker save` (or OCI layout) archive:

- a tar archive whose members are files, folders and links, with safe names
  (relative, no `..`, no NUL) and link targets that stay inside the archive;
  no member lies below a symbolic link (writing through a link);
- a `manifest.json` naming a config and layers that are all present;
- every layer a tar archive (plain or gzip-compressed) held to the same name
  rules, where absolute symbolic links are allowed (they resolve inside the
  image's root file system) but hard links must name an earlier member;
- a gzip layer that expands to at most `max_ratio` times what it was
  compressed to (beyond a floor), so a decompression bomb is stopped early.

Anything else is InvalidInput naming the member and the problem, raised by
`feed` or `finish`; the blob writer then stores nothing.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from mahiru.errors import InvalidInput

BLOCK = 512
MiB = 1024 * 1024

_REGULAR = {b"0", b"\0", b"7"}
_HARD_LINK, _SYMLINK, _DIRECTORY = b"1", b"2", b"5"
_DEVICES = {b"3", b"4", b"6"}  # character, block, FIFO
_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK = b"x", b"g", b"L", b"K"
_GZIP_MAGIC = b"\x1f\x8b"
_MANIFEST = "manifest.json"


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


class _Consumer(Protocol):
    def feed(self, data: memoryview) -> None: ...

    def close(self) -> None: ...


class _Member(Protocol):
    def start(self, member: _TarMember) -> _Consumer | None: ...


@dataclass(frozen=True, slots=True)
class _TarMember:
    name: str  # normalised: relative, no `.` or `..` parts; "" for the root folder
    kind: bytes
    size: int
    link: str


def _problem(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"not a sound image archive: {where}: {message}", {"where": where})


def _parts(text: str, where: str, what: str) -> list[str]:
    """The parts of a relative archive path; InvalidInput for absolute, `..` or NUL."""
    if "\0" in text:
        raise _problem(where, f"{what} {text!r} contains a NUL byte")
    if text.startswith("/"):
        raise _problem(where, f"{what} {text!r} is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _problem(where, f"{what} {text!r} leads out of the archive with '..'")
    return parts


def _octal(field: bytes, where: str) -> int:
    if field and field[0] & 0x80:  # base-256, for sizes above 8 GiB
        if field[0] & 0x40:
            raise _problem(where, "a negative number in a member header")
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
        raise _problem(where, f"a member header has the malformed number {text!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            raise _problem(where, "a malformed extended (pax) header")
        try:
            length = int(data[position:space])
        except ValueError:
            raise _problem(where, "a malformed extended (pax) header") from None
        if length <= space - position or position + length > len(data):
            raise _problem(where, "a malformed extended (pax) header")
        record = data[space + 1 : position + length - 1]
        key, equals, value = record.partition(b"=")
        if not equals:
            raise _problem(where, "a malformed extended (pax) header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class _TarReader:
    """Reads a tar stream fed in pieces, checking each member and handing its data on."""

    def __init__(self, where: str, members: _Member, limits: ImageLimits, *, layer: bool) -> None:
        self._where = where
        self._members = members
        self._limits = limits
        self._layer = layer
        self._header = bytearray()
        self._remaining = 0  # data bytes of the current member still to come
        self._padding = 0
        self._consumer: _Consumer | None = None
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
            raise _problem(self._where, "the archive ends in the middle of a member")
        if not self.started:
            raise _problem(self._where, "the archive is empty")

    def _read_header(self, block: bytes) -> None:
        self.started = True
        if block == bytes(BLOCK):
            self._ended = True
            return
        if not _looks_like_tar(block):
            raise _problem(self._where, "a member header has a bad checksum (not a tar archive?)")
        self._count += 1
        if self._count > self._limits.max_members:
            raise _problem(self._where, f"more than {self._limits.max_members} members")
        kind = block[156:157]
        size = _octal(block[124:136], self._where)
        name = _text(block[0:100])
        if block[257:263] == b"ustar\x00" and block[345]:
            name = f"{_text(block[345:500])}/{name}"
        link = _text(block[157:257])
        if kind in (_PAX, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK):
            if size > self._limits.max_metadata_bytes:
                raise _problem(self._where, f"an extended header of {size} bytes")
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
                raise _problem(self._where, "an extended header has a malformed size") from None
        member = self._check(name, kind, size, link)
        self._consumer = self._members.start(member) if kind in _REGULAR else None
        self._begin_data(size if kind in _REGULAR or kind == _DIRECTORY else 0)

    def _begin_data(self, size: int) -> None:
        if size < 0:
            raise _problem(self._where, "a member with a negative size")
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

    def _check(self, raw_name: str, kind: bytes, size: int, link: str) -> _TarMember:
        where = self._where
        parts = _parts(raw_name, where, "member")
        name = "/".join(parts)
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self._symlinks:
                raise _problem(
                    where, f"member {raw_name!r} lies below the symbolic link {parent!r}"
                )
        if kind in _REGULAR:
            self._files.add(name)
        elif kind == _HARD_LINK:
            target = "/".join(_parts(link, where, f"hard link {raw_name!r} to"))
            if target not in self._files:
                raise _problem(
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
            raise _problem(where, f"member {raw_name!r} has an unsupported type {kind!r}")
        if kind != _SYMLINK:
            self._symlinks.discard(name)
        return _TarMember(name, kind, size, link)

    def _check_symlink(self, raw_name: str, parts: list[str], link: str) -> None:
        where = self._where
        if not link or "\0" in link:
            raise _problem(where, f"symbolic link {raw_name!r} has an empty or NUL target")
        if link.startswith("/"):
            if self._layer:
                return  # resolves inside the image's root file system
            raise _problem(where, f"symbolic link {raw_name!r} points to the absolute {link!r}")
        resolved = parts[:-1]
        for part in link.split("/"):
            if part == "..":
                if not resolved:
                    raise _problem(
                        where, f"symbolic link {raw_name!r} points outside the archive ({link!r})"
                    )
                resolved.pop()
            elif part not in ("", "."):
                resolved.append(part)
        self.aliases["/".join(parts)] = "/".join(resolved)


class _Probe:
    """Looks at the first bytes of a member of the outer archive to tell a layer from data."""

    def __init__(self, owner: ImageCheck, member: _TarMember) -> None:
        self._owner = owner
        self._member = member
        self._head = bytearray()
        self._inner: _Consumer | None = None
        self._kind = "data"
        self._keep: bytearray | None = bytearray() if member.name == _MANIFEST else None

    def feed(self, data: memoryview) -> None:
        if self._keep is not None:
            if len(self._keep) + len(data) > self._owner.limits.max_metadata_bytes:
                raise _problem(_MANIFEST, "larger than the limit for metadata")
            self._keep += data
        if self._inner is not None:
            self._inner.feed(data)
            return
        self._head += data
        if len(self._head) >= BLOCK:
            self._decide()

    def _decide(self) -> None:
        head = bytes(self._head)
        self._head.clear()
        where = f"layer {self._member.name}"
        limits = self._owner.limits
        if head.startswith(_GZIP_MAGIC):
            self._kind = "tar"
            self._inner = _Gunzip(where, _TarReader(where, _Skip(), limits, layer=True), limits)
        elif len(head) >= BLOCK and _looks_like_tar(head[:BLOCK]):
            self._kind = "tar"
            self._inner = _TarReader(where, _Skip(), limits, layer=True)
        else:
            self._inner = _Skip()
        self._inner.feed(memoryview(head))

    def close(self) -> None:
        if self._inner is None:
            self._decide()
        assert self._inner is not None
        self._inner.close()
        self._owner.kinds[self._member.name] = self._kind
        if self._keep is not None:
            self._owner.manifest = bytes(self._keep)


def _looks_like_tar(block: bytes) -> bool:
    if block == bytes(BLOCK):
        return True
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])


class _Skip:
    def start(self, member: _TarMember) -> _Consumer | None:
        return None

    def feed(self, data: memoryview) -> None:
        pass

    def close(self) -> None:
        pass


class _Gunzip:
    """Decompresses a gzip stream (of one or more members) into a consumer, within a ratio."""

    def __init__(self, where: str, inner: _Consumer, limits: ImageLimits) -> None:
        self._where = where
        self._inner = inner
        self._limits = limits
        self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._compressed = 0
        self._expanded = 0

    def feed(self, data: memoryview) -> None:
        self._compressed += len(data)
        pending = bytes(data)
        while pending:
            if self._decompressor.eof:
                pending = self._decompressor.unused_data + pending
                self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = self._decompressor.decompress(pending, MiB)
            except zlib.error as error:
                raise _problem(self._where, f"broken gzip data ({error})") from None
            pending = self._decompressor.unconsumed_tail
            if self._decompressor.eof and not pending:
                pending = self._decompressor.unused_data
                if pending:
                    self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._expanded += len(out)
            limits = self._limits
            if (
                self._expanded > limits.ratio_floor
                and self._expanded > limits.max_ratio * self._compressed
            ):
                raise _problem(
                    self._where,
                    f"expands to more than {limits.max_ratio:g} times its compressed size"
                    " (a decompression bomb?)",
                )
            if out:
                self._inner.feed(memoryview(out))
            if not out and not pending:
                break

    def close(self) -> None:
        if not self._decompressor.eof:
            raise _problem(self._where, "the gzip data ends early")
        self._inner.close()


class ImageCheck:
    """The checks of one image archive as it streams: `feed` every chunk, then `finish`."""

    def __init__(self, limits: ImageLimits | None = None) -> None:
        self.limits = limits or ImageLimits()
        self.kinds: dict[str, str] = {}  # member name -> "tar" (a layer) or "data"
        self.manifest: bytes | None = None
        self._outer = _TarReader("the archive", self, self.limits, layer=False)

    def start(self, member: _TarMember) -> _Consumer | None:
        return _Probe(self, member)

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Check the next piece of the archive; InvalidInput as soon as something is wrong."""
        self._outer.feed(memoryview(chunk))

    def finish(self) -> None:
        """Check what only the whole archive tells (its manifest); InvalidInput if unsound."""
        self._outer.close()
        if self.manifest is None:
            raise InvalidInput(
                "not a container image archive: it has no manifest.json"
                " (upload what `docker save` writes)",
                {"where": _MANIFEST},
            )
        for path, role in _manifest_paths(self.manifest):
            name = "/".join(_parts(path, _MANIFEST, f"the {role}"))
            for _ in range(8):  # links to links, as far as any real archive goes
                if name in self.kinds or name not in self._outer.aliases:
                    break
                name = self._outer.aliases[name]
            kind = self.kinds.get(name)
            if kind is None:
                raise _problem(_MANIFEST, f"names the {role} {path!r}, which is not in the archive")
            if role == "layer" and kind != "tar":
                raise _problem(f"layer {name}", "is not a tar archive (plain or gzip-compressed)")


def _manifest_paths(data: bytes) -> list[tuple[str, str]]:
    try:
        manifest: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _problem(_MANIFEST, "is not JSON") from None
    if not isinstance(manifest, list) or not manifest:
        raise _problem(_MANIFEST, "must be a non-empty list of images")
    paths: list[tuple[str, str]] = []
    for entry in manifest:
        if not isinstance(entry, dict):
            raise _problem(_MANIFEST, "each image must be an object")
        config, layers = entry.get("Config"), entry.get("Layers")
        if not isinstance(config, str) or not isinstance(layers, list):
            raise _problem(_MANIFEST, "each image needs a Config path and a Layers list")
        paths.append((config, "config"))
        for layer in layers:
            if not isinstance(layer, str):
                raise _problem(_MANIFEST, "layer paths must be text")
            paths.append((layer, "layer"))
    return paths
