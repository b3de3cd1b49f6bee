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
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.storage.tar_stream import (
    BLOCK,
    GZIP_MAGIC,
    MANIFEST,
    Consumer,
    ImageLimits,
    MiB,
    TarMember,
    TarReader,
    looks_like_tar,
    name_parts,
    problem,
)


class _Probe:
    """Looks at the first bytes of a member of the outer archive to tell a layer from data."""

    def __init__(self, owner: ImageCheck, member: TarMember) -> None:
        self._owner = owner
        self._member = member
        self._head = bytearray()
        self._inner: Consumer | None = None
        self._kind = "data"
        self._keep: bytearray | None = bytearray() if member.name == MANIFEST else None

    def feed(self, data: memoryview) -> None:
        if self._keep is not None:
            if len(self._keep) + len(data) > self._owner.limits.max_metadata_bytes:
                raise problem(MANIFEST, "larger than the limit for metadata")
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
        if head.startswith(GZIP_MAGIC):
            self._kind = "tar"
            self._inner = _Gunzip(where, TarReader(where, _Skip(), limits, layer=True), limits)
        elif len(head) >= BLOCK and looks_like_tar(head[:BLOCK]):
            self._kind = "tar"
            self._inner = TarReader(where, _Skip(), limits, layer=True)
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


class _Skip:
    def start(self, member: TarMember) -> Consumer | None:
        return None

    def feed(self, data: memoryview) -> None:
        pass

    def close(self) -> None:
        pass


class _Gunzip:
    """Decompresses a gzip stream (of one or more members) into a consumer, within a ratio."""

    def __init__(self, where: str, inner: Consumer, limits: ImageLimits) -> None:
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
                raise problem(self._where, f"broken gzip data ({error})") from None
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
                raise problem(
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
            raise problem(self._where, "the gzip data ends early")
        self._inner.close()


class ImageCheck:
    """The checks of one image archive as it streams: `feed` every chunk, then `finish`."""

    def __init__(self, limits: ImageLimits | None = None) -> None:
        self.limits = limits or ImageLimits()
        self.kinds: dict[str, str] = {}  # member name -> "tar" (a layer) or "data"
        self.manifest: bytes | None = None
        self._outer = TarReader("the archive", self, self.limits, layer=False)

    def start(self, member: TarMember) -> Consumer | None:
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
                {"where": MANIFEST},
            )
        for path, role in _manifest_paths(self.manifest):
            name = "/".join(name_parts(path, MANIFEST, f"the {role}"))
            for _ in range(8):  # links to links, as far as any real archive goes
                if name in self.kinds or name not in self._outer.aliases:
                    break
                name = self._outer.aliases[name]
            kind = self.kinds.get(name)
            if kind is None:
                raise problem(MANIFEST, f"names the {role} {path!r}, which is not in the archive")
            if role == "layer" and kind != "tar":
                raise problem(f"layer {name}", "is not a tar archive (plain or gzip-compressed)")


def _manifest_paths(data: bytes) -> list[tuple[str, str]]:
    try:
        manifest: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise problem(MANIFEST, "is not JSON") from None
    if not isinstance(manifest, list) or not manifest:
        raise problem(MANIFEST, "must be a non-empty list of images")
    paths: list[tuple[str, str]] = []
    for entry in manifest:
        if not isinstance(entry, dict):
            raise problem(MANIFEST, "each image must be an object")
        config, layers = entry.get("Config"), entry.get("Layers")
        if not isinstance(config, str) or not isinstance(layers, list):
            raise problem(MANIFEST, "each image needs a Config path and a Layers list")
        paths.append((config, "config"))
        for layer in layers:
            if not isinstance(layer, str):
                raise problem(MANIFEST, "layer paths must be text")
            paths.append((layer, "layer"))
    return paths
