"""What the LoRA and IP-Adapter pickers share: a quick start listing or the full one, and the line saying what it found."""

from __future__ import annotations

from collections.abc import Callable


class ListedPicker:
    """A picker over a listing of network files. `listing` is the full one (fit check, hashes, demo built);
    `start_listing` the quick one the lab opens with (no torch). Subclasses name what they list (`NOUN`, its
    `SETTING`, the `DEMO` the quick listing may leave out) and show rows with `_fill` and the state with `_redraw`."""

    NOUN = ""  # "LoRA"
    SETTING = ""  # "SDXL_NB_LORAS"
    DEMO = ""  # "the demo LoRA"

    def _start(self, listing: Callable[[], list[dict]], start_listing: Callable[[], list[dict]] | None) -> None:
        self.listing, self.start_listing = listing, start_listing
        self.fit_checked = False  # whether the rows say which files fit (a full listing, not the quick one)
        self.rows: dict[str, dict] = {}
        self._listing_line: tuple[str, str] = ("", "idle")  # what the last listing found (or why it failed)

    def load(self, quick: bool = False) -> None:
        """(Re)list (`quick`: the start listing, without the fit check); a failure says why in one line."""
        quick = quick and self.start_listing is not None
        try:
            rows = (self.start_listing if quick else self.listing)()
        except Exception as exc:  # a broken folder must not break the form
            from sdxl_nb.errors import one_line

            self._listing_line = (f"{self.NOUN}s could not be listed: {one_line(exc)}", "error")
            self._redraw()
            return
        self.fit_checked = not quick
        chosen = self.choice.value
        self.rows = {row["name"]: row for row in rows}
        self._fill(rows, chosen)
        if not rows:
            # The quick listing leaves out a demo that is not built yet: Refresh builds it.
            demo = f"; Refresh also lists {self.DEMO}" if quick else ""
            self._listing_line = (f"no {self.NOUN} found (set {self.SETTING}){demo}", "idle")
        elif quick:
            self._listing_line = (f"{len(rows)} {self.NOUN}(s) listed; Refresh checks which fit the model", "idle")
        else:
            self._listing_line = ("", "idle")
        self._redraw()

    def fill_if_empty(self) -> None:
        """After a model load (torch is in, the tiny model built): the quick listing's empty list is filled by the
        full one, which builds the demo, so a first run needs no Refresh."""
        if not self.rows and not self.fit_checked:
            self.load()

    def reload(self) -> None:
        """List again the way it was listed (the model changed: a fit check is about the model now chosen)."""
        if self.rows or self.fit_checked:
            self.load(quick=not self.fit_checked)

    def _fill(self, rows: list[dict], chosen) -> None:
        raise NotImplementedError

    def _redraw(self) -> None:
        raise NotImplementedError
