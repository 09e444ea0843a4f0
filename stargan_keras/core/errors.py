"""One error convention for every `python -m stargan_keras.X` command.

- A user error (a flag, file, directory or request that cannot work) is a `UserError`:
  the command prints one line, `error: <what is wrong and what to do>`, and exits 2.
- Anything else is a bug: the traceback is printed and the command exits 1.
- Training stopped by a non-finite loss exits 3; Ctrl-C / SIGTERM exits 130 (resumable).
- `--debug` (anywhere on the command line) or STARGAN_KERAS_DEBUG=1 prints the traceback of
  user errors too.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_NON_FINITE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEBUG_FLAG, DEBUG_ENV = "--debug", "STARGAN_KERAS_DEBUG"


class UserError(Exception):
    """Something the user can fix; the message names the flag, file or value and says how."""


def debugging(argv) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """The message of a user error on one line (multi-line messages are joined)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def command(main):
    """Wrap a command's `main(argv) -> int` with the convention above (`--debug` is taken out of argv)."""

    @functools.wraps(main)
    def run(argv=None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = debugging(argv)
        try:
            return main([arg for arg in argv if arg != DEBUG_FLAG]) or EXIT_OK
        except UserError as err:
            if debug:
                traceback.print_exc()
            print(f"error: {one_line(err)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            print("\ninterrupted.", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run
