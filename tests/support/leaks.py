"""What the PROBE's `leak` mode writes: output entries whose names carry the step's data."""

#: The text the step hides in its names; no reason anyone outside the site sees may hold it.
LEAK_MARKER = "SECRET-7f3a9c"
#: Each makes one entry that is not a regular file or directory, named with the marker:
#: a link with a 250-byte name; a pipe; a socket; a link to a folder; a link at the end of
#: ~4 KiB of nested folder names; a link with a name that is not UTF-8.
LEAK_VARIANTS = ("symlink", "fifo", "socket", "dirlink", "deep", "bytes")
