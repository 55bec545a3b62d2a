"""Expected refusals shown in a notebook as their message alone, without a traceback.

When pdc_utils refuses something before work (a parameter out of range, networks trained
with other values, a missing prerequisite, a damaged record, a run in use), the message says
what is wrong and what to do; the 6–15 lines of traceback around it would only point into
pdc_utils. Imported in an IPython kernel (JupyterLab, papermill), the package therefore
installs a custom exception handler (:func:`install`) that shows such an error as its
message: an exception of :data:`REFUSALS` raised by pdc_utils' own code (the innermost frame
of its traceback is in the package). Any other error, a student's own ``ValueError``
included, keeps its full traceback. The exception is raised as usual, so the cell fails,
"Run all" stops there and a papermill run fails, exactly as before.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Any

#: Refusals: validation (ValueError), missing or damaged files (OSError, FileNotFoundError),
#: a failed run or a run in use (RuntimeError subclasses) -- when pdc_utils raised them.
REFUSALS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)
_PACKAGE = Path(__file__).resolve().parent


def raised_by_package(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of ``tb`` is pdc_utils' own code (where it refused)."""
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().parent == _PACKAGE


def _show(shell: Any, etype: type[BaseException], value: BaseException,
          tb: TracebackType | None, tb_offset: int | None = None) -> None:
    """IPython's custom exception handler: a refusal of pdc_utils as its message, anything
    else as IPython shows it."""
    if raised_by_package(tb):
        shell._showtraceback(etype, value, [str(value)])
    else:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def install() -> bool:
    """In an IPython shell with no custom exception handler of its own, show pdc_utils'
    refusals as their message (see the module docstring); whether it is installed now.
    Outside IPython nothing happens (IPython is not imported)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or shell.custom_exceptions:
        return False
    shell.set_custom_exc(REFUSALS, _show)
    return True
