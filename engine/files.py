"""Files only their owner may read: the audit database, the log, the token file and the
OPC UA server's key live in a folder (``var/`` by default) that holds what an operator
decided and the service's credentials.

Modes are set when a file or folder is created and are not changed afterwards (a folder
given by the site file, such as ``/tmp``, is not TwinLoop's to restrict).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: str | Path) -> Path:
    """Create the folder ``path`` readable by its owner only (0700) if it does not exist
    (any missing parents too); an existing folder is left as it is. Returns the path."""
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)  # exists: made meanwhile
    return path


def private_file(path: str | Path) -> Path:
    """Create the empty file ``path`` readable and writable by its owner only (0600), and
    its folder by :func:`private_directory`, if it does not exist; an existing file is left
    as it is. Returns the path."""
    path = Path(path)
    private_directory(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    return path


def write_private(path: str | Path, text: str) -> Path:
    """Replace the file ``path`` by ``text``, atomically and durably, readable and writable
    by its owner only (0600): the text goes to a temporary file in the same folder, which is
    flushed to disk, renamed over ``path`` and the folder's entry flushed too. A reader sees
    the old file or the new one, never a part; on failure the temporary file is removed and
    ``path`` is as it was. The folder must exist. Returns the path."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")  # mkstemp: mode 0600
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path
