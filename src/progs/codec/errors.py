"""The codec's error type: every problem found in a stream names the chunk and the byte offset."""

from progs.errors import ProgsError


class FormatError(ProgsError):
    """A stream is malformed, corrupted, truncated where it must not be, or of an unsupported version."""
