"""Turn the library's expected errors into one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.markup import escape

from repeatlab.errors import RepeatlabError
from repeatlab.io import describe_os_error

F = TypeVar("F", bound=Callable[..., Any])

_err = Console(stderr=True)

# Errors that mean "bad input": shown as a message. Anything else (a ValueError from numpy or torch included) is a
# bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (RepeatlabError, FileNotFoundError, FileExistsError, NotADirectoryError)

# Operating-system errors about a named file that the user's machine, not the code, causes (permissions, a
# read-only or full disk, a path that is a file): shown as "PATH: cause; fix". Other OSErrors keep their traceback.
ENVIRONMENT_ERRNOS = frozenset({
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
    errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTEMPTY, errno.EBUSY, errno.ETXTBSY, errno.EIO,
})


def user_errors(func: F) -> F:
    """Decorate a CLI command so bad input, or an OS error about a named file, exits with code 2 and one line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            if exc.filename is not None and exc.errno in ENVIRONMENT_ERRNOS:
                _fail(f"{exc.filename}: {describe_os_error(exc)}")
            if isinstance(exc, USER_ERRORS):
                _fail(str(exc))
            raise
        except USER_ERRORS as exc:
            _fail(str(exc))

    return wrapper  # type: ignore[return-value]


class OneLineUsageErrors(TyperGroup):
    """A command group whose commands report a bad option value (``--epochs nan`` to an integer option) or a
    missing option in one line, as every other bad input is, instead of typer's usage box."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:  # raised while a subcommand parses its arguments
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            _fail(f"{exc.format_message().rstrip('.')}; see '{where} --help'")


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2) from None
