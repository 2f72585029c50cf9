"""Files fastmlp writes: paths checked before the work, errors naming the path the user gave
(never a temporary file), and Ctrl-C while saving leaving the old file or none, never a
broken one."""

import errno
import io
import os
import re
import stat

import pytest

from fastmlp import MLP
from fastmlp._atomic import atomic_write, unwritable
from fastmlp.cli import main

OLD = b"the old file, which must survive"


@pytest.fixture
def model_npz(small_idx, tmp_path):
    """A 64-8-3 model (untrained, its scaler fitted) for small_idx: evaluate's and export's."""
    from fastmlp.datasets import load_idx_dataset

    (x, _), _ = load_idx_dataset(small_idx)
    model = MLP((64, 8, 3), seed=0)
    model.scaler.fit(x.reshape(len(x), -1))
    path = tmp_path / "small.npz"
    model.save(path)
    return str(path)


# Every command line that writes a file, with valid inputs: (arguments before the path,
# after it, the file's name). "{data}" is the small IDX data set, "{model}" a model for it.
WRITERS = {
    "train --save": (["train", "--data-dir", "{data}", "--epochs", "1", "--hidden", "8",
                      "--save"], [], "model.npz"),
    "train --plot": (["train", "--data-dir", "{data}", "--epochs", "1", "--hidden", "8",
                      "--plot"], [], "curves.png"),
    "train --log": (["train", "--data-dir", "{data}", "--epochs", "1", "--hidden", "8",
                     "--log"], [], "log.csv"),
    "bench --plot": (["bench", "--data-dir", "{data}", "--backends", "matmul", "--batch-sizes",
                      "100", "--epochs", "1", "--no-torch", "--plot"], [], "bench.png"),
    "evaluate --plot": (["evaluate", "{model}", "--data-dir", "{data}", "--plot"], [],
                        "evaluation.png"),
    "export": (["export", "{model}"], ["--dtype", "float32"], "model.onnx"),
}


def command_line(writer, path, small_idx, model_npz):
    before, after, _ = WRITERS[writer]
    return [arg.format(data=small_idx, model=model_npz) for arg in before] + [str(path), *after]


def unwritable_directory(tmp_path):
    """A directory this process cannot create files in; skips where there is none (root)."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if unwritable(directory / "probe") is None:
        directory.chmod(stat.S_IRWXU)
        pytest.skip("this process may write into a read-only directory (root)")
    return directory


BAD_PLACES = {
    # name: (the directory to write into, given tmp_path; the words that say why not)
    "missing directory": (lambda tmp: tmp / "nowhere", "no directory {directory}"),
    "a file as directory": (lambda tmp: tmp / "notes.txt", "{directory} is not a directory"),
    "read-only directory": (unwritable_directory, "cannot create a file in {directory}: "
                                                  "Permission denied"),
}


@pytest.mark.parametrize("place", BAD_PLACES)
@pytest.mark.parametrize("writer", WRITERS)
def test_a_path_that_cannot_be_written_fails_before_any_work(writer, place, small_idx, model_npz,
                                                             tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a directory")
    where, reason = BAD_PLACES[place]
    directory = where(tmp_path)
    path = directory / WRITERS[writer][2]
    try:
        status = main(command_line(writer, path, small_idx, model_npz))
    finally:
        if directory.is_dir():
            directory.chmod(stat.S_IRWXU)
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""  # no data summary, no epoch line: nothing ran
    what = {"--save": "the model", "--plot": "the plot", "--log": "the training log",
            "export": "the ONNX graph"}
    assert captured.err == (f"fastmlp: error: cannot write {what[writer.split()[-1]]} to {path}: "
                            f"{reason.format(directory=directory)}\n")


@pytest.mark.parametrize("writer", WRITERS)
def test_a_directory_as_the_output_fails_before_any_work(writer, small_idx, model_npz, tmp_path,
                                                         capsys):
    path = tmp_path / "out"
    path.mkdir()
    assert main(command_line(writer, path, small_idx, model_npz)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith(f" to {path}: {path} is a directory\n")
    assert captured.err.count("\n") == 1


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


# (not the training log: it is written row by row as epochs end, not saved at the end)
@pytest.mark.parametrize("writer", [writer for writer in WRITERS if writer != "train --log"])
def test_ctrl_c_while_saving_leaves_the_old_file(writer, small_idx, model_npz, tmp_path, capsys,
                                                 interrupt):
    if "--plot" in writer:
        pytest.importorskip("matplotlib")
    if writer == "export":
        pytest.importorskip("onnx")
    directory = tmp_path / "out"
    directory.mkdir()
    path = directory / WRITERS[writer][2]
    path.write_bytes(OLD)
    assert main(command_line(writer, path, small_idx, model_npz)) == 130
    assert capsys.readouterr().err.endswith("fastmlp: interrupted\n")
    assert path.read_bytes() == OLD
    assert os.listdir(directory) == [path.name]  # no temporary file left behind


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


def test_new_files_get_the_umask_without_the_umask_being_touched(tmp_path, monkeypatch):
    # Setting the umask, even for a moment to read it, changes it for every thread of the
    # process: another thread creating a file then would create it world-writable.
    old = os.umask(0o027)
    try:
        def umask_changed(mask):
            raise AssertionError(f"os.umask({mask:#o}) called while writing")

        monkeypatch.setattr(os, "umask", umask_changed)
        MLP((4, 3, 2), seed=0).save(tmp_path / "model.npz")
        with atomic_write(tmp_path / "out.bin") as file:
            file.write(b"x")
    finally:
        monkeypatch.undo()
        os.umask(old)
    for name in ("model.npz", "out.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "out.bin"]
