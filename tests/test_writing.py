"""Files fastmlp writes: errors naming the path the user gave (never a temporary file), and
Ctrl-C while saving leaving the old file or none, never a broken one."""

import errno
import io
import os
import re

import pytest

from fastmlp import MLP
from fastmlp._atomic import atomic_write, unwritable

OLD = b"the old file, which must survive"


@pytest.fixture(params=["mid-write", "before the rename"])
def interrupt(request, monkeypatch):
    """Ctrl-C while a file is being saved: half-way through a write, or once all is written."""
    if request.param == "mid-write":
        class Interrupted(io.BufferedWriter):
            def write(self, data):
                data = bytes(data)
                super().write(data[:len(data) // 2])
                raise KeyboardInterrupt

        fdopen = os.fdopen

        def interrupted_fdopen(fd, mode="r", *args, **kwargs):
            if mode == "wb":
                return Interrupted(io.FileIO(fd, "wb"))
            return fdopen(fd, mode, *args, **kwargs)

        monkeypatch.setattr(os, "fdopen", interrupted_fdopen)
    else:
        def interrupted_fsync(fd):
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "fsync", interrupted_fsync)
    return request.param


def test_ctrl_c_while_saving_a_new_file_leaves_none(tmp_path, interrupt):
    model = MLP((4, 3, 2), seed=0)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_a_missing_directory_is_named_as_the_user_gave_it(tmp_path):
    path = tmp_path / "nowhere" / "model.npz"
    named = re.escape(f"No such file or directory: '{path}'")
    with pytest.raises(FileNotFoundError, match=named + "$"):
        MLP((4, 3, 2)).save(path)
    with pytest.raises(FileNotFoundError) as error, atomic_write(str(path)):
        pass
    assert error.value.errno == errno.ENOENT and error.value.filename == str(path)


def test_errors_while_writing_name_the_path_and_keep_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    path.write_bytes(OLD)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    named = re.escape(f"No space left on device: '{path}'")
    with pytest.raises(OSError, match=named + "$") as error:
        MLP((4, 3, 2)).save(path)
    assert error.value.errno == errno.ENOSPC and ".part" not in str(error.value)
    assert path.read_bytes() == OLD and os.listdir(tmp_path) == ["model.npz"]


def test_a_directory_in_the_way_of_the_rename_is_named(tmp_path):
    path = tmp_path / "model.npz"
    path.mkdir()
    with pytest.raises(IsADirectoryError) as error:
        MLP((4, 3, 2)).save(path)
    assert error.value.filename == str(path) and ".part" not in str(error.value)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_an_error_about_another_file_passes_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError) as error, atomic_write(tmp_path / "out.bin"):
        (tmp_path / "input.bin").read_bytes()
    assert error.value.filename == str(tmp_path / "input.bin")
    assert os.listdir(tmp_path) == []


def test_unwritable_says_why_in_words(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("")
    assert unwritable(tmp_path / "model.npz") is None
    assert unwritable("model.npz") is None  # the working directory
    assert unwritable(tmp_path / "a" / "m.npz") == f"no directory {tmp_path / 'a'}"
    assert unwritable(tmp_path / "notes.txt" / "m.npz") == f"{tmp_path / 'notes.txt'} is not a " \
                                                          "directory"
    assert unwritable(tmp_path) == f"{tmp_path} is a directory"
    assert os.listdir(tmp_path) == ["notes.txt"]  # the probe leaves nothing behind
