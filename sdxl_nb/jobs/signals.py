"""SIGTERM during a job stops it the way Ctrl-C does: the job is recorded as interrupted, a remote prompt is interrupted."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sdxl_nb.errors import Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a job runs, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread instead of ending the
    process at once: every path that handles Ctrl-C (the ComfyUI backend's POST /interrupt, the pipeline's
    `interrupted` record) handles it too. A handler the program installed itself is left alone, and so is a job
    outside the main thread (a kernel's job queue), where Python cannot install handlers."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, _frame):
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
