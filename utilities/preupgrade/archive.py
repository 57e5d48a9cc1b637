"""A must-gather given as the archive users make of it (`tar czf must-gather.tar.gz must-gather.local.N`,
or .tar.xz, .tgz, .tar.bz2, .tar): unpacked into a temporary directory for the review, safely.

Safely means: a member whose path is absolute or climbs out with `..`, a symbolic or hard link that
points outside the unpacked tree, and device files or FIFOs refuse the whole archive, naming the
member (a must-gather has none of them; such an archive was not written by `oc adm must-gather`).
Python's `data` tar filter enforces the same again while extracting. The caller removes the directory
(`cleanup`) when the run ends.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar")


class ArchiveError(ValueError):
    """The archive cannot be reviewed; the message says why and what to do."""


def is_archive(path: Path) -> bool:
    return Path(path).is_file() and str(path).lower().endswith(SUFFIXES)


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be unpacked, or None."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        return "its path leaves the archive's directory"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        resolved = target if member.islnk() else name.parent / target
        if target.is_absolute() or ".." in PurePosixPath(os.path.normpath(str(resolved))).parts:
            return f"it links outside the archive's directory (to {member.linkname})"
    if member.isdev() or member.isfifo():
        return "it is a device file or a FIFO"
    return None


def unpack(archive: Path, parent: Path | None = None) -> Path:
    """Unpack `archive` into a new temporary directory (under `parent`, default the system's) and
    return that directory. Raises ArchiveError, leaving nothing behind, when the archive is unreadable
    or unsafe."""
    archive = Path(archive)
    dest = Path(tempfile.mkdtemp(prefix="must-gather-", dir=parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for m in members:
                    why = _unsafe(m)
                    if why:
                        raise ArchiveError(f"must-gather archive {archive} is refused: member {m.name!r}: {why}; "
                                           f"unpack it yourself after checking it and give the directory")
                tar.extractall(dest, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            if isinstance(e, tarfile.FilterError):
                raise ArchiveError(f"must-gather archive {archive} is refused: {e}") from None
            raise ArchiveError(f"must-gather archive {archive} cannot be read ({e}): give the directory "
                               f"`oc adm must-gather` wrote, or a .tar.gz/.tar.xz of it") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
