"""Prompt embeddings as A1111 builds them: weighted fragments, 75-token chunks through both SDXL text encoders.

Each encoder tokenizes the parsed fragments, packs them into chunks of `model_max_length - 2` tokens (75 for
SDXL) with A1111's rules (BREAK ends a chunk, a chunk that fills up moves the text after a recent comma to
the next one, an embedding never straddles two chunks), encodes every chunk as `[BOS] tokens [EOS] pad...`,
multiplies each token's hidden state by its weight and restores the chunk's mean, and concatenates the
chunks along the sequence. The pooled embedding is the second encoder's, from the first chunk. A plain
prompt of one chunk goes through exactly the operations of diffusers' `encode_prompt`, so its embeddings
are bit-identical to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from diffusers.utils.torch_utils import get_module_execution_device

from sdxl_nb.request.prompt_syntax import BREAK, fragments, is_plain, weights_summary

COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default: tokens a chunk may give back to end at a comma
PLACEHOLDER = 0  # the token id an embedding's positions carry before its vectors replace them (never EOS)


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (position, vectors) of an embedding


@dataclass
class Encoded:
    """One text's conditioning: hidden states [1, chunks * window, dims] and the pooled vector [1, dims]."""

    hidden: torch.Tensor
    pooled: torch.Tensor
    chunks: int


class PromptEncoder:
    """Encodes texts for one SDXL pipeline; `vectors` maps embedding names to their (clip_l, clip_g) vectors."""

    def __init__(self, pipe, vectors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.pipe = pipe
        self.vectors = vectors or {}
        self.pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
        self.window = pipe.tokenizer.model_max_length
        self._names = (re.compile(r"(?<![\w])(" + "|".join(re.escape(n) for n in sorted(self.vectors, key=len,
                                                                                          reverse=True))
                                  + r")(?![\w])") if self.vectors else None)
        self._empty: list[torch.Tensor] | None = None

    def embeddings_in(self, text: str) -> list[str]:
        return sorted({name for _part, _weight, name in self._pieces(text) if name is not None})

    def uses_embeddings(self, text: str) -> bool:
        return bool(self.embeddings_in(text))

    # ---- tokens ----
    def _pieces(self, text: str) -> list[tuple[str, float, str | None]]:
        """(text, weight, embedding name or None) in order; BREAK stays a (BREAK, -1, None) piece."""
        pieces = []
        for part, weight in fragments(text):
            if weight == -1.0 or self._names is None:
                pieces.append((part, weight, None))
                continue
            start = 0
            for match in self._names.finditer(part):
                pieces.append((part[start:match.start()], weight, None))
                pieces.append(("", weight, match.group(1)))
                start = match.end()
            pieces.append((part[start:], weight, None))
        return pieces

    def chunks(self, text: str, encoder: int) -> list[Chunk]:
        """A1111's chunking of a prompt for encoder 0 (CLIP-L) or 1 (CLIP-G)."""
        tokenizer = self.pairs[encoder][0]
        size = self.window - 2
        comma = tokenizer.convert_tokens_to_ids(",</w>")
        done: list[Chunk] = []
        chunk, last_comma = Chunk(), -1

        def close() -> None:
            nonlocal chunk, last_comma
            missing = size - len(chunk.tokens)
            chunk.tokens += [tokenizer.eos_token_id] * missing
            chunk.weights += [1.0] * missing
            done.append(chunk)
            chunk, last_comma = Chunk(), -1

        for part, weight, name in self._pieces(text):
            if weight == -1.0 and part == BREAK:
                close()
                continue
            if name is not None:
                vectors = self.vectors[name][encoder]
                if len(chunk.tokens) + len(vectors) > size:
                    close()
                chunk.fixes.append((len(chunk.tokens), vectors))
                chunk.tokens += [PLACEHOLDER] * len(vectors)  # replaced by the vectors (as in A1111)
                chunk.weights += [weight] * len(vectors)
                continue
            for token in tokenizer(part, truncation=False, add_special_tokens=False).input_ids if part else []:
                if token == comma:
                    last_comma = len(chunk.tokens)
                elif (len(chunk.tokens) == size and last_comma != -1
                      and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK):
                    cut = last_comma + 1
                    moved = (chunk.tokens[cut:], chunk.weights[cut:])
                    chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                    close()
                    chunk.tokens, chunk.weights = list(moved[0]), list(moved[1])
                if len(chunk.tokens) == size:
                    close()
                chunk.tokens.append(token)
                chunk.weights.append(weight)
        if chunk.tokens or not done:
            close()
        return done

    def chunk_count(self, text: str) -> int:
        return max(len(self.chunks(text, encoder)) for encoder in range(2))

    def token_count(self, text: str) -> int:
        """Tokens CLIP-L reads (an embedding counts its vectors), without start, end and padding tokens."""
        tokenizer = self.pairs[0][0]
        return sum(len(self.vectors[name][0]) if name is not None
                   else len(tokenizer(part, truncation=False, add_special_tokens=False).input_ids) if part else 0
                   for part, weight, name in self._pieces(text) if not (weight == -1.0 and part == BREAK))

    # ---- embeddings ----
    @torch.no_grad()
    def encode(self, text: str, chunks: int | None = None) -> Encoded:
        """The conditioning of a text, padded with empty-prompt chunks to `chunks` chunks when given."""
        per_encoder = [self.chunks(text, encoder) for encoder in range(2)]
        count = max(len(c) for c in per_encoder)
        hidden, pooled = [], None
        for encoder, encoder_chunks in enumerate(per_encoder):
            states = []
            for chunk in encoder_chunks:
                z, chunk_pooled = self._encode_chunk(encoder, chunk)
                if pooled is None and chunk_pooled is not None:
                    pooled = chunk_pooled  # the first chunk's, as A1111 takes it
                states.append(z)
            states += [self._empty_chunk(encoder)] * (count - len(encoder_chunks))
            hidden.append(torch.cat(states, dim=1))
        encoded = Encoded(hidden=torch.concat(hidden, dim=-1), pooled=pooled, chunks=count)
        return pad(encoded, chunks, self) if chunks else encoded

    @torch.no_grad()
    def encode_one(self, text: str, encoder: int, chunks: int) -> Encoded:
        """One encoder's conditioning alone (an SDXL refiner reads CLIP-G only), padded to `chunks` chunks."""
        parts = self.chunks(text, encoder)
        encoded = [self._encode_chunk(encoder, chunk) for chunk in parts]
        states = [z for z, _pooled in encoded] + [self._empty_chunk(encoder)] * (chunks - len(parts))
        return Encoded(hidden=torch.cat(states, dim=1), pooled=encoded[0][1], chunks=max(chunks, len(parts)))

    def _encode_chunk(self, encoder: int, chunk: Chunk) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokenizer, text_encoder = self.pairs[encoder]
        ids = [tokenizer.bos_token_id] + chunk.tokens + [tokenizer.eos_token_id]
        first_end = ids.index(tokenizer.eos_token_id)
        ids[first_end + 1:] = [tokenizer.pad_token_id] * (len(ids) - first_end - 1)  # after the first EOS: padding
        device = get_module_execution_device(text_encoder)
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        handle = None
        if chunk.fixes:
            embedding = text_encoder.get_input_embeddings()

            def place(_module, _inputs, output):
                output = output.clone()
                for position, vectors in chunk.fixes:
                    output[0, 1 + position:1 + position + len(vectors)] = vectors.to(output.device, output.dtype)
                return output

            handle = embedding.register_forward_hook(place)
        try:
            out = text_encoder(input_ids, output_hidden_states=True)
        finally:
            if handle is not None:
                handle.remove()
        pooled = out[0] if out[0].ndim == 2 else None
        z = out.hidden_states[-2]
        weights = [1.0] + chunk.weights + [1.0]
        if any(w != 1.0 for w in weights):
            original_mean = z.mean()
            z = z * torch.tensor(weights, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
            z = z * (original_mean / z.mean())
        return z, pooled

    def _empty_chunk(self, encoder: int) -> torch.Tensor:
        if self._empty is None:
            self._empty = [self._encode_chunk(e, self.chunks("", e)[0])[0] for e in range(2)]
        return self._empty[encoder]

    def empty(self) -> torch.Tensor:
        """The hidden states of one empty-prompt chunk (both encoders side by side): what padding appends."""
        return torch.concat([self._empty_chunk(0), self._empty_chunk(1)], dim=-1)


def pad(encoded: Encoded, chunks: int, encoder: PromptEncoder) -> Encoded:
    """Append empty-prompt chunks until the text has `chunks` chunks (cond and uncond must be as long)."""
    missing = chunks - encoded.chunks
    if missing <= 0:
        return encoded
    empty = encoder.empty().to(encoded.hidden.dtype)
    return Encoded(hidden=torch.cat([encoded.hidden] + [empty] * missing, dim=1), pooled=encoded.pooled,
                   chunks=chunks)


def run_shape(encoder: PromptEncoder, texts) -> tuple[int, bool]:
    """(chunks every text of a run is padded to, whether the run needs this encoder rather than plain text)."""
    texts = list(texts)
    chunks = max(encoder.chunk_count(text) for text in texts)
    return chunks, chunks > 1 or any(not is_plain(text) or encoder.uses_embeddings(text) for text in texts)


def conditioning_record(encoder: PromptEncoder, plan) -> dict:
    """The record's `conditioning`: per prompt its chunks, tokens, weights other than 1 and embeddings used."""
    r = plan.request
    roles = {"prompt": r.styled_prompt, "negative_prompt": r.effective_negative_prompt}
    ends = [spec.prompt_end for spec in plan.images if spec.prompt_end is not None]
    if ends:
        roles["prompt_end"] = ends[0]
    record = {role: {"chunks": encoder.chunk_count(text), "tokens": encoder.token_count(text),
                     "weights": weights_summary(text), "embeddings": encoder.embeddings_in(text)}
              for role, text in roles.items()}
    chunks, weighted = run_shape(encoder, plan.texts())
    record.update(chunk_tokens=encoder.window - 2, padded_to=chunks, sent_as="embeddings" if weighted else "text")
    return record
