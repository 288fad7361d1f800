"""Textual-inversion embeddings: SDXL .safetensors files (a clip_l / clip_g pair) in SDXL_NB_EMBEDDINGS folders; no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.loras import file_sha256, safetensors_header, search_folders
from sdxl_nb.config.name_clash import clash_warning, clashes
from sdxl_nb.errors import InputError
from sdxl_nb.request.prompt_syntax import BREAK, without_tags

# Where embeddings sit under a tool's root: A1111 (embeddings/) and ComfyUI (models/embeddings).
ROOT_LAYOUTS = ("embeddings", "models/embeddings")
KEYS = ("clip_l", "clip_g")  # SDXL embeddings: CLIP-L vectors and OpenCLIP-G vectors, one row per token
# Words every prompt uses: an embedding of that name would replace the word in every prompt, so it is refused.
PROMPT_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "nor", "not", "no", "of", "with", "without", "in", "on", "at", "to", "for",
    "from", "by", "as", "into", "onto", "over", "under", "is", "are", "was", "be", "it", "its", "this", "that",
    "these", "those", "very", "some", "his", "her", "their", "my", "your", BREAK.lower()})
# Characters the prompt syntax gives meaning (weights, escapes, tags, alternation): no embedding name holds one.
SYNTAX_CHARACTERS = set("()[]{}<>:\\|,")


@dataclass(frozen=True)
class EmbeddingFile:
    name: str  # the file name without .safetensors: the word that calls it in a prompt
    path: str
    size_bytes: int


@dataclass(frozen=True)
class EmbeddingUse:
    name: str
    path: str
    sha256: str
    vectors: int  # tokens it takes in a prompt

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]  # A1111's `TI hashes`: the file's sha256, first 12 hex digits

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "vectors": self.vectors}


def _files() -> list[Path]:
    found = []
    for folder in search_folders(settings.embedding_paths(), ROOT_LAYOUTS):
        if folder.is_dir():
            found += [path for path in sorted(folder.rglob("*.safetensors")) if path.is_file()]
    return found


def list_embeddings() -> list[EmbeddingFile]:
    """Every embedding by name (a name found twice: the first folder wins; `embedding_clashes` says it)."""
    found: dict[str, EmbeddingFile] = {}
    for path in _files():
        found.setdefault(path.stem, EmbeddingFile(path.stem, str(path), path.stat().st_size))
    return list(found.values())


def embedding_clashes() -> dict[str, list[str]]:
    """name -> every file of that name (the first is the one used), for names two files share."""
    return clashes((path.stem, str(path)) for path in _files())


def name_problem(name: str) -> str | None:
    """Why a file name cannot be an embedding's name (a common prompt word, the prompt syntax's), or None."""
    if name.lower() in PROMPT_WORDS:
        return (f"embedding name {name!r} is a common prompt word (it would replace that word in every prompt); "
                "rename the file")
    if SYNTAX_CHARACTERS & set(name) or not any(c.isalpha() for c in name):
        return (f"embedding name {name!r} is not a word a prompt can hold as is (it has no letter, or holds one of "
                f"{''.join(sorted(SYNTAX_CHARACTERS))}, which the prompt syntax reads); rename the file")
    return None


def check_embedding(path: str | Path) -> int:
    """The number of vectors of an SDXL embedding file; anything else is an InputError naming the file."""
    header = safetensors_header(path)
    shapes = {key: header[key]["shape"] for key in KEYS if key in header}
    if len(shapes) != 2:
        raise InputError(f"embedding {path} is not an SDXL embedding (it needs tensors clip_l and clip_g; it has "
                         f"{', '.join(k for k in header if k != '__metadata__') or 'none'})")
    if any(len(shape) != 2 for shape in shapes.values()) or shapes["clip_l"][0] != shapes["clip_g"][0]:
        raise InputError(f"embedding {path}: clip_l {shapes['clip_l']} and clip_g {shapes['clip_g']} must be "
                         "[tokens, width] with the same number of tokens")
    return int(shapes["clip_l"][0])


def names_in(text: str, names) -> list[str]:
    """The embedding names a prompt uses, as whole words (LoRA tags removed), in order of first use; a name
    refused by `name_problem` (a common prompt word, BREAK) is never one."""
    names = sorted((n for n in names if name_problem(n) is None), key=len, reverse=True)
    if not names or not text:
        return []
    pattern = re.compile(r"(?<![\w])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
    return list(dict.fromkeys(match.group(1) for match in pattern.finditer(without_tags(text))))


def embeddings_for(*texts: str) -> tuple[EmbeddingUse, ...]:
    """The embeddings the texts use, checked and hashed (no folders configured: none, nothing read)."""
    available = {e.name: e for e in list_embeddings() if name_problem(e.name) is None}
    used: dict[str, EmbeddingUse] = {}
    for text in texts:
        for name in names_in(text, available):
            if name not in used:
                file = available[name]
                try:
                    vectors = check_embedding(file.path)
                except (InputError, OSError) as exc:
                    raise InputError(f"embedding {name!r} (a word of the prompt) is unusable: {exc}") from None
                used[name] = EmbeddingUse(name=name, path=file.path, sha256=file_sha256(file.path), vectors=vectors)
    return tuple(used.values())


def embedding_clash_warnings(uses) -> list[str]:
    """A job's warnings for the embeddings it uses whose name several files share."""
    table = embedding_clashes()
    return [line for use in uses for line in clash_warning("embedding", use.name, table)]
