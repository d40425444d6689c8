"""Files confined to a root directory: read and written so nothing planted inside can redirect them.

A vault (``VAULT_PATH``) and the export folder (``EXPORT_DIR``) are folders
other people or programs write to.  A symbolic link planted there would make
a path-based ``open()`` read a file outside (``/etc/passwd`` into
``documents``) or write one (an export over ``~/.ssh/authorized_keys``).  So
below the root every step is taken relative to an open directory descriptor
with ``O_NOFOLLOW``: no symlink is followed, file or directory, and a name is
one path component (no ``/``, no ``..``).  The root itself is taken as
configured.

Reading opens with ``O_NONBLOCK`` (a FIFO named ``x.md`` must not hang the
job), checks on the open descriptor that the file is regular, and reads at
most ``max_bytes`` + 1 bytes.  Writing creates a temporary file with
``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name beside the target, then
renames it over the target: a symlink at the target's name is replaced, its
destination left untouched.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import BrokerJobsError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafeFileError(BrokerJobsError):
    """A path under a root that is not a plain file or folder reached without a link.

    Parameters:
      path: The path relative to the root.
      reason: Why it was refused (``symbolic link``, ``not a regular file``, ``larger than ...``).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Entry:
    """One file found under a root: its POSIX path relative to the root, or why it was refused."""

    path: str
    refused: str | None = None


def _component(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafeFileError(name, "not a single path component")
    return name


def open_root(path: os.PathLike[str] | str, follow: bool = True) -> int:
    """A descriptor of the root folder ``path`` (close it with ``os.close``).

    Parameters:
      path: The root as configured.
      follow: Whether ``path`` itself may be a symbolic link (``VAULT_PATH`` may; ``EXPORT_DIR`` may not).

    Raises:
      UnsafeFileError: ``path`` is a symbolic link and ``follow`` is false.
      OSError: ``path`` is not an existing folder.
    """
    flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | (0 if follow else _NOFOLLOW)
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and not follow and os.path.islink(path)):
            raise UnsafeFileError(str(path), "is a symbolic link; configure the real folder") from None
        raise


def _open_dir(parent: int, name: str, path: str) -> int:
    try:
        return os.open(_component(name), os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFileError(path, "a folder on its path is a symbolic link or not a folder") from None
        raise


def walk(root_fd: int, suffix: str = "", skip_hidden: bool = True) -> Iterator[Entry]:
    """Every file under the root whose name ends with ``suffix``, in sorted order.

    Symbolic links (to files or folders) and special files (FIFOs, sockets,
    devices) are yielded as refused, with the reason; folders reached through
    a link are never entered.  Names that are not UTF-8 are refused too (they
    cannot be stored as text).  Hidden names (``.obsidian``) are skipped.
    """
    yield from _walk(root_fd, "", suffix, skip_hidden)


def _walk(dir_fd: int, prefix: str, suffix: str, skip_hidden: bool) -> Iterator[Entry]:
    with os.scandir(dir_fd) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        if skip_hidden and name.startswith("."):
            continue
        relative = prefix + name
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            if name.endswith(suffix):
                yield Entry(relative.encode("utf-8", "replace").decode(), "file name is not UTF-8")
            continue
        if entry.is_symlink():
            if name.endswith(suffix) or entry.is_dir():  # a link to a folder may hide notes: say so
                yield Entry(relative, "symbolic link (only regular files inside the root are read)")
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                child = _open_dir(dir_fd, name, relative)
            except (UnsafeFileError, OSError) as exc:  # swapped for a link since the listing, or unreadable
                yield Entry(relative, getattr(exc, "reason", None) or str(exc))
                continue
            try:
                yield from _walk(child, relative + "/", suffix, skip_hidden)
            finally:
                os.close(child)
            continue
        if not name.endswith(suffix):
            continue
        if not entry.is_file(follow_symlinks=False):
            yield Entry(relative, "not a regular file")
            continue
        yield Entry(relative)


def read_file(root_fd: int, relative: str, max_bytes: int, limit_name: str = "max_bytes") -> bytes:
    """The bytes of the regular file ``relative`` under the root, at most ``max_bytes``.

    Parameters:
      root_fd: From :func:`open_root`.
      relative: POSIX path below the root.
      max_bytes: A larger file is refused.
      limit_name: The setting named in the refusal (``VAULT_MAX_NOTE_BYTES``).

    Raises:
      UnsafeFileError: a link on the way, not a regular file, or larger than ``max_bytes``.
      OSError: the file cannot be read (gone since it was listed).
    """
    *folders, name = relative.split("/")
    opened: list[int] = []
    try:
        parent = root_fd
        for folder in folders:
            parent = _open_dir(parent, folder, relative)
            opened.append(parent)
        try:
            fd = os.open(_component(name), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFileError(relative, "symbolic link (only regular files inside the root are read)") \
                    from None
            raise
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeFileError(relative, "not a regular file")
            if info.st_size > max_bytes:
                raise UnsafeFileError(relative, f"{info.st_size} bytes, larger than {limit_name}={max_bytes}")
            data = handle.read(max_bytes + 1)  # it may have grown since fstat
        if len(data) > max_bytes:
            raise UnsafeFileError(relative, f"larger than {limit_name}={max_bytes}")
        return data
    finally:
        for fd in opened:
            os.close(fd)


def write_file(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    """Create or replace ``name`` in the folder ``dir_fd`` atomically, following no link.

    Readers see the old file or the new one, never half of one; whatever was
    planted at ``name`` (a link, a file) is replaced, not written through.

    Raises:
      UnsafeFileError: ``name`` is a folder (it cannot be replaced by a file).
    """
    _component(name)
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        if isinstance(exc, IsADirectoryError):
            raise UnsafeFileError(name, "is a folder; remove it to export there") from None
        raise
