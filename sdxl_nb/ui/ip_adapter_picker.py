"""The IP-Adapter picker: an adapter (or none), one or more reference images and a scale for the generate form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError
from sdxl_nb.ui.uploads import upload_value
from sdxl_nb.ui.widgets import set_status

NONE = "(none)"


def adapter_label(row: dict) -> str:
    if row.get("usable") is False:
        return f"✗ {row['name']} (unusable)"
    fit = "" if row.get("fits") is None else (", fits" if row["fits"] else ", does not fit")
    return f"{row['name']} ({row['size_bytes'] / 2**20:.1f} MiB{fit})"


class IpAdapterPicker:
    """A thin view over `sdxl_nb.config.ip_adapters.ip_adapter_listing`; `fields(out_dir)` gives the request's
    ip_adapter / ip_images / ip_scale, the uploads kept under <out_dir>/inputs/ like an init image."""

    def __init__(self, *, model: Callable[[], str | None] = lambda: None,
                 listing: Callable[[], list[dict]] | None = None):
        from sdxl_nb.config.ip_adapters import ip_adapter_listing

        self.listing = listing or (lambda: ip_adapter_listing(model()))
        self.rows: dict[str, dict] = {}
        self.choice = w.Dropdown(description="IP-Adapter", options=[(NONE, NONE)], value=NONE,
                                 layout=w.Layout(width="360px"))
        self.images = w.FileUpload(accept="image/*", multiple=True, description="Reference images")
        # A plain number box: resolve() names the accepted range instead of a slider clamping silently.
        self.scale = w.FloatText(value=1.0, step=0.05, description="Scale", layout=w.Layout(width="160px"))
        self.refresh = w.Button(description="Refresh", icon="refresh", tooltip="look for IP-Adapters")
        self.status = w.HTML()
        self.refresh.on_click(lambda _b: self.load())
        self.choice.observe(lambda _c: self._show(), "value")
        self.widget = w.VBox([w.HBox([self.choice, self.refresh]), w.HBox([self.images, self.scale]), self.status])
        set_status(self.status, "press Refresh to list IP-Adapters (an image as part of the prompt)", "idle")
        self._show()

    def load(self) -> None:
        try:
            rows = self.listing()
        except Exception as exc:  # a broken folder must not break the form
            from sdxl_nb.errors import one_line

            set_status(self.status, f"IP-Adapters could not be listed: {one_line(exc)}", "error")
            return
        chosen = self.choice.value
        self.rows = {row["name"]: row for row in rows}
        self.choice.options = [(NONE, NONE)] + [(adapter_label(row), row["name"]) for row in rows]
        self.choice.value = chosen if chosen in self.rows else NONE
        set_status(self.status, "" if rows else "no IP-Adapter found (set SDXL_NB_IP_ADAPTERS)", "idle")
        self._show()

    def _show(self) -> None:
        on = self.choice.value != NONE
        for widget in (self.images, self.scale):
            widget.layout.display = None if on else "none"
        row = self.rows.get(self.choice.value)
        if row and row.get("problem"):
            set_status(self.status, row["problem"], "error")
        elif row and row.get("clash"):
            set_status(self.status, row["clash"], "warning")

    def use(self, fields: dict) -> list[str]:
        """Fill the picker from request fields (a reused image): adapter, images still on disk, scale; returns what
        could not be used, one line each. Fields without an adapter turn it off."""
        name = fields.get("ip_adapter")
        self.images.value = ()
        if not name:
            self.choice.value = NONE
            return []
        if name not in [value for _label, value in self.choice.options]:
            self.choice.options = [*self.choice.options, (name, name)]
        self.choice.value = name
        if fields.get("ip_scale") is not None:
            self.scale.value = fields["ip_scale"]
        paths = [Path(path) for path in fields.get("ip_images") or []]
        gone = [str(path) for path in paths if not path.is_file()]
        self.images.value = tuple(upload_value(path)[0] for path in paths if path.is_file())
        return [f"its IP-Adapter image {path} is not there any more" for path in gone]

    def fields(self, out_dir: str | Path) -> dict:
        """The request fields ({} with no adapter); InputError (nothing kept) when images are missing or unreadable."""
        from sdxl_nb.request.form import save_upload, upload_format

        name = self.choice.value
        if name == NONE:
            return {}
        row = self.rows.get(name)
        if row and row.get("usable") is False:
            raise InputError(f"IP-Adapter {name} is unusable: {row['problem']}")
        uploads = [bytes(item["content"]) for item in self.images.value]
        if not uploads:
            raise InputError(f"IP-Adapter {name} needs at least one reference image: upload one (or choose {NONE})")
        for number, data in enumerate(uploads, 1):  # every one checked before any is kept
            upload_format(data, f"IP-Adapter image {number}")
        paths = [str(save_upload(data, out_dir, f"IP-Adapter image {n}")) for n, data in enumerate(uploads, 1)]
        return {"ip_adapter": name, "ip_images": paths, "ip_scale": self.scale.value}
