"""The error convention of every command: user errors are one line and exit 2, bugs keep their traceback."""

import pytest

from stargan_keras import convert, train
from stargan_keras.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError, command


def test_user_error_is_one_line_and_exit_2_and_debug_adds_the_traceback(capsys, monkeypatch):
    @command
    def main(argv):
        assert "--debug" not in argv
        raise UserError("--thing 3: must be even.\nPass --thing 4.")

    assert main(["--thing", "3"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "error: --thing 3: must be even. Pass --thing 4.\n"
    assert main(["--debug"]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("STARGAN_KERAS_DEBUG", "1")
    assert main([]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_ctrl_c_is_130(capsys):
    @command
    def buggy(argv):
        raise IndexError("list index out of range")

    with pytest.raises(IndexError):
        buggy([])

    @command
    def interrupted(argv):
        raise KeyboardInterrupt

    assert interrupted([]) == EXIT_INTERRUPTED


def test_train_with_a_run_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "run").write_text("my notes")
    assert train.main(["--run-dir", str(tmp_path / "run"), "--total-iters", "1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: --run-dir ") and err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "run").read_text() == "my notes"


def test_convert_refuses_the_current_directory_with_files_in_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "thesis.txt").write_text("years of work")
    monkeypatch.chdir(tmp_path)
    code = convert.main(["--pytorch-checkpoint", "100000_nets_ema.ckpt", "--config", "afhq", "--output", "."])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "is not empty (thesis.txt) and is not a model directory" in err and err.count("\n") == 1
    assert (tmp_path / "thesis.txt").read_text() == "years of work"
