"""A1111-compatible `parameters` text: build it for saved PNGs and parse it back."""

from __future__ import annotations

import bisect
import json
import re

# diffusers class -> the A1111 sampler it is (k-diffusion / A1111's own code does the same steps), for schedulers
# named by presets or shipped by a model as its "Default". The DPM-Solver families are named from their config below.
_A1111_SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EDMEulerScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "LMSDiscreteScheduler": "LMS",
    "DPMSolverSDEScheduler": "DPM++ SDE",  # a port of k-diffusion's sample_dpmpp_sde, Brownian-tree noise included
    "UniPCMultistepScheduler": "UniPC",
    "DDIMScheduler": "DDIM",
    "LCMScheduler": "LCM",
}
# Samplers A1111 does not have: written under their own name, never as another A1111 sampler (a reader that sends
# the image back to A1111 then keeps its own sampler instead of silently running a different one).
_OWN_NAMES = {"DEISMultistepScheduler": "DEIS", "TCDScheduler": "TCD", "DDPMScheduler": "DDPM"}
_SCHEDULES = {"karras": "Karras", "exponential": "Exponential"}
# A1111's `re_param` (modules/infotext_utils.py): r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', its
# findall read by hand below. The regex retries its key at every character of a long run without a colon (a 900 KB
# prompt line: quadratic) and rescans an unclosed quote from every later one; the scan below reads each character
# a bounded number of times and gives the same pairs.
_KEY_START = re.compile(r"\w")
_KEY = re.compile(r"\w[\w \-/]*")
_SPACE = re.compile(r"\s*")
_QUOTE = re.compile(r'"')


def a1111_sampler(class_name: str, config: dict, schedule_type: str | None = None) -> tuple[str, str]:
    """(Sampler, Schedule type) for a diffusers scheduler class and config, as A1111 writes them.

    `schedule_type` is the job's recorded A1111 label: several labels make the same config (SGM Uniform and
    Simple: trailing timesteps; Uniform and Normal: linspace), so the one picked is written back as it was.

    Exact equivalents get A1111's name (table above; DPMSolverMultistep and EDMDPMSolverMultistep: "DPM++ 2M",
    "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"). A sampler A1111 lacks keeps a name of its own that is
    not on A1111's list: DPMSolverSinglestep is "DPM++ 2S" ("... SDE" for sde-dpmsolver++; A1111's "DPM++ 2S a" is
    ancestral, its "DPM++ SDE" is DPMSolverSDEScheduler), multistep orders A1111 lacks are "DPM++ 3M" / "DPM 2M",
    PNDM without skip_prk_steps is "PNDM" (with it, A1111's "PLMS"), DEIS, TCD and DDPM their own; any other
    class its class name.
    """
    sampler = _A1111_SAMPLERS.get(class_name) or _OWN_NAMES.get(class_name) or _dpm_solver(class_name, config)
    if class_name == "PNDMScheduler":
        sampler = "PLMS" if config.get("skip_prk_steps") else "PNDM"
    sampler = sampler or class_name
    if class_name.startswith("EDM"):
        schedule = _SCHEDULES.get(str(config.get("sigma_schedule", "karras")), "Automatic")
    elif config.get("use_karras_sigmas"):
        schedule = "Karras"
    elif config.get("use_exponential_sigmas"):
        schedule = "Exponential"
    elif config.get("use_beta_sigmas"):
        schedule = "Beta"
    elif config.get("timestep_spacing") == "trailing":
        schedule = "SGM Uniform"
    else:
        schedule = "Automatic"
    if schedule_type and schedule_type != "Automatic":
        schedule = schedule_type
    return sampler, schedule


def _dpm_solver(class_name: str, config: dict) -> str | None:
    """DPM-Solver names from the config: ++ or not, the order, multistep (M) or singlestep (S), SDE, Heun."""
    kind = {"DPMSolverMultistepScheduler": "M", "EDMDPMSolverMultistepScheduler": "M",
            "DPMSolverSinglestepScheduler": "S"}.get(class_name)
    if kind is None:
        return None
    algorithm = str(config.get("algorithm_type") or "dpmsolver++")
    order = config.get("solver_order") or 2
    name = f"DPM{'++' if algorithm.endswith('++') else ''} {order}{kind}"
    if algorithm.startswith("sde-"):
        name += " SDE"
    if config.get("solver_type") == "heun":
        name += " Heun"  # "DPM++ 2M SDE Heun" is A1111's; the others are not on its list
    return name


def _quote(value: object) -> str:
    text = str(value)
    # A1111 JSON-quotes a value only when it would break the comma/colon list.
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def build_parameters(prompt: str, negative: str, fields: dict[str, object]) -> str:
    """The `parameters` chunk: prompt, optional negative line, then `Key: value, ...`."""
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """Parse A1111 `parameters` text into {"Prompt", "Negative prompt", key: value...} (values as text), as A1111's
    `parse_generation_parameters` does; linear in the text."""
    *head, last = text.strip("\n").split("\n")
    found = param_pairs(last)
    if len(found) < 3:  # no parameter line: the whole text is the prompt
        head, found = head + [last], []
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in head:
        if line.startswith("Negative prompt:") and not negative_lines:
            negative_lines.append(line[len("Negative prompt:"):].lstrip(" "))
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    result = {"Prompt": "\n".join(prompt_lines), "Negative prompt": "\n".join(negative_lines)}
    for key, value in found:
        result[key.strip()] = _unquote(value.strip())
    return result


def _unquote(value: str) -> str:
    """A JSON-quoted value's text; A1111's `unquote` keeps the value as written when it is not valid JSON."""
    if len(value) > 1 and value[0] == value[-1] == '"':
        try:
            unquoted = json.loads(value)
        except ValueError:
            return value
        return unquoted if isinstance(unquoted, str) else value
    return value


def param_pairs(line: str) -> list[tuple[str, str]]:
    """`re_param.findall(line)` for one line (no newline in it), in one left-to-right pass.

    A match starts at a word character; its key is the whole run of key characters from there (a colon is not
    one, so a shorter key never meets one) and needs two characters and a colon after it. When that fails, no
    start inside the run can match, so the scan goes on after the run."""
    pairs: list[tuple[str, str]] = []
    closing = _Closing(line)
    size, pos = len(line), 0
    while True:
        start = _KEY_START.search(line, pos)
        if start is None:
            return pairs
        key_end = _KEY.match(line, start.start()).end()
        if key_end >= size or line[key_end] != ":" or key_end - start.start() < 2:
            pos = max(key_end, start.start() + 1)
            continue
        value_start = _SPACE.match(line, key_end + 1).end()
        if value_start < size and line[value_start] == '"':
            close = closing.after(value_start + 1)  # the quoted form: a body of at least one character
            if close is not None and close > value_start + 1 and (close + 1 == size or line[close + 1] == ","):
                pairs.append((line[start.start():key_end], line[value_start:close + 1]))
                pos = close + 2
                continue
        comma = line.find(",", value_start)
        value_end = size if comma < 0 else comma
        pairs.append((line[start.start():key_end], line[value_start:value_end]))
        if comma < 0:
            return pairs
        pos = comma + 1


class _Closing:
    """Where a quoted body `(?:\\.|[^\\"])+` that starts at a position ends: the first quote not escaped by the
    backslashes between that position and it. Every quote's own escaping is found once, so each question is a
    lookup (an unclosed quote is not rescanned from every later one)."""

    def __init__(self, line: str):
        self.line = line
        self.quotes = [m.start() for m in _QUOTE.finditer(line)]
        self.next_open: list[int] | None = None  # per quote: the index of the first unescaped quote from it on

    def _escaped(self, quote: int) -> bool:
        run = quote
        while run > 0 and self.line[run - 1] == "\\":
            run -= 1
        return (quote - run) % 2 == 1

    def after(self, start: int) -> int | None:
        if self.next_open is None:
            following = len(self.quotes)
            self.next_open = [following] * (len(self.quotes) + 1)
            for index in range(len(self.quotes) - 1, -1, -1):
                if not self._escaped(self.quotes[index]):
                    following = index
                self.next_open[index] = following
        index = bisect.bisect_left(self.quotes, start)
        if index == len(self.quotes):
            return None
        first = self.quotes[index]
        run = first
        while run > start and self.line[run - 1] == "\\":
            run -= 1
        if run == start:  # only backslashes between: they escape it or not counted from `start`
            if (first - start) % 2 == 0:
                return first
            index += 1
        found = self.next_open[index]
        return self.quotes[found] if found < len(self.quotes) else None
