"""Errors that the CLI turns into one clear line (never a traceback)."""


class ProgsError(Exception):
    """Base class of every error progs reports to a user as a single line."""


class InputError(ProgsError):
    """A file or dataset given to progs is missing or malformed; the message names the file."""


def optional_import(module: str, extra: str, purpose: str):
    """Import ``module`` (a package of one of progs' extras) or raise a one-line :class:`ProgsError`
    naming the extra that installs it, e.g. ``optional_import("aiohttp.web", "viewer", "progs serve")``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ProgsError(
            f"{purpose} needs the {package} package: pip install '.[{extra}]' in the progs checkout"
        ) from None
