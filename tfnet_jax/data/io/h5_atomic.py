"""An HDF5 file written under a temporary name beside its target and renamed into place on
`close`, so a reader never sees a half-written file (the GCTX and h5ad writers)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py

from tfnet_jax.atomic import publish


class AtomicH5Writer:
    """Subclasses call `_open()` in __init__ (inside their own try/abort), define `close`, and
    call `_publish()` last in it; `abort` and the context manager are shared."""

    def _open(self, path: str | Path) -> h5py.File:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._file = h5py.File(self._tmp, "w")
        return self._file

    def _publish(self) -> None:
        self._file.close()
        publish(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the target path is left as it was."""
        if getattr(self, "_file", None) is not None and self._file.id.valid:
            self._file.close()
        if getattr(self, "_tmp", None) is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, _err, _tb) -> None:
        self.close() if kind is None else self.abort()
