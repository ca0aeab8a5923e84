"""The ``topodiff`` command line: one Typer app, one thin sub-command per job.

Each module in :mod:`topodiff.commands` defines ``register(app)`` adding its sub-commands; they
parse arguments and call the library. Errors a user can cause exit with code 2 and one
``error: ...`` line on stderr (CONTRACTS §3); unexpected failures exit 1.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

# Tiny dense matrices stall OpenBLAS with many threads on small machines: one thread unless the user
# says otherwise (TOPODIFF_NUM_THREADS, or OMP/OPENBLAS/MKL_NUM_THREADS); the Python API applies the same.
from topodiff.threads import set_env_defaults  # noqa: E402

set_env_defaults()

import typer  # noqa: E402

try:  # typer >= 0.20 vendors its own click
    from typer._click import exceptions as click_exc  # noqa: E402
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exc  # noqa: E402

from topodiff.errors import TopodiffInputError  # noqa: E402

app = typer.Typer(name="topodiff", add_completion=False, no_args_is_help=True,
                  help="topodiff: tight-binding topology engine and diffusion generator for topological materials.",
                  pretty_exceptions_enable=False)


_registered = False


def _register_commands() -> None:
    """Add every sub-command module's commands to the app (once per process)."""
    global _registered
    if _registered:
        return
    _registered = True
    import topodiff.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"topodiff.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``error: message`` on stderr and return an Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``topodiff`` executable."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except click_exc.NoArgsIsHelpError:
        return 0
    except click_exc.UsageError as exc:  # unknown command/option, bad value
        msg = exc.format_message().strip().replace("\n", " ")
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except click_exc.ClickException as exc:  # other click errors (file errors, ...)
        print(f"error: {exc.format_message()}".replace("\n", " "), file=sys.stderr)
        return 2
    except SystemExit as exc:  # typer/click exit paths in non-standalone mode
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except BrokenPipeError:  # output piped into `head`
        return 0
    except (TopodiffInputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        text = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.strerror}: {exc.filename}"
        print(f"error: {text}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal failure: one line, exit 1 (set TOPODIFF_DEBUG=1 for the traceback)
        if os.environ.get("TOPODIFF_DEBUG"):
            raise
        print(f"error: internal failure: {type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
