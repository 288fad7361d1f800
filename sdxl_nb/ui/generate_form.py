"""The generate form: the shared request form plus batch, images at once, mode, input images and the feature
groups (hires fix, ControlNet, IP-Adapter, inpaint) in their sections -> a request."""

from __future__ import annotations

import html
import io
from pathlib import Path

import ipywidgets as w

from sdxl_nb.errors import InputError, one_line
from sdxl_nb.request import form
from sdxl_nb.request.resolve import GenerationRequest
from sdxl_nb.ui.controlnet_picker import ControlNetPicker
from sdxl_nb.ui.hires_form import HiresFields
from sdxl_nb.ui.inpaint_form import InpaintFields
from sdxl_nb.ui.ip_adapter_picker import IpAdapterPicker
from sdxl_nb.ui.mask_painter import MaskPainter
from sdxl_nb.ui.quick_listings import quick_ip_adapter_listing
from sdxl_nb.ui.request_form import CUSTOM_SIZE, MODEL_SIZE, SHARE, WIDE, RequestForm
from sdxl_nb.ui.sections import Section
from sdxl_nb.ui.thumbnails import Thumbnails
from sdxl_nb.ui.uploads import image_upload, upload_value
from sdxl_nb.ui.widgets import set_status, show

__all__ = ["CUSTOM_SIZE", "MODEL_SIZE", "SHARE", "WIDE", "GenerateForm"]


class GenerateForm(RequestForm):
    """The shared fields (RequestForm) and what only image jobs have: batch, chunking, img2img/inpaint inputs."""

    def __init__(self, model_id: str | None = None):
        super().__init__(model_id)
        p = self.presets
        self.match_aspect = w.Checkbox(description="match the aspect ratio of the reference image", indent=False,
                                       layout=w.Layout(width="auto"))
        self.batch = w.IntText(value=1, description="Batch", layout=w.Layout(width="160px"))
        # Images per pipeline call: fewer at once use less memory, and Stop keeps every finished call.
        self.at_once = w.Dropdown(options=[("whole batch", 0), ("1", 1), ("2", 2), ("4", 4), ("8", 8)],
                                  description="At once", layout=w.Layout(width="200px"))
        self.mode = w.ToggleButtons(options=["txt2img", "img2img", "inpaint"], description="Mode",
                                    style={"button_width": "90px"})
        self.init_upload = image_upload("Init image")
        self.mask_upload = image_upload("Mask")
        self.init_thumb = Thumbnails("init image", "sdxl-thumbs-init").follow(self.init_upload)
        self.mask_thumb = Thumbnails("mask image", "sdxl-thumbs-mask").follow(self.mask_upload)
        self.strength = w.FloatText(value=p.defaults.strength, description="Strength", layout=w.Layout(width="160px"))
        self.inputs_note = w.HTML()
        self.hires = HiresFields()  # txt2img only, as in A1111
        self.painter = MaskPainter()  # the inpaint mask, painted on the init image (an uploaded mask is its base)
        self.inpaint = InpaintFields()  # A1111's mask blur, masked content, inpaint area (inpaint only)
        # ControlNet units (any mode); each shows its preprocessed map at the job's size before the run.
        self.controlnets = ControlNetPicker(size=self.job_size)
        self.init_upload.observe(lambda _c: self.painter.set_image(_content(self.init_upload)), "value")
        self.mask_upload.observe(lambda _c: self.painter.set_base(_content(self.mask_upload)), "value")
        self.mode.add_class("sdxl-mode")
        for widget in (self.match_aspect, self.init_upload):
            widget.observe(lambda _c: self._on_size(), "value")
        self.numbers_row.children = (*self.numbers_row.children, self.batch, self.at_once)
        self.ip_adapter = IpAdapterPicker(model=lambda: self.model_id,
                                          start_listing=lambda: quick_ip_adapter_listing(self.model_id))
        self.network_pickers.append(self.ip_adapter)
        self.init_row = w.HBox([self.init_upload, self.init_thumb.widget, self.strength],
                               layout=w.Layout(align_items="center"))
        self._add_feature_sections()
        # What the pipeline's own checks refuse in the feature groups together, said as soon as they are set.
        self.combination = w.HTML()
        self.combination.add_class("sdxl-combination")
        for widget in (*self.hires.watched(), *self.refiner_fields.watched(), *self.inpaint.watched(), self.mode,
                       self.strength, self.steps, self.resolution, self.width, self.height):
            widget.observe(lambda _c: self.check_combination(), "value")
        self.controlnets.on_change(self.check_combination)
        self.mode.observe(lambda _c: self._on_mode(), "value")
        self._on_size()
        self._on_mode()
        self.build([self.combination, self.inputs_note])

    def set_model(self, model_id: str) -> None:
        super().set_model(model_id)
        if hasattr(self, "ip_adapter"):  # (the base form's first call comes before the picker exists)
            self.ip_adapter.reload()  # whether each adapter fits is about the model now chosen

    def _add_feature_sections(self) -> None:
        self.add_section(Section("Hires fix", self.hires.widget, self.hires.summary)).watch(*self.hires.watched())
        controlnet = self.add_section(Section("ControlNet", self.controlnets.widget, self.controlnets.summary))
        self.controlnets.on_change(controlnet.refresh)
        self.add_section(Section("IP-Adapter", self.ip_adapter.widget, self.ip_adapter.summary)).watch(
            self.ip_adapter.choice, self.ip_adapter.images, self.ip_adapter.scale)
        body = w.VBox([w.HBox([self.mask_upload, self.mask_thumb.widget], layout=w.Layout(align_items="center")),
                       self.painter.widget, self.inpaint.widget])
        self.add_section(Section("Inpaint", body, self._inpaint_summary)).watch(
            self.mode, self.mask_upload, self.painter.note, *self.inpaint.watched())

    def _inpaint_summary(self) -> str | None:
        if self.mode.value != "inpaint":
            return None
        from sdxl_nb.request.mask import coverage

        mask = self.painter.mask()
        return f"{'no mask yet' if mask is None else f'{coverage(mask):.0%} masked'}, {self.inpaint.summary()}"

    def top_rows(self) -> list[w.Widget]:
        rows = super().top_rows()
        at = rows.index(self.size_note)
        return rows[:at] + [self.match_aspect] + rows[at:] + [self.mode, self.init_row]

    def check_combination(self) -> str | None:
        """Run the pipeline's own checks of the feature groups together (hires with the refiner, ControlNet with
        the masked content) on the settings as they stand; the one line they refuse with is shown under the
        sections (and returned), else the line is empty."""
        problem = self.combination_problem()
        set_status(self.combination, problem or "", "error")
        return problem

    def combination_problem(self) -> str | None:
        from sdxl_nb.config.hires import resolve_hires
        from sdxl_nb.request.inpaint import check_with_controlnets, resolve_inpaint
        from sdxl_nb.request.refiner_choice import resolve_refiner

        mode = self.mode.value
        hires = self.hires.fields() if mode == "txt2img" else {}
        refiner = self.refiner_fields.fields()
        try:
            if mode == "inpaint":
                check_with_controlnets(resolve_inpaint(mode, **self.inpaint.fields()), bool(self.controlnets.units))
            if not hires and not refiner:
                return None
            width, height = self.base_size()
            fix = resolve_hires(hires.get("hires_scale"), hires.get("hires_steps"), hires.get("hires_denoise"),
                                hires.get("hires_upscaler"), mode=mode, width=width, height=height,
                                base_steps=self.steps.value, resize=hires.get("hires_resize")) if hires else None
            strength = None if mode == "txt2img" else self.strength.value
            resolve_refiner(GenerationRequest(prompt="", **refiner), self._models(), mode, strength, fix, [])
        except InputError as exc:
            return one_line(exc)
        return None

    # ---- size and mode ----
    def _on_size(self) -> None:
        super()._on_size()
        if not hasattr(self, "match_aspect"):  # the base form's first call, before these widgets exist
            return
        matched = self.matched_size()
        if matched:
            reference, size = matched
            self.size_note.value = f"<small>{html.escape(form.aspect_note(reference, size))}</small>"
        elif self.match_aspect.value:
            self.size_note.value = "<small>upload an init image to match its aspect ratio</small>"
        else:
            self.size_note.value = ""

    def matched_size(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(reference size, size used) when matching the init image's aspect ratio."""
        upload = _upload(self.init_upload)
        if not self.match_aspect.value or upload is None:
            return None
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(upload[1])) as image:
                reference = image.size
            return reference, form.match_aspect(reference, self.base_size())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, InputError):
            return None  # an unusable image or size is refused, in one line, when the job is submitted

    def _on_mode(self) -> None:
        mode = self.mode.value
        show(self.init_row, mode != "txt2img")
        show(self.match_aspect, mode != "txt2img")
        show(self.sections["Hires fix"].widget, mode == "txt2img")  # txt2img only, as in A1111
        inpaint = self.sections["Inpaint"]
        show(inpaint.widget, mode == "inpaint")
        if mode == "inpaint":
            inpaint.open()  # the mask is what inpaint needs next

    def use_init_image(self, path: str | Path, mode: str = "img2img") -> None:
        """Make a saved image the init image (a gallery's img2img / inpaint action)."""
        self.init_upload.value = upload_value(path)
        self.mode.value = mode

    def use_mask_file(self, path: str | Path) -> None:
        self.mask_upload.value = upload_value(path)

    def load(self, fields: dict) -> list[str]:
        return super().load(fields) + self.hires.load(fields) + self.inpaint.load(fields)

    # ---- the request ----
    def chunk_size(self) -> int | None:
        """Images per pipeline call: None for the whole batch ("at most N at once")."""
        at_once = self.at_once.value
        batch = self.batch.value
        return None if not at_once or not isinstance(batch, int) or at_once >= batch else at_once

    def request(self, out_dir: Path) -> tuple[GenerationRequest, list[str]]:
        """The request the form holds and the adjustments made to it (said to the user and recorded).

        Raises InputError (nothing written) when the form cannot make a valid request.
        """
        fields, adjustments = self.fields()
        fields["batch"] = self.batch.value
        mode = self.mode.value
        if mode != "txt2img":
            init = _upload(self.init_upload)
            if init is None:
                raise InputError(f"{mode} needs an init image: upload one (or choose txt2img)")
            fields.update(init_image=str(form.save_upload(init[1], out_dir, "init image")), strength=self.strength.value)
            if mode == "inpaint":
                fields["mask_image"] = str(self.mask_path(out_dir))
                fields.update(self.inpaint.fields())
        else:
            fields.update(self.hires.fields())
        fields.update(self.ip_adapter.fields(out_dir))
        matched = self.matched_size() if mode != "txt2img" else None
        if matched:
            fields.pop("resolution", None)
            fields.update(width=matched[1][0], height=matched[1][1])
            adjustments.append(form.aspect_note(*matched))
        fields["controlnets"] = self.controlnets.fields(out_dir)
        return GenerationRequest(**fields), adjustments

    def job_size(self) -> tuple[int, int]:
        """The size the job will run at (a control map is made at it)."""
        if self.mode.value != "txt2img":
            matched = self.matched_size()
            if matched:
                return matched[1]
            upload = _upload(self.init_upload)
            if upload is not None and self.resolution.value == MODEL_SIZE:
                from PIL import Image

                with Image.open(io.BytesIO(upload[1])) as image:
                    return image.size
        return self.base_size()

    def mask_path(self, out_dir: Path) -> Path:
        """The inpaint mask (painted, or uploaded and perhaps painted over), kept under inputs/ by its hash."""
        return self.painter.save(out_dir)


def _upload(widget: w.FileUpload) -> tuple[str, bytes] | None:
    """(name, bytes) of a FileUpload's file, or None."""
    if not widget.value:
        return None
    item = widget.value[0]
    return item["name"], bytes(item["content"])


def _content(widget: w.FileUpload) -> bytes | None:
    upload = _upload(widget)
    return None if upload is None else upload[1]
