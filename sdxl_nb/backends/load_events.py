"""Who hears that a model was loaded in this kernel (the lab's model panel), whoever asked for the load."""

from __future__ import annotations

import threading
from collections.abc import Callable

_listeners: list[Callable[[str], None]] = []
_lock = threading.Lock()


def on_model_loaded(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call `listener(model_id)` after every model a local engine loads (a queue job or a plain API call);
    returns an unsubscribe."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def model_loaded(model_id: str) -> None:
    """Tell every listener; a broken listener never breaks the load."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(model_id)
        except Exception:  # a view's failure is the view's problem
            continue
