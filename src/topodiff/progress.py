"""One progress bar for every long phase (sampling, screening, labelling, fine-tuning).

tqdm on **stderr** (stdout stays the ``--json`` object), shown only once a phase has run for
:data:`DELAY_S` seconds, so short calls stay clean. On a terminal the bar redraws twice a second;
into a log file (stderr not a terminal) it writes a line every :data:`LOG_INTERVAL_S` seconds.
``TOPODIFF_PROGRESS=0`` turns bars off.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

DELAY_S = 2.0  # seconds before a bar appears
LOG_INTERVAL_S = 30.0  # seconds between lines when stderr is not a terminal


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether bars show: ``enabled`` if given, else not when ``TOPODIFF_PROGRESS`` is 0/false/no/off."""
    if enabled is not None:
        return bool(enabled)
    return os.environ.get("TOPODIFF_PROGRESS", "").strip().lower() not in ("0", "false", "no", "off")


def progress(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
             enabled: bool | None = None, **kwargs: Any) -> Any:
    """A ``tqdm`` bar over ``iterable`` (or updated by hand when ``None``) on stderr; see the module doc."""
    from tqdm.auto import tqdm

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, disable=not progress_enabled(enabled),
                delay=DELAY_S, mininterval=0.5 if tty else LOG_INTERVAL_S, dynamic_ncols=True, **kwargs)
