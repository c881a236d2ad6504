"""Where logs live: a local folder, or an fsspec URL (``s3://``, ``gs://``, ``memory://``, ...).

A local path (or a ``file://`` URL) stays a :class:`pathlib.Path` and is read with the operating system's
calls, so the local checks hold: links, FIFOs and folders are named before anything is opened. Any other URL
is opened with ``fsspec.core.url_to_fs``; its credentials come from the usual fsspec and cloud configuration
(environment variables, ``~/.aws``, ``gcloud`` login, ``fsspec.config``), never from this package's options.
Such a run's paths are :class:`pathlib.PurePosixPath` s inside that filesystem.

The filesystem travels with a pickled :class:`~cartography_core.ingest.Run` to Dask workers, which open it
again from its URL and options; ``memory://`` is private to one process, so it serves the in-process engine
and tests only.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import IO

from .errors import LogError, short

FileSystem = object  # an fsspec AbstractFileSystem; fsspec is imported only for URLs


def is_url(location: str | Path) -> bool:
    """Whether ``location`` names a filesystem by its protocol (``s3://...``), not a local path."""
    return isinstance(location, str) and "://" in location


def locate(location: str | Path) -> tuple[FileSystem | None, Path | PurePosixPath]:
    """``(None, Path)`` for a local path or ``file://`` URL, else ``(fs, PurePosixPath)`` for an fsspec URL."""
    if not is_url(location):
        return None, Path(location)
    if location.startswith("file://"):
        return None, Path(location[len("file://") :])
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package is not installed
        raise LogError(f"{location}: cannot open this URL: {short(exc)}") from None
    return fs, PurePosixPath(path)


def url(fs: FileSystem, path: PurePosixPath) -> str:
    """The URL of ``path`` in ``fs``, as messages and metadata show it."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{str(path).lstrip('/')}"


def location(text: str) -> str | Path:
    """A command-line location: a URL stays a string, anything else is a local :class:`Path`."""
    return text if is_url(text) and not text.startswith("file://") else Path(locate(text)[1])


def join(location: str | Path, *parts: str) -> str | Path:
    """``location`` (a path or URL) with ``parts`` appended, ``/``-separated."""
    if isinstance(location, Path):
        return location.joinpath(*parts)
    return "/".join([location.rstrip("/"), *parts])


def kind(fs: FileSystem, path: PurePosixPath) -> str:
    """'file', 'directory' or 'missing' for a path in ``fs``."""
    try:
        info = fs.info(str(path))
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise LogError(f"{url(fs, path)}: cannot be read ({short(exc)})") from None
    return "directory" if info["type"] == "directory" else "file"


def entries(fs: FileSystem, folder: PurePosixPath) -> list[tuple[str, str]]:
    """``(name, 'file' or 'directory')`` of every entry of ``folder``, sorted by name."""
    try:
        listed = fs.ls(str(folder), detail=True)
    except OSError as exc:
        raise LogError(f"{url(fs, folder)}: cannot list this folder ({short(exc)})") from None
    out = [(PurePosixPath(e["name"]).name, "directory" if e["type"] == "directory" else "file") for e in listed]
    return sorted(out)


def open_binary(fs: FileSystem, path: PurePosixPath) -> IO[bytes]:
    """A file of ``fs`` opened for reading, buffered in large blocks (one request per block in object stores)."""
    return fs.open(str(path), "rb", block_size=1 << 23)
