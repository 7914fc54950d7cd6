"""CasADi Functions generated as C, compiled with the system C compiler and loaded back,
and a fast way to call a Function on numpy arrays.

The generated source is hashed; the shared library is cached under that hash in the
cache directory (``$TWINLOOP_CACHE_DIR``, default ``~/.cache/twinloop``), so a second
controller with the same problem loads it without compiling. Compilation is atomic
(compile to a temporary name, then rename), so concurrent actors do not see half a
library.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import casadi as ca
import numpy as np

COMPILE_FLAGS = ("-O2", "-fPIC", "-shared")
COMPILE_TIMEOUT_S = 300.0


class CompileError(RuntimeError):
    """The C compiler is missing or failed; the message says why."""


def cache_directory() -> Path:
    return Path(os.environ.get("TWINLOOP_CACHE_DIR", Path.home() / ".cache" / "twinloop"))


def compiled(function: ca.Function, directory: Path | None = None) -> ca.Function:
    """``function`` as compiled C code (same inputs and outputs). Raises CompileError
    if there is no C compiler (``$CC``, else ``cc`` or ``gcc``) or it fails."""
    directory = directory or cache_directory()
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise CompileError("no C compiler found (set $CC, or install gcc)")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as work:
        name = function.name()
        source = Path(work) / f"{name}.c"
        generator = ca.CodeGenerator(source.name, {"with_header": False})
        generator.add(function)
        generator.generate(str(Path(work)) + os.sep)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        library = directory / f"{name}_{digest}.so"
        if not library.exists():
            partial = Path(work) / library.name
            try:
                subprocess.run([compiler, *COMPILE_FLAGS, str(source), "-o", str(partial), "-lm"],
                               check=True, capture_output=True, text=True,
                               timeout=COMPILE_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError) as error:
                detail = getattr(error, "stderr", None) or str(error)
                raise CompileError(f"{compiler} failed on {name}.c: "
                                   f"{detail.strip().splitlines()[-1] if detail.strip() else error}"
                                   ) from None
            os.replace(partial, library)
    return ca.external(name, str(library))


class BufferedCall:
    """A Function with dense inputs and outputs called through ``Function.buffer()`` on
    numpy arrays it owns: a few microseconds per call instead of tens. The outputs are
    arrays this object overwrites at the next call; not thread-safe.

    Raises RuntimeError when the Function fails (a QP solver that gives up)."""

    def __init__(self, function: ca.Function) -> None:
        self.function = function
        self._buffer, self._evaluate = function.buffer()
        self.inputs = [np.zeros(function.nnz_in(i)) for i in range(function.n_in())]
        self.outputs = [np.zeros(function.nnz_out(i)) for i in range(function.n_out())]
        for i, array in enumerate(self.inputs):
            self._buffer.set_arg(i, memoryview(array))
        for i, array in enumerate(self.outputs):
            self._buffer.set_res(i, memoryview(array))

    def __call__(self, *args: np.ndarray) -> list[np.ndarray]:
        for array, value in zip(self.inputs, args):
            array[:] = value
        self._evaluate()
        if self._buffer.ret() != 0:
            raise RuntimeError(f"{self.function.name()} failed (return code {self._buffer.ret()})")
        return self.outputs
