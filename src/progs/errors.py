"""Errors that the CLI turns into one clear line (never a traceback)."""


class ProgsError(Exception):
    """Base class of every error progs reports to a user as a single line."""


class InputError(ProgsError):
    """A file or dataset given to progs is missing or malformed; the message names the file."""
