"""What every command shares: the global options, the error exit, the stderr console."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

from tokenshare.console import err_console as console

if TYPE_CHECKING:  # pydantic-settings loads on first use, not for --help
    from tokenshare.settings import Settings

__all__ = ["Context", "console", "fail"]


class Context:
    """The group's options (--bootstrap, --dsn, ...), applied over the environment."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = {k: v for k, v in overrides.items() if v is not None}

    def settings(self, **more: Any) -> Settings:
        from tokenshare.settings import Settings

        return Settings(**{**self.overrides, **more})


def fail(message: str, hint: str) -> NoReturn:
    """Exit 1 with what went wrong and what to do next."""
    # soft_wrap: a piped error stays one greppable line; a terminal still folds it.
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    console.print(f"[yellow]next:[/] {hint}", soft_wrap=True)
    sys.exit(1)
