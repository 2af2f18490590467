"""The ``marc`` application: one Typer app, one error policy, the options commands share.

Every command raises; nothing prints its own error. :class:`_MarcGroup` turns what a command
raises into one line on stderr and an exit code:

- ``2``: a usage error (a bad or missing argument, an unknown option), an invalid setting
  (``MARC_*``, ``.env``, a config file), a bad value (:class:`ConfigError`, ``ValueError``) or a
  path named on the command line that does not exist;
- ``1``: a runtime failure (:class:`MarcError`, ``OSError``) or an unexpected exception (a bug:
  the line says so and ``--debug`` shows the traceback);
- ``130``: interrupted (Ctrl-C).

``marc --debug COMMAND ...`` prints the traceback of any of them. Nothing here imports the
models, torch or :mod:`marc.training` at module level, so ``marc --help`` stays fast.
"""

from __future__ import annotations

import codecs
import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup

from marc.memory.core.errors import ConfigError, MarcError, one_line
from marc.memory.core.paths import printable_error, printable_json

__all__ = ["app", "err", "json_text", "main", "out", "print_json", "setting_error"]

#: Usage errors' base class (click's, which typer may vendor): found from a public typer name.
ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)
Interrupt = (KeyboardInterrupt, typer.Abort)

err = Console(stderr=True)
out = Console()
_state = {"debug": False}


def setting_error(e: ValidationError) -> str:
    """A settings validation error as one line naming the ``MARC_*`` variable."""
    first = e.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across fields: its message names the variables
        return f"invalid settings: {msg}"
    return f"invalid setting MARC_{'_'.join(str(p).upper() for p in first['loc'])}: {msg}"


def exit_code(e: BaseException) -> int:
    """The exit code for an exception a command raised (see the module docstring)."""
    if isinstance(e, Interrupt):
        return 130
    if isinstance(e, ClickException):
        return e.exit_code
    if isinstance(e, ValidationError | ConfigError | ValueError | FileNotFoundError):
        return 2
    return 1


def message(e: BaseException) -> str:
    """What the user reads: one line."""
    if isinstance(e, ClickException):
        text = e.format_message()
        ctx = getattr(e, "ctx", None)
        if ctx is not None:  # a usage error: name the command
            text = f"{ctx.command_path}: {text}"
        return " ".join(text.split())
    if isinstance(e, ValidationError):
        return setting_error(e)
    if isinstance(e, Interrupt):
        return "interrupted"
    if isinstance(e, MarcError | OSError | ValueError):
        return one_line(e)
    return f"internal error: {type(e).__name__}: {one_line(e)} (marc --debug shows the traceback)"


def report(e: BaseException) -> int:
    """Print ``e`` as one line on stderr (and its traceback with ``--debug``); its exit code."""
    if _state["debug"] and not isinstance(e, ClickException):
        err.print_exception()
    err.print(f"[bold red]error:[/] {message(e)}", highlight=False, soft_wrap=True, markup=True)
    return exit_code(e)


class _MarcGroup(TyperGroup):
    """The root command: runs the command, then maps whatever it raised to one line + a code.

    ``main`` is what both the console script and ``typer.testing.CliRunner`` call.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except (Exception, *Interrupt) as e:  # noqa: BLE001
            if type(e).__name__ == "NoArgsIsHelpError":  # `marc`, `marc thread`: the help
                out.print(e.ctx.get_help(), highlight=False, markup=False)  # type: ignore[attr-defined]
                code = 2
            else:
                code = report(e)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="marc",
    cls=_MarcGroup,
    help="MARC: ask your video archive questions and get answers with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Only events ending after this ISO time or date (UTC).")
]
UntilOpt = Annotated[
    str | None,
    typer.Option(help="Only events starting before this ISO time, or through this date."),
]
ThreadOpt = Annotated[
    str | None,
    typer.Option(metavar="ID", help="Continue this existing thread (default: start a new one)."),
]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    from marc.memory.core.settings import Settings

    _state["debug"] = debug
    _state["settings"] = None
    _state["settings"] = Settings()  # every command: an invalid MARC_* setting is exit 2


def settings():
    """The ``MARC_*`` environment, read once at start-up (the application boundary)."""
    if _state.get("settings") is None:
        from marc.memory.core.settings import Settings

        _state["settings"] = Settings()
    return _state["settings"]


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data, indent=2) + "\n")


def json_text(data: Any, indent: int | None = None) -> str:
    """``data`` as JSON; an undecodable byte of a file name is written ``\\xHH`` (see
    :mod:`marc.memory.core.paths`), so the output is always UTF-8."""
    return printable_json(json.dumps(data, indent=indent, ensure_ascii=False))


def require_path(path: Path) -> None:
    """A path named on the command line must exist (exit 2 otherwise)."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{path}: no such file or directory") from None
    except OSError:  # there, but we may not look (a folder we cannot enter): the command says
        pass


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def main() -> None:
    """Console-script entry point."""
    import marc.agent._cli  # noqa: F401 - registers every command group on `app`

    warnings.formatwarning = _one_line_warning  # stderr stays one line per problem
    # a file name that is not UTF-8 is shown with its undecodable bytes as \xHH, never a crash
    codecs.register_error("marc.printable", printable_error)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="marc.printable")
    app()
