"""The ``topodiff`` command line: one Typer app, one thin sub-command per job.

Each module in :mod:`topodiff.commands` defines ``register(app)`` adding its sub-commands; they
parse arguments and call the library. Errors a user can cause exit with code 2 and one
``error: ...`` line on stderr (CONTRACTS §3); unexpected failures exit 1; Ctrl-C exits 130.
"""
from __future__ import annotations

import errno
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


EXIT_OK, EXIT_FAILURE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _error(message: str) -> None:
    """One ``error: ...`` line on stderr (newlines folded)."""
    print(f"error: {message}".replace("\n", " "), file=sys.stderr)


def _exit_code(code: object) -> int:
    """Map a command's return value / exit code onto 0, 1, 2 or 130 (130 says ``error: interrupted``)."""
    if code is None or code is False or not isinstance(code, int):
        return EXIT_OK
    if code == EXIT_INTERRUPTED:
        _error("interrupted")
        return EXIT_INTERRUPTED
    return code if code in (EXIT_OK, EXIT_FAILURE, EXIT_INPUT) else EXIT_FAILURE


def _input_error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _internal_failure(exc: Exception) -> int:
    """One line and exit 1 (``TOPODIFF_DEBUG=1`` re-raises for the traceback)."""
    if os.environ.get("TOPODIFF_DEBUG"):
        raise exc
    if isinstance(exc, MemoryError):
        _error("out of memory (reduce the problem size, e.g. --num, --nk or --batch-size)")
    else:
        _error(f"internal failure: {type(exc).__name__}: {exc}")
    return EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``topodiff`` executable: every outcome is exit code 0 (success), 1 (internal
    failure, or a check that failed), 2 (bad input or usage) or 130 (interrupted), with one
    ``error: ...`` line on stderr for each non-zero code."""
    try:
        _register_commands()
        rv = app(args=argv, standalone_mode=False)  # Typer turns Ctrl-C inside a command into exit 130
    except click_exc.NoArgsIsHelpError:
        return EXIT_OK
    except click_exc.UsageError as exc:  # unknown command/option, bad value
        _error(exc.format_message().strip())
        return EXIT_INPUT
    except click_exc.ClickException as exc:  # other click errors (file errors, ...)
        _error(exc.format_message())
        return EXIT_INPUT
    except typer.Abort:  # end of input at a prompt
        _error("aborted")
        return EXIT_FAILURE
    except SystemExit as exc:  # sys.exit() inside a library
        if isinstance(exc.code, str):
            _error(exc.code)
            return EXIT_FAILURE
        return _exit_code(exc.code)
    except BrokenPipeError:  # output piped into `head`
        return EXIT_OK
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (TopodiffInputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        _error(_input_error_text(exc))
        return EXIT_INPUT
    except OSError as exc:
        if exc.errno == errno.EROFS:  # a read-only place to write to: the user's choice
            _error(_input_error_text(exc))
            return EXIT_INPUT
        return _internal_failure(exc)
    except Exception as exc:
        return _internal_failure(exc)
    return _exit_code(rv)


if __name__ == "__main__":
    sys.exit(main())
