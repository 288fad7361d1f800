"""The IP-Adapter picker: an adapter (or none), one or more reference images and a scale for the generate form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError
from sdxl_nb.ui.listed_picker import ListedPicker
from sdxl_nb.ui.thumbnails import Thumbnails
from sdxl_nb.ui.uploads import image_upload, upload_value
from sdxl_nb.ui.widgets import set_status

NONE = "(none)"


def adapter_label(row: dict) -> str:
    if row.get("usable") is False:
        return f"✗ {row['name']} (unusable)"
    fit = "" if row.get("fits") is None else (", fits" if row["fits"] else ", does not fit")
    return f"{row['name']} ({row['size_bytes'] / 2**20:.1f} MiB{fit})"


class IpAdapterPicker(ListedPicker):
    """A thin view over `sdxl_nb.config.ip_adapters.ip_adapter_listing`; `fields(out_dir)` gives the request's
    ip_adapter / ip_images / ip_scale, the uploads kept under <out_dir>/inputs/ like an init image.

    It opens filled by `start_listing` (quick: no fit check) when given; Refresh runs `listing`."""

    NOUN, SETTING, DEMO = "IP-Adapter", "SDXL_NB_IP_ADAPTERS", "the demo IP-Adapters"

    def __init__(self, *, model: Callable[[], str | None] = lambda: None,
                 listing: Callable[[], list[dict]] | None = None,
                 start_listing: Callable[[], list[dict]] | None = None):
        from sdxl_nb.config.ip_adapters import ip_adapter_listing

        self._start(listing or (lambda: ip_adapter_listing(model())), start_listing)
        self.choice = w.Dropdown(description="IP-Adapter", options=[(NONE, NONE)], value=NONE,
                                 layout=w.Layout(width="360px"))
        self.images = image_upload("Reference images", multiple=True)
        self.thumbs = Thumbnails("reference image", "sdxl-thumbs-reference").follow(self.images)
        # A plain number box: resolve() names the accepted range instead of a slider clamping silently.
        self.scale = w.FloatText(value=1.0, step=0.05, description="Scale", layout=w.Layout(width="160px"))
        self.refresh = w.Button(description="Refresh", icon="refresh",
                                tooltip="look for IP-Adapters again and check which fit the model")
        self.status = w.HTML()
        self.status.add_class("sdxl-ip-status")
        self.refresh.on_click(lambda _b: self.load())
        self.choice.observe(lambda _c: self._show(), "value")
        self.widget = w.VBox([w.HBox([self.choice, self.refresh]), w.HBox([self.images, self.scale]), self.thumbs.widget,
                              self.status])
        if start_listing is not None:
            self.load(quick=True)
        else:
            self._listing_line = ("press Refresh to list IP-Adapters (an image as part of the prompt)", "idle")
            self._show()

    def _fill(self, rows: list[dict], chosen) -> None:
        self.choice.options = [(NONE, NONE)] + [(adapter_label(row), row["name"]) for row in rows]
        self.choice.value = chosen if chosen in self.rows else NONE

    def _redraw(self) -> None:
        self._show()

    def _show(self) -> None:
        """The line under the picker, from the current state only: the chosen adapter's problem, else the listing."""
        on = self.choice.value != NONE
        for widget in (self.images, self.scale, self.thumbs.widget):
            widget.layout.display = None if on else "none"
        if on and not self.thumbs.count:
            self.thumbs.widget.layout.display = "none"
        row = self.rows.get(self.choice.value)
        if row and row.get("problem"):
            set_status(self.status, row["problem"], "error")
        elif row and row.get("clash"):
            set_status(self.status, row["clash"], "warning")
        else:
            set_status(self.status, *self._listing_line)

    def summary(self) -> str | None:
        """The section title's account of it ("name, 2 images, scale 0.7"), None when off."""
        if self.choice.value == NONE:
            return None
        count = len(self.images.value)
        return f"{self.choice.value}, {count} image{'' if count == 1 else 's'}, scale {self.scale.value:g}"

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
