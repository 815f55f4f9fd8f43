"""Atomic file writes: a reader or a crash sees the old file or the new one, never a part."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from ..errors import RunError, WriteError

TMP_SUFFIX = ".tmp"
# .NAME.PID.tmp: the temporary of NAME written by process PID.
_TEMPORARY = re.compile(rf"\.(?P<name>.+)\.(?P<pid>\d+){re.escape(TMP_SUFFIX)}")
# Opening a FIFO for reading would wait for a writer; O_NONBLOCK returns at once, and the
# fstat after it refuses anything but a regular file.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write to a temporary name in the same folder, sync, then rename over the final name.

    A reader (or a crash, a kill -9, a full disk) sees the old complete file or the new complete
    file, never a part. A failed write leaves the old file untouched and raises WriteError.
    """
    path = Path(path)
    check_own(path, "file")
    sweep_leftovers(path)
    tmp = temporary_name(path)
    try:
        # Exclusive: a link planted under the temporary name is replaced, never written through.
        tmp.unlink(missing_ok=True)
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    try:
        sync_folder(path.parent)
    except OSError as exc:
        raise WriteError(
            f"{path}: written, but its folder could not be synced ({exc.strerror}); "
            f"a power cut now could lose the new version"
        ) from None


def make_folder(path: Path) -> None:
    """Create a folder (and its parents); an existing link or file under its name is refused."""
    check_own(path, "folder")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None


def check_own(path: Path, kind: str) -> None:
    """Refuse a symbolic link, or an entry of another kind, where a file or folder belongs.

    A shared folder may hold links planted to make mlp read or write elsewhere: through a link
    to another folder a resume would overwrite that folder's files. A missing entry is fine.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(mode):
        raise RunError(
            f"{path}: is a symbolic link; mlp reads and writes a run folder's own files and "
            f"folders only, never through a link (remove it, or copy what it points to in its place)"
        )
    wanted = stat.S_ISDIR(mode) if kind == "folder" else stat.S_ISREG(mode)
    if not wanted:
        raise RunError(f"{path}: not a regular {kind}; expected the run folder's own {kind} here")


def open_own(path: Path) -> BinaryIO:
    """A regular file opened for reading; a link under its name is refused, checked on the
    open itself (no race between a check and the open)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_own(path, "file")  # raises, naming the link
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{path}: not a regular file; expected the run folder's own file here")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def temporary_name(path: Path) -> Path:
    """Hidden, per process, and recognisable, so leftovers of a killed process can be swept."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def sync_folder(folder: Path) -> None:
    """Make a rename durable: the folder's entry, not only the file's bytes, reaches the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: str) -> None:
    """Append in one write() to an O_APPEND file, so a kill leaves whole lines only; a write
    cut short (a full disk can do that without an error) is undone and reported.
    """
    data = line.encode("utf-8")
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                check_own(path, "file")
            size = os.fstat(fd).st_size
            if os.write(fd, data) != len(data):
                os.ftruncate(fd, size)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_own(path, "file")  # raises, naming the link
        raise write_error(path, exc) from None


def sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files killed processes left behind (never a final name, and never
    the file a live process is still writing)."""
    for leftover in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        match = _TEMPORARY.fullmatch(leftover.name)
        if match and not leftover.is_symlink() and not pid_alive(int(match["pid"])):
            leftover.unlink(missing_ok=True)


def sweep_leftovers(path: Path) -> None:
    """Remove the temporaries of `path` that killed processes left (say, a kill -9 during
    `mlp predict -o`), when the same file is written again."""
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return  # the write itself reports an unusable folder
    for name in names:
        match = _TEMPORARY.fullmatch(name)
        if name.startswith(prefix) and match and match["name"] == path.name:
            if not pid_alive(int(match["pid"])):
                (path.parent / name).unlink(missing_ok=True)


def check_output(
    path: str | Path,
    option: str = "-o",
    *,
    replace: Callable[[Path], bool] | None = None,
    what: str = "give another file name or remove it",
) -> Path:
    """The file an output option names, if it may be written (RunError, exit 2, naming the option
    and the path, otherwise): its folder exists; nothing is there, or a plain file `replace`
    accepts (a command's own earlier output; None: nothing existing is replaced). A link or a
    folder there is refused whatever `replace` says: writing would land somewhere else."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RunError(f"{option} {path}: the folder {path.parent} does not exist; create it first")
    if not os.path.lexists(path):
        return path
    if path.is_symlink() or not path.is_file():
        kind = "a symbolic link" if path.is_symlink() else "a folder"
        if not path.is_symlink() and not path.is_dir():
            kind = "something other than a file"
        raise RunError(f"{option} {path}: {kind} is there; give a file name")
    if replace is None or not replace(path):
        raise RunError(f"{option} {path}: already exists; {what}")
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


WRITE_HINTS = {
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is used up; free some space",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "no permission to write there; choose a writable folder",
    errno.EPERM: "no permission to write there; choose a writable folder",
    errno.EFBIG: "the file is larger than this system allows",
}


def write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or exc.__class__.__name__
    hint = WRITE_HINTS.get(exc.errno or 0, "check the folder")
    return WriteError(f"{path}: cannot write ({reason}); {hint} (any earlier version is untouched)")


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
