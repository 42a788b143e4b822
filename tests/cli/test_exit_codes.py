"""Exit codes of ``curricurun.cli.run``, the function the console script calls: an interrupt is never 0.

Ctrl-C raises ``KeyboardInterrupt`` (130), a command may end with ``typer.Exit(130)`` (click returns that code
rather than raising it without standalone mode, which once made ``run`` answer 0), SIGTERM exits 143 (128 + 15,
what a shell reports for a process killed by it), and a user error keeps its own ``exit_code``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import typer

from curricurun import cli
from curricurun.errors import Interrupted, UserError

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _validate_with(monkeypatch: pytest.MonkeyPatch, behaviour, command: str = "validate") -> int:
    monkeypatch.setattr(cli, "_load", lambda *_args: behaviour())
    return cli.run([command, str(RECIPE)])


def _raise(error: BaseException):
    def behaviour():
        raise error

    return behaviour


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _validate_with(monkeypatch, _raise(KeyboardInterrupt())) == 130


def test_typer_exit_code_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _validate_with(monkeypatch, _raise(typer.Exit(130))) == 130
    assert _validate_with(monkeypatch, _raise(typer.Exit(0))) == 0


def test_interrupted_exits_128_plus_signal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert _validate_with(monkeypatch, _raise(Interrupted(signal.SIGTERM))) == 143
    assert "interrupted" in capsys.readouterr().err


def test_real_sigterm_exits_143_and_restores_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def killed():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises during the sleep
        raise AssertionError("SIGTERM did not interrupt")

    assert _validate_with(monkeypatch, killed) == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_user_error_exit_code_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stopped(UserError):
        exit_code = 3

    assert _validate_with(monkeypatch, _raise(UserError("bad"))) == 2
    # `validate` gathers the problems of every file into one UserError (exit 2); `train` keeps the error's own.
    assert _validate_with(monkeypatch, _raise(Stopped("loss is nan at step 3")), "train") == 3


def test_a_bug_is_not_an_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ZeroDivisionError):
        _validate_with(monkeypatch, _raise(ZeroDivisionError()))
