"""How every `vigil` command ends on bad input: one `error: ...` line naming what was wrong, never a traceback.

Commands check what they can themselves (with messages in their own terms); this is the net under them for
what reaches the root command unhandled: a usage error (printed on one line instead of a framed panel), a
file that cannot be read or written (named with the system's reason) and a value a parser refused.
"""

from __future__ import annotations

import errno
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer 0.20 and later carry their own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer on the click package
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

# Exit codes: a usage error or a value a parser refused is the caller's to fix (2, as click's own usage
# errors); a file the system would not read or write is the environment's (1).
USAGE = 2
ENVIRONMENT = 1


def os_error_text(exc: OSError) -> str:
    """``/path: No such file or directory`` (both paths of a rename or link), else the error as text."""
    if exc.filename is None:
        return exc.strerror or str(exc)
    paths = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{paths}: {exc.strerror or exc.__class__.__name__}"


def one_line(text: str) -> str:
    """A message on one line (validation errors list their fields on several)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class CommandGroup(TyperGroup):
    """The root command group: turns what a command left unhandled into one error line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise  # a group run bare prints its help
        except UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f"\nTry '{exc.ctx.command_path} --help' for help."
            typer.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # a reader that went away (`| head`): typer ends quietly
            raise fail(os_error_text(exc), ENVIRONMENT) from None
        except ValueError as exc:
            raise fail(one_line(str(exc)) or exc.__class__.__name__, USAGE) from None
