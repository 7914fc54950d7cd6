"""CasADi Functions compiled to native code with the system C compiler, cached on disk.

``compiled(f)`` generates C for ``f`` (``casadi.CodeGenerator``), compiles it with
``cc -O2 -shared -fPIC`` into ``<cache>/<name>_<hash>.so`` and loads it with
``casadi.external``. The hash is over ``f.serialize()``, so a model change compiles
anew and an unchanged one loads in milliseconds. The cache is ``$TWINLOOP_CACHE`` or
``~/.cache/twinloop``. Compiled SX evaluation is several times faster than CasADi's
virtual machine; the results are the same to rounding.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import casadi as ca

COMPILER_FLAGS = ("-O2", "-shared", "-fPIC")


def cache_directory() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "twinloop"
    return Path(os.environ.get("TWINLOOP_CACHE", default))


def compiled(function: ca.Function) -> ca.Function:
    """``function`` as native code (see the module docstring). ValueError if there is no
    C compiler or it fails, naming the function."""
    digest = hashlib.sha256(function.serialize().encode()).hexdigest()[:16]
    name = f"{function.name()}_{digest}"
    library = cache_directory() / f"{name}.so"
    if not library.exists():
        _build(ca.Function(name, function.sx_in(), function.call(function.sx_in()),
                           function.name_in(), function.name_out()), library)
    return ca.external(name, str(library))


def _build(function: ca.Function, library: Path) -> None:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise ValueError(f"cannot compile {function.name()!r}: no C compiler (cc) on PATH")
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as work:
        source = f"{function.name()}.c"
        generator = ca.CodeGenerator(source)
        generator.add(function)
        generator.generate(work + os.sep)
        partial = Path(work) / library.name
        result = subprocess.run([compiler, *COMPILER_FLAGS, source, "-o", str(partial)],
                                cwd=work, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ValueError(f"cannot compile {function.name()!r}: {result.stderr[-500:]}")
        os.replace(partial, library)  # atomic: a concurrent builder never loads half a file
