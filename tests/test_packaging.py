"""pyproject.toml states its licence the way current setuptools reads it (PEP 639)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_licence_is_an_spdx_string_and_the_build_needs_a_setuptools_that_reads_it():
    """A ``license = {text = ...}`` table makes setuptools warn that it is deprecated; an SPDX
    string is the form it wants, and it reads that form only from version 77 on."""
    project = tomllib.loads(PYPROJECT.read_text())
    license_ = project["project"]["license"]
    assert isinstance(license_, str), f"project.license is {license_!r}, not an SPDX string"
    assert canonicalize_license_expression(license_) == "Apache-2.0"
    setuptools = next(Requirement(r) for r in project["build-system"]["requires"]
                      if Requirement(r).name == "setuptools")
    assert not setuptools.specifier.contains("76.9")
    assert setuptools.specifier.contains("77.0")
