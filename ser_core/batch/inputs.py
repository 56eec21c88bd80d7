"""Inputs of a batch run: local paths or fsspec URLs, each analysed into exactly one result row.

:func:`find_inputs` turns what a user names (files, folders searched recursively, URLs) into
``(path, error)`` pairs; :func:`analyse` turns one of them into its row, never raising.

A URL (``file://``, ``http(s)://``, and ``s3://``, ``gs://`` or any other protocol of fsspec
whose filesystem package is installed) needs ``fsspec`` (in ``requirements-cluster.txt``).
A folder URL is listed recursively in the order ``os.walk`` gives a local folder (over HTTP,
the links of its index page, as ``python -m http.server`` serves them). A URL is decided to
be a file by its audio extension, so listing never downloads a recording. The decoder reads
local files, so a remote file is streamed in chunks into a temporary copy that is deleted
as soon as it has been analysed: memory stays bounded and nothing else is fetched.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from ..errors import AudioError, ParameterError, SERError

__all__ = ["Input", "find_inputs", "is_url", "iter_url", "local_file", "analyse"]

Input = tuple[str, str | None]  # a file's path or URL, and the sentence that says why it cannot be read (or None)

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
LOCAL_PROTOCOLS = frozenset({"file", "local"})


def is_url(raw: str) -> bool:
    """Whether ``raw`` names a URL (``scheme://...``) rather than a local path."""
    return bool(URL_PATTERN.match(raw))


def find_inputs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Input]:
    """``(path, error)`` for each file named or found in a folder (recursively, sorted) or at a URL.

    ``error`` is a sentence for an argument that is missing or a folder without audio.
    """
    for raw in map(str, paths):
        if is_url(raw):
            yield from iter_url(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            found = False
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                        found = True
                        yield os.path.join(root, name), None
            if not found:
                yield raw, f"The folder '{raw}' holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})."
        elif path.exists():
            yield raw, None
        else:
            yield raw, f"'{raw}' does not exist; check the path."


def _filesystem(url: str):
    """``(fsspec filesystem, path within it)`` for ``url``; a sentence when it cannot be read here."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ParameterError(
            f"Reading URLs such as '{url}' needs fsspec; install it with pip install fsspec."
        ) from None
    try:
        return url_to_fs(url)
    except ImportError as e:  # e.g. s3:// without s3fs: fsspec says which package
        raise ParameterError(f"Reading '{url}' needs a package that is not installed ({e}).") from None
    except ValueError as e:
        raise ParameterError(
            f"'{url}' cannot be read: {e}; use a path or a file://, http(s)://, s3:// or gs:// URL."
        ) from None


def _is_audio(name: str) -> bool:
    return posixpath.splitext(name.rstrip("/"))[1].lower() in AUDIO_EXTENSIONS


def _walk(fs, folder: str) -> Iterator[str]:
    """Audio files under ``folder`` as ``os.walk`` orders them: its files sorted, then each sub-folder, sorted."""
    entries = fs.ls(folder, detail=True)
    inside = folder.rstrip("/") + "/"
    files = sorted(e["name"] for e in entries if e["type"] != "directory" and _is_audio(e["name"]))
    # only links below this folder: an index page may also link to its parent
    folders = sorted(
        e["name"] for e in entries if e["type"] == "directory" and e["name"].rstrip("/").startswith(inside)
    )
    yield from files
    for sub in folders:
        yield from _walk(fs, sub)


def iter_url(url: str) -> Iterator[Input]:
    """``(url, error)`` for the file a URL names, or for each audio file of a folder URL, recursively.

    ``error`` is one sentence for a URL that cannot be listed, is missing or holds no audio.
    """
    try:
        fs, path = _filesystem(url)
    except ParameterError as e:
        yield url, str(e)
        return
    try:
        if _is_audio(path):
            found = fs.exists(path)
            listed = [url] if found else []
        else:
            listed = [fs.unstrip_protocol(name) for name in _walk(fs, path)]
            found = True
    except FileNotFoundError:
        found, listed = False, []
    except Exception as e:  # network, permissions, credentials: one line, the run goes on
        yield (
            url,
            f"'{url}' could not be listed ({type(e).__name__}); check the address, the network and your credentials.",
        )
        return
    if not found:
        yield url, f"'{url}' does not exist; check the address."
    elif not listed:
        yield url, f"The folder '{url}' holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})."
    yield from ((name, None) for name in listed)


def _basename(path: str) -> str:
    """The file name of a URL's path, unquoted, so that messages name the file as its owner does."""
    return urllib.parse.unquote(posixpath.basename(path.rstrip("/"))) or "audio"


@contextlib.contextmanager
def local_file(source: str) -> Iterator[str]:
    """A local path holding ``source``: the path itself, or a temporary copy of a remote URL,
    deleted when the block ends. Raises :class:`AudioError` when the URL cannot be read."""
    if not is_url(source):
        yield source
        return
    fs, path = _filesystem(source)
    if LOCAL_PROTOCOLS & set(fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        yield path  # file://: a shared filesystem, read in place
        return
    with tempfile.TemporaryDirectory(prefix="ser-core-") as folder:
        local = os.path.join(folder, _basename(path))
        try:
            fs.get_file(path, local)  # streamed in chunks
        except FileNotFoundError:
            raise AudioError(f"'{source}' does not exist; check the address.") from None
        except Exception as e:
            raise AudioError(
                f"'{source}' could not be read ({type(e).__name__}); check the address, the network and your credentials."
            ) from e
        yield local


def analyse(source: str, analysis: Callable[[str], dict]) -> dict:
    """``{"path": source, **analysis(local path)}``, or ``{"path": source, "error": sentence}``.

    Never raises for a bad input: one file must not end a batch of thousands.
    """
    try:
        with local_file(source) as path:
            return {"path": source, **analysis(path)}
    except SERError as e:
        return {"path": source, "error": str(e)}
    except MemoryError:
        return {
            "path": source,
            "error": "The file is too large to analyse with the memory available; cut it into parts.",
        }
    except Exception as e:  # a decoder bug must not end a batch of thousands of files
        return {
            "path": source,
            "error": f"The file could not be analysed ({type(e).__name__}); please report it with the file.",
        }
