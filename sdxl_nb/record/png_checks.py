"""PNG Info's checks of the files an A1111 PNG names (checkpoint, LoRAs, embeddings, ControlNets) against this machine's."""

from __future__ import annotations

from dataclasses import dataclass

from sdxl_nb.errors import InputError

MAX_CHECKED = 64  # names one PNG gets checked; a list longer than any real job's is cut with one line
FOUND, OTHER, MISSING, UNCHECKED = "found", "other hash", "missing", "not checked"


@dataclass(frozen=True)
class Check:
    label: str  # "Model", "LoRA NAME", "TI NAME", "ControlNet 0"
    status: str  # FOUND, OTHER (here, with another hash), MISSING or UNCHECKED
    line: str  # what the panel shows


# ---- the checkpoint ----
def model_check(name: str | None, png_hash: str | None, by_name: str | None) -> tuple[str | None, Check | None]:
    """(the model to run, its check) for `Model: NAME, Model hash: H`; `by_name` is the model the name picked.

    A checkpoint file whose hash is H is preferred over one that only has the name (A1111 loads by hash first too:
    sd_models.get_closet_checkpoint_match / infotext_utils "Model hash" override)."""
    from sdxl_nb.config.checkpoints import checkpoint_with_hash, hash_matches, list_checkpoints

    if not png_hash:
        return by_name, None
    shown = f"{name or '?'} [{png_hash}]"
    file = next((c for c in list_checkpoints() if c.name == by_name), None) if by_name else None
    if file is not None and hash_matches(png_hash, file.sha256, file.path):
        return by_name, Check("Model", FOUND, f"{shown}: {file.name}, the same file (hash matches)")
    with_hash = checkpoint_with_hash(png_hash)
    if with_hash is not None:
        if by_name is None:
            return with_hash.name, Check("Model", FOUND, f"{shown}: found by its hash as {with_hash.name}")
        return with_hash.name, Check("Model", OTHER, f"{shown}: {with_hash.name} has the PNG's hash and is picked; "
                                     f"{by_name} here is another file" + (f" (hash {file.model_hash})" if file else ""))
    if file is not None:
        return by_name, Check("Model", OTHER, f"{shown}: {file.name} here has another hash ({file.model_hash}, the "
                              f"PNG's {png_hash}): a different file of that name, the image will differ")
    if by_name is not None:
        return by_name, Check("Model", UNCHECKED, f"{shown}: {by_name} here is not one file; its hash cannot be "
                              "compared")
    return None, Check("Model", MISSING, f"{shown}: no model of that name or hash here")


# ---- LoRAs and embeddings ----
def hash_list(text: str | None) -> list[tuple[str, str]]:
    """A1111's `Lora hashes` / `TI hashes` value, "name1: hash1, name2: hash2", as pairs."""
    pairs = []
    for item in (text or "").split(","):
        name, _, value = item.rpartition(":")
        if name.strip():
            pairs.append((name.strip(), value.strip().lower()))
    return pairs


def network_checks(prompt: str, values: dict) -> list[Check]:
    """One line per LoRA (`Lora hashes` and the prompt's <lora:...> tags) and embedding (`TI hashes`): found with
    the PNG's hash, here with another hash, or missing; the consumed keys leave `values`."""
    from sdxl_nb.config.embeddings import list_embeddings
    from sdxl_nb.config.loras import file_sha256, list_loras
    from sdxl_nb.request.prompt_syntax import lora_tags

    loras = {entry.name: entry for entry in list_loras()}
    wanted = dict(hash_list(values.pop("Lora hashes", None)))
    try:
        for tag in lora_tags(prompt):
            wanted.setdefault(tag.name, "")
    except InputError:
        pass  # a tag kind this lab lacks: the prompt says it, and running it says why
    checks = [_check("LoRA", name, given, loras.get(name), lambda e: (e.short_hash, e.sha256))
              for name, given in list(wanted.items())[:MAX_CHECKED]]
    embeddings = {entry.name: entry for entry in list_embeddings()}
    named = hash_list(values.pop("TI hashes", None))
    checks += [_check("TI", name, given, embeddings.get(name), lambda e: (file_sha256(e.path),))
               for name, given in named[:MAX_CHECKED]]
    if len(wanted) > MAX_CHECKED or len(named) > MAX_CHECKED:
        checks.append(Check("networks", UNCHECKED, f"only the first {MAX_CHECKED} LoRAs and embeddings are checked"))
    return checks


def _check(kind: str, name: str, given: str, entry, hashes) -> Check:
    label = f"{kind} {name}"
    if entry is None:
        return Check(label, MISSING, f"{name}{f' [{given}]' if given else ''}: missing on this machine")
    try:
        known = hashes(entry)
    except (OSError, InputError) as exc:
        return Check(label, UNCHECKED, f"{name}: here ({entry.path}), but unreadable: {exc}")
    if not given:
        return Check(label, FOUND, f"{name}: found ({entry.path}; the PNG gives no hash to compare)")
    if any(h and h.lower().startswith(given) for h in known) and len(given) >= 8:
        return Check(label, FOUND, f"{name} [{given}]: found, the same file ({entry.path})")
    return Check(label, OTHER, f"{name} [{given}]: here with another hash ({known[0][:len(given) or 12]}, "
                 f"{entry.path}): a different file of that name")


# ---- ControlNets ----
def control_checks(values: dict) -> list[Check]:
    """Each `ControlNet N` unit's model: found by the extension's short hash or our older sha256 prefix, or by
    name; the unit stays listed (its control image is not in the PNG)."""
    from sdxl_nb.config.checkpoints import hash_matches
    from sdxl_nb.config.controlnets import list_controlnets
    from sdxl_nb.record.metadata import param_pairs

    units = [key for key in values if key.startswith("ControlNet ") and key[len("ControlNet "):].isdigit()]
    checks = []
    for key in units[:MAX_CHECKED]:
        settings = dict(param_pairs(values[key].replace("\n", " ")))
        model = settings.get("Model", "").strip()
        if not model or model.lower() == "none":
            continue
        name, _, given = model.partition(" [")
        name, given = name.strip(), given.rstrip("]").strip().lower()
        found, by_name = None, None
        for entry in list_controlnets():
            try:
                weights = entry.weights_file()
                if given and hash_matches(given, entry.content_hash(), weights):
                    found = entry
                    break
            except (OSError, InputError):
                continue
            if entry.name == name and by_name is None:
                by_name = entry
        label = f"{key} model"
        if found is not None:
            line = f"{model}: found{'' if found.name == name else ' by its hash as ' + found.name} ({found.path})"
            checks.append(Check(label, FOUND, line + "; the control image is not in the PNG"))
        elif by_name is not None:
            checks.append(Check(label, OTHER if given else FOUND, f"{model}: {by_name.name} here "
                                + ("has another hash: a different file of that name" if given else "(no hash given)")))
        else:
            checks.append(Check(label, MISSING, f"{model}: missing on this machine"))
    return checks
