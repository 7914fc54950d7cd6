"""The one compile cache of TwinLoop: the problems every asset of a structure shares in
a process, CasADi Functions generated as C, compiled with the system C compiler and
loaded back, and a fast way to call a Function on numpy arrays.

Shared problems (:func:`shared`). The symbolic and compiled problem of an estimator or
controller (CasADi Functions, QP and NLP solver objects, generated C, do-mpc's
formulation) depends only on the plant model's structure (``PlantModel.structure``) and
the settings that shape it; everything an asset owns (its parameters, limits, weights,
references, warm starts, estimates and covariance) is passed to it at run time. So it is
built once per process and structure, and every further asset of that structure costs
its state, not a new problem. Entries are never evicted: a process hosts a handful of
structures per kind (plants.sitegen), however many assets. A CasADi Function may be
called from several threads (each call checks out its own memory); an entry whose
solver reports per-call statistics (do-mpc's IPOPT) carries a lock its users hold
around the call and the read of the statistics.

Compiled C. The fast MPC's SQP step (``ControllerSettings.codegen``) and the EKF's
prediction (``EstimatorSettings.compiled``) are both compiled here.

The generated source is hashed; the shared library is cached under that hash in the
cache directory (``$TWINLOOP_CACHE_DIR``, default ``$XDG_CACHE_HOME/twinloop``, else
``~/.cache/twinloop``), so a second controller or filter with the same problem loads it
without compiling, and a changed model compiles anew. Compilation is atomic (compile to
a temporary name, then rename), so concurrent actors do not see half a library.
Compiled SX evaluation is several times faster than CasADi's virtual machine; the
results are the same to rounding.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import casadi as ca
import numpy as np

COMPILE_FLAGS = ("-O2", "-fPIC", "-shared")
COMPILE_TIMEOUT_S = 300.0
MAX_SOURCE_BYTES = 5_000_000
"""Larger generated sources are not compiled: gcc takes minutes on them (5 MB, the
centrifugal pump's MPC, takes about 30 s; the asphalt terminal's 61 MB over 5 min)."""


T = TypeVar("T")

_SHARED: dict[Hashable, Any] = {}
_SHARED_LOCK = threading.Lock()
_BUILDING: dict[Hashable, threading.Lock] = {}


def shared(key: Hashable, build: Callable[[], T]) -> T:
    """The process's one ``build()`` for ``key``: built on first use, then returned to
    every caller with an equal key (the key names what the build depends on, e.g.
    ``("ekf", model.structure, parameter names, compiled)``). Concurrent first uses of a
    key build once; different keys build in parallel. An exception is raised to the
    caller and nothing is stored."""
    try:
        return _SHARED[key]
    except KeyError:
        pass
    with _SHARED_LOCK:
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        if key not in _SHARED:
            _SHARED[key] = build()
        return _SHARED[key]


class CompileError(RuntimeError):
    """The C compiler is missing or failed; the message says why."""


def cache_directory() -> Path:
    """``$TWINLOOP_CACHE_DIR``, else ``$XDG_CACHE_HOME/twinloop``, else
    ``~/.cache/twinloop``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "twinloop"
    return Path(os.environ.get("TWINLOOP_CACHE_DIR", default))


def c_compiler() -> str | None:
    """``$CC``, else ``cc`` or ``gcc`` on the PATH, else None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def compile_setup() -> tuple[str, str | None]:
    """The cache directory and the C compiler :func:`compiled` would use now: part of the
    :func:`shared` key of a compiled problem, so a changed environment compiles anew."""
    return str(cache_directory()), c_compiler()


def compiled(function: ca.Function, directory: Path | None = None) -> ca.Function:
    """``function`` as compiled C code (same inputs and outputs). Raises CompileError
    if there is no C compiler (``$CC``, else ``cc`` or ``gcc``), it fails or takes over
    COMPILE_TIMEOUT_S, or the generated source is over MAX_SOURCE_BYTES."""
    directory = directory or cache_directory()
    compiler = c_compiler()
    if not compiler:
        raise CompileError("no C compiler found (set $CC, or install gcc)")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as work:
        name = function.name()
        source = Path(work) / f"{name}.c"
        generator = ca.CodeGenerator(source.name, {"with_header": False})
        generator.add(function)
        generator.generate(str(Path(work)) + os.sep)
        size = source.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise CompileError(f"generated {name}.c is {size / 1e6:.0f} MB, over the "
                               f"{MAX_SOURCE_BYTES / 1e6:.0f} MB limit (gcc would take minutes)")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        library = directory / f"{name}_{digest}.so"
        if not library.exists():
            partial = Path(work) / library.name
            _compile(compiler, source, partial)
            os.replace(partial, library)
    return ca.external(name, str(library))


def _compile(compiler: str, source: Path, library: Path) -> None:
    """Run the compiler in its own process group, so that a timeout ends all of it."""
    command = [compiler, *COMPILE_FLAGS, str(source), "-o", str(library), "-lm"]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
    except OSError as error:
        raise CompileError(f"cannot run {compiler}: {error.strerror}") from None
    try:
        _, errors = process.communicate(timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise CompileError(f"{compiler} took over {COMPILE_TIMEOUT_S:.0f} s on "
                           f"{source.name}") from None
    if process.returncode != 0:
        last = errors.strip().splitlines()[-1] if errors.strip() else f"exit {process.returncode}"
        raise CompileError(f"{compiler} failed on {source.name}: {last}")


class BufferedCall:
    """A Function with dense inputs and outputs called through ``Function.buffer()`` on
    numpy arrays it owns: a few microseconds per call instead of tens. The outputs are
    arrays this object overwrites at the next call; not thread-safe.

    Raises RuntimeError when the Function reports a failure."""

    def __init__(self, function: ca.Function) -> None:
        self.function = function
        self._buffer, self._evaluate = function.buffer()
        self.inputs = [np.zeros(function.nnz_in(i)) for i in range(function.n_in())]
        self.outputs = [np.zeros(function.nnz_out(i)) for i in range(function.n_out())]
        # casadi's stub gives set_arg/set_res a size argument that its typemap takes
        # from the buffer itself (FunctionBuffer.set_arg's docstring: set_arg(0, view))
        for i, array in enumerate(self.inputs):
            self._buffer.set_arg(i, array.data)  # type: ignore[call-arg]
        for i, array in enumerate(self.outputs):
            self._buffer.set_res(i, array.data)  # type: ignore[call-arg]

    def __call__(self, *args: np.ndarray | float) -> list[np.ndarray]:
        for array, value in zip(self.inputs, args, strict=True):
            array[:] = value
        self._evaluate()
        if self._buffer.ret() != 0:
            raise RuntimeError(f"{self.function.name()} failed (return code {self._buffer.ret()})")
        return self.outputs
