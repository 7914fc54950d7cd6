"""Private files (engine.files.write_private): owner-only, replaced whole, and a failed
write leaves the old file and no temporary file behind."""

from __future__ import annotations

import os
import stat

import pytest

from engine.files import write_private


def test_a_new_file_is_readable_by_its_owner_only(tmp_path):
    path = write_private(tmp_path / "tokens.toml", "user = 'olga'\n")
    assert path.read_text() == "user = 'olga'\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_file_is_replaced_whole_not_rewritten_in_place(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    with open(path) as reader_of_old:
        write_private(path, "new")
        assert reader_of_old.read() == "old"  # renamed over: an open reader keeps the old
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["plan.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "plan.json"
    write_private(path, "old")
    with pytest.raises(UnicodeEncodeError):
        write_private(path, "\ud800")  # a lone surrogate cannot be encoded: the write fails
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["plan.json"]
