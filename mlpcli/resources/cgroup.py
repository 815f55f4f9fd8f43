"""The memory limits the kernel enforces on this process: those of its own cgroup and of every
ancestor up to the root of the mounted hierarchy, under cgroup v2 (`memory.max`) and v1 (the
memory controller's `memory.limit_in_bytes`), found through /proc/self/cgroup and the mounts
in /proc/self/mountinfo. A container's limit is often set on a parent of the process's cgroup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Where the process's own cgroup and mounts are listed; tests point it at a fake tree.
PROC = Path("/proc/self")

# cgroup v1 reads "no limit" as the largest page-aligned long (9223372036854771712 with 4 KiB
# pages, less with larger pages): any limit this large is none.
V1_UNLIMITED = 2**62


@dataclass(frozen=True)
class Version:
    """A cgroup version: the file system type of its mounts (and, for v1, the controller the
    mount must hold), its limit and usage files, and the counter of file pages in memory.stat
    the kernel reclaims before it kills (left out of the usage)."""

    fstype: str
    controller: str | None
    limit: str
    usage: str
    reclaimable: str

    def mounts(self, fstype: str, options: list[str]) -> bool:
        return fstype == self.fstype and (self.controller is None or self.controller in options)


V2 = Version("cgroup2", None, "memory.max", "memory.current", "inactive_file")
V1 = Version(
    "cgroup", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
)


@dataclass(frozen=True)
class Limit:
    free: int  # bytes this cgroup still lets its processes take
    file: Path  # the file that sets the limit


def tightest(proc: Path | None = None) -> Limit | None:
    """The least memory left under any cgroup limit on this process; None when no cgroup along
    its path has one (or the cgroup files cannot be read)."""
    found = limits(proc)
    return min(found, key=lambda limit: limit.free) if found else None


def limits(proc: Path | None = None) -> list[Limit]:
    """Every memory limit along the process's cgroup paths, v2 and v1 (a hybrid host has both)."""
    return [
        limit
        for own in folders(proc)
        for folder in own.up()
        if (limit := _limit(folder, own.version)) is not None
    ]


@dataclass(frozen=True)
class Own:
    """The folder of the process's cgroup in one mounted hierarchy."""

    folder: Path
    mount: Path  # the hierarchy's mount point: the folder or one of its parents
    version: Version

    def up(self) -> list[Path]:
        """The folder and each parent up to the mount point."""
        return [self.folder, *(self.mount / p for p in self.folder.relative_to(self.mount).parents)]


def folders(proc: Path | None = None) -> list[Own]:
    """The process's cgroup folders with a memory controller: v2's, v1's memory hierarchy's."""
    proc = proc or PROC
    try:
        cgroups = (proc / "cgroup").read_text().splitlines()
        mounts = [
            m for line in (proc / "mountinfo").read_text().splitlines() if (m := _mount(line))
        ]
    except OSError:
        return []
    found = []
    for line in cgroups:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            version = V2
        elif "memory" in controllers.split(","):
            version = V1
        else:
            continue
        for root, point, fstype, options in mounts:
            folder = _folder(root, point, path) if version.mounts(fstype, options) else None
            if folder is not None:
                found.append(Own(folder, point, version))
                break
    return found


def _mount(line: str) -> tuple[str, Path, str, list[str]] | None:
    """(root within its file system, mount point, file system type, super options) of one line
    of mountinfo: `id parent major:minor root point options [tags...] - type source super`."""
    fields = line.split()
    if "-" not in fields:
        return None
    dash = fields.index("-")
    if dash < 5 or len(fields) < dash + 2:
        return None
    options = fields[dash + 3].split(",") if len(fields) > dash + 3 else []
    return _unescape(fields[3]), Path(_unescape(fields[4])), fields[dash + 1], options


def _unescape(text: str) -> str:
    """mountinfo writes a space, tab, newline and backslash as \\040, \\011, \\012, \\134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _folder(root: str, point: Path, path: str) -> Path | None:
    """The folder of cgroup `path` under a mount of the hierarchy's `root`; None when the mount
    does not hold it. Outside a cgroup namespace a container sees a mount of its own cgroup
    (root /docker/ID), and its path in /proc/self/cgroup starts with that root."""
    root, path = root.rstrip("/"), path.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    parts = path[len(root) :].split("/")
    if ".." in parts:  # a cgroup outside this namespace's view
        return None
    return point.joinpath(*parts)


def _limit(folder: Path, version: Version) -> Limit | None:
    try:
        text = (folder / version.limit).read_text().strip()
        if text == "max":
            return None
        limit = int(text)
        if limit >= V1_UNLIMITED:
            return None
        used = int((folder / version.usage).read_text()) - _stat(folder, version.reclaimable)
    except (OSError, ValueError):
        return None
    return Limit(max(limit - max(used, 0), 0), folder / version.limit)


def _stat(folder: Path, key: str) -> int:
    """A counter of the folder's memory.stat, in bytes; 0 when it is not there."""
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
