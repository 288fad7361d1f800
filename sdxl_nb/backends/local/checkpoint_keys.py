"""Diffusers SDXL weights -> the original (A1111/ComfyUI) single-file key layout, block map read from the configs."""

from __future__ import annotations

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
CLIP_G_PREFIX = "conditioner.embedders.1.model."
# An SDXL refiner has bigG alone, as its first embedder (sgm's sd_xl_refiner.yaml; config.checkpoints).
REFINER_CLIP_G_PREFIX = "conditioner.embedders.0.model."

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _layers(config: dict, count: int) -> list[int]:
    value = config["layers_per_block"]
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def _resnet_inner(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def unet_key_map(config: dict, keys) -> dict[str, str]:
    """diffusers UNet key -> original key. The block numbering comes from the config (levels, layers per block),
    not from SDXL base's 3 x 2, so any UNet2DConditionModel layout converts."""
    levels = len(config["down_block_types"])
    down_layers = _layers(config, levels)
    up_layers = [n + 1 for n in reversed(down_layers)]
    # input_blocks.0 is conv_in; each level then holds its resnets(+attentions) and, but the last, a downsampler.
    down_start, index = [], 1
    for level in range(levels):
        down_start.append(index)
        index += down_layers[level] + (1 if level < levels - 1 else 0)
    up_start, index = [], 0
    for level in range(levels):
        up_start.append(index)
        index += up_layers[level]
    has_up_attention = ["CrossAttn" in name for name in config["up_block_types"]]
    mapping = {}
    for key in keys:
        head, _, leaf = key.rpartition(".")
        parts = head.split(".")
        if head in _UNET_FIXED:
            mapping[key] = f"{_UNET_FIXED[head]}.{leaf}"
        elif parts[0] == "down_blocks":
            level, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:] + [leaf])
            if kind == "resnets":
                mapping[key] = f"input_blocks.{down_start[level] + int(parts[3])}.0.{_resnet_inner(rest)}"
            elif kind == "attentions":
                mapping[key] = f"input_blocks.{down_start[level] + int(parts[3])}.1.{rest}"
            elif kind == "downsamplers":  # down_blocks.L.downsamplers.0.conv.weight
                mapping[key] = f"input_blocks.{down_start[level] + down_layers[level]}.0.op.{leaf}"
        elif parts[0] == "mid_block":
            kind, number = parts[1], int(parts[2])
            rest = ".".join(parts[3:] + [leaf])
            if kind == "resnets":
                mapping[key] = f"middle_block.{2 * number}.{_resnet_inner(rest)}"
            else:
                mapping[key] = f"middle_block.{2 * number + 1}.{rest}"
        elif parts[0] == "up_blocks":
            level, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:] + [leaf])
            if kind == "resnets":
                mapping[key] = f"output_blocks.{up_start[level] + int(parts[3])}.0.{_resnet_inner(rest)}"
            elif kind == "attentions":
                mapping[key] = f"output_blocks.{up_start[level] + int(parts[3])}.1.{rest}"
            elif kind == "upsamplers":  # after the attention in attention levels, else right after the resnet
                last = up_start[level] + up_layers[level] - 1
                mapping[key] = f"output_blocks.{last}.{2 if has_up_attention[level] else 1}.conv.{leaf}"
        if key not in mapping:
            raise KeyError(f"UNet weight {key!r} has no place in the original layout")
    return mapping


def vae_key_map(config: dict, keys) -> dict[str, str]:
    """diffusers AutoencoderKL key -> original key (decoder levels are numbered from the bottom there)."""
    levels = len(config["up_block_types"])
    names = {"conv_norm_out": "norm_out", "group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
             "to_out.0": "proj_out", "conv_shortcut": "nin_shortcut"}

    def rename(rest: str) -> str:
        for new, old in names.items():
            rest = rest.replace(new + ".", old + ".")
        return rest

    mapping = {}
    for key in keys:
        parts = key.split(".")
        side = parts[0]
        if side in ("quant_conv", "post_quant_conv"):
            mapping[key] = key
        elif parts[1] == "down_blocks":
            level, kind, rest = parts[2], parts[3], ".".join(parts[5:])
            if kind == "resnets":
                mapping[key] = f"{side}.down.{level}.block.{parts[4]}.{rename(rest)}"
            else:
                mapping[key] = f"{side}.down.{level}.downsample.{rest}"
        elif parts[1] == "up_blocks":
            level, kind, rest = levels - 1 - int(parts[2]), parts[3], ".".join(parts[5:])
            if kind == "resnets":
                mapping[key] = f"{side}.up.{level}.block.{parts[4]}.{rename(rest)}"
            else:
                mapping[key] = f"{side}.up.{level}.upsample.{rest}"
        elif parts[1] == "mid_block":
            kind, number, rest = parts[2], int(parts[3]), ".".join(parts[4:])
            if kind == "resnets":
                mapping[key] = f"{side}.mid.block_{number + 1}.{rename(rest)}"
            else:
                mapping[key] = f"{side}.mid.attn_1.{rename(rest)}"
        else:
            mapping[key] = f"{side}.{rename('.'.join(parts[1:]))}"
    return mapping


def _clip_l(state: dict) -> dict:
    # transformers 5 may keep CLIPTextModel's weights without the `text_model.` level the original layout has.
    return {CLIP_L_PREFIX + (key if key.startswith("text_model.") else "text_model." + key): value
            for key, value in state.items() if not key.endswith("position_ids")}


def _clip_g(state: dict, prefix: str = CLIP_G_PREFIX) -> dict:
    """CLIPTextModelWithProjection -> OpenCLIP names: q/k/v fused into in_proj, the projection transposed."""
    out = {}
    layer_names = (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                   ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"))
    fixed = {"embeddings.position_embedding.weight": "positional_embedding",
             "embeddings.token_embedding.weight": "token_embedding.weight",
             "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
    for key, value in state.items():
        short = key.removeprefix("text_model.")
        if short in fixed:
            out[prefix + fixed[short]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif short.startswith("encoder.layers."):
            number, rest = short.split(".")[2], ".".join(short.split(".")[3:])
            base = f"{prefix}transformer.resblocks.{number}."
            if rest.startswith("self_attn.q_proj."):
                leaf = rest.rsplit(".", 1)[1]
                qkv = [state[key.replace(".q_proj.", f".{p}_proj.")] for p in "qkv"]
                out[f"{base}attn.in_proj_{leaf}"] = torch.cat(qkv, dim=0)
            elif rest.startswith(("self_attn.k_proj.", "self_attn.v_proj.")):
                continue
            else:
                for new, old in layer_names:
                    if rest.startswith(new + "."):
                        out[base + old + rest[len(new):]] = value
                        break
                else:
                    raise KeyError(f"text encoder 2 weight {key!r} has no place in the original layout")
        elif not key.endswith("position_ids"):
            raise KeyError(f"text encoder 2 weight {key!r} has no place in the original layout")
    return out


def original_state_dict(unet, vae, text_encoder, text_encoder_2) -> dict:
    """Every weight of an SDXL pipeline under its original single-file name (tensors shared, not copied, except
    the fused q/k/v and the transposed projection). Works on meta tensors too (shapes only). A refiner (no first
    text encoder: `text_encoder` None) has its bigG as the first embedder, as sd_xl_refiner_1.0.safetensors."""
    out = {}
    unet_state = unet.state_dict()
    for key, original in unet_key_map(dict(unet.config), unet_state).items():
        out[UNET_PREFIX + original] = unet_state[key]
    vae_state = vae.state_dict()
    for key, original in vae_key_map(dict(vae.config), vae_state).items():
        value = vae_state[key]
        if ".mid.attn_1." in original and value.ndim == 2:  # original attention projections are 1x1 convolutions
            value = value[:, :, None, None]
        out[VAE_PREFIX + original] = value
    if text_encoder is None:
        out.update(_clip_g(text_encoder_2.state_dict(), REFINER_CLIP_G_PREFIX))
    else:
        out.update(_clip_l(text_encoder.state_dict()))
        out.update(_clip_g(text_encoder_2.state_dict()))
    return out
