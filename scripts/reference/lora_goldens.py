#!/usr/bin/env python3
"""Tiny models, LoRA files and goldens for mlbench-diffusion's LoRA merging and single-file loading.

Usage:
  lora_goldens.py          writes everything below (CPU, f32, fixed seeds)

Writes
  tests/data/lora-base/{unet,text_encoder,vae}/   tiny SD-1.5-shaped diffusers models (random)
  tests/data/lora-files/*.safetensors             LoRA files in the formats found in the wild:
      kohya.safetensors       kohya/sd-scripts names built from diffusers module paths
                              (lora_unet_down_blocks_0_attentions_0_..., lora_te_text_model_...),
                              `.alpha` on some modules, mixed ranks, LoCon on a 1x1 conv (proj_in)
                              and a 3x3 conv (resnet conv1), text encoder + unet
      kohya-ldm.safetensors   kohya names built from the original LDM module paths
                              (lora_unet_input_blocks_1_1_proj_in, lora_unet_middle_block_...,
                              lora_unet_output_blocks_..._in_layers_2 (3x3 LoCon), ...)
      peft.safetensors        diffusers/PEFT (`unet.X.lora_A.weight`, `text_encoder.X.lora_B.weight`)
                              made with peft (LoraConfig, get_peft_model_state_dict)
      old.safetensors         old diffusers form (`unet.X.attn1.processor.to_q_lora.down.weight`,
                              `unet.X.proj_in.lora.down.weight`, `text_encoder.X.self_attn.to_q_lora...`,
                              `...mlp.fc1.lora_linear_layer.down.weight`), made by diffusers' own
                              `_convert_non_diffusers_lora_to_diffusers` from a kohya dict
      kohya-sdxl.safetensors  kohya SDXL file for single-file/sdxl/: sgm UNet names, lora_te1_ /
                              lora_te2_ (incl. text_projection), two LyCORIS Tucker LoCon modules
                              (lora_mid)
      other-arch.safetensors  kohya keys of a model with other module names (no key matches)
      wrong-shape.safetensors kohya LoRA whose to_q down matrix has the wrong input width
  tests/golden/lora-fused.safetensors
      `CASE.COMPONENT.KEY`: every base tensor the LoRAs change, fused by the explicit formula
      W + sum scale * alpha/rank * up @ down (float64, rounded to f32), for the cases in the
      metadata `cases` (tests/data/lora-base) and `cases_sdxl` (single-file/sdxl/), JSON
      case -> [[file, scale], ...]. diffusers' fuse_lora (pipe.load_lora_weights + set_adapters
      + fuse_lora + unload_lora_weights) is run on every `cases` case as a cross-check; see
      `diffusers_agrees` in the metadata and the comment in main() for where it differs.
  tests/data/single-file/layouts.json
      (diffusers, LDM) module names of the real SD 1.5 / SDXL UNet and SD VAE block layouts
      (tiny channels), each round-tripped through diffusers' converter
  tests/data/single-file/{sd1,sd2,sdxl}.safetensors + sdxl/ and sd2/ diffusers folders
      single-file (LDM / sgm) checkpoints made from diffusers models with the inverse of
      diffusers' key mapping (written here), then checked by converting them back with
      diffusers' own `convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
      `convert_ldm_clip_checkpoint` and `convert_open_clip_checkpoint` (must give the
      diffusers tensors exactly, or the script fails).

"""

import copy
import json
import os
import shutil

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

# transformers 5.24 asks for peft >= 0.22 in its adapter integration (which diffusers uses for
# the text encoder); PyPI's newest peft is 0.21.2, whose LoRA layers are the same. Lift the check.
import transformers.integrations.peft as _tpeft  # noqa: E402

_tpeft.check_peft_version = lambda min_version: None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(ROOT, "tests/data/lora-base")
FILES = os.path.join(ROOT, "tests/data/lora-files")
SINGLE = os.path.join(ROOT, "tests/data/single-file")
GOLDEN = os.path.join(ROOT, "tests/golden/lora-fused.safetensors")


def tiny_unet(sdxl=False, linear_proj=False):
    kw = dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        norm_num_groups=2,
        attention_head_dim=2,
    )
    if sdxl:
        kw.update(
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(4, 8),
            layers_per_block=2,
            transformer_layers_per_block=(1, 2),
            cross_attention_dim=16,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=4 + 6 * 4,
        )
    else:
        kw.update(
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(4, 8, 8),
            layers_per_block=2,
            cross_attention_dim=8,
            use_linear_projection=linear_proj,
        )
    return UNet2DConditionModel(**kw).eval()


def tiny_clip(hidden=8, layers=2, projection=None, act="quick_gelu"):
    cfg = CLIPTextConfig(
        vocab_size=64,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        max_position_embeddings=12,
        hidden_act=act,
        projection_dim=projection or hidden,
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(cfg).eval()


def tiny_vae():
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    ).eval()


def classic(sd):
    """Text encoder keys as real checkpoints spell them (`text_model.` prefix, transformers 4);
    transformers 5 saves them without it."""
    return {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v for k, v in sd.items()}


def save_text_encoder(te, path):
    save_diffusers(te, path)
    f = os.path.join(path, "model.safetensors")
    save_file({k: v.contiguous() for k, v in classic(te.state_dict()).items()}, f)


def perturb(model, seed):
    """Random weights everywhere (diffusers zero-initialises some layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


# ---------------------------------------------------------------- LoRA files


def rnd(g, *shape):
    return (torch.randn(shape, generator=g) * 0.3).contiguous()


def kohya_entry(sd, g, name, weight, rank, alpha=None, rec=None, key=None, tucker=False):
    """Adds kohya down/up (and alpha) for a base weight of shape `weight.shape`; with `rec`,
    records (up, down, alpha, mid) under `key` (component, base tensor name) for `formula`.
    `tucker`: LyCORIS LoCon with a Tucker core (`lora_mid`, [rank, rank, kh, kw]; down and up 1x1)."""
    if tucker:
        out_c, in_c, kh, kw = weight.shape
        sd[f"{name}.lora_down.weight"] = rnd(g, rank, in_c, 1, 1)
        sd[f"{name}.lora_mid.weight"] = rnd(g, rank, rank, kh, kw)
        sd[f"{name}.lora_up.weight"] = rnd(g, out_c, rank, 1, 1)
    elif weight.ndim == 4:
        out_c, in_c, kh, kw = weight.shape
        sd[f"{name}.lora_down.weight"] = rnd(g, rank, in_c, kh, kw)
        sd[f"{name}.lora_up.weight"] = rnd(g, out_c, rank, 1, 1)
    else:
        out_f, in_f = weight.shape
        sd[f"{name}.lora_down.weight"] = rnd(g, rank, in_f)
        sd[f"{name}.lora_up.weight"] = rnd(g, out_f, rank)
    if alpha is not None:
        sd[f"{name}.alpha"] = torch.tensor(float(alpha))
    if rec is not None:
        rec[key] = (sd[f"{name}.lora_up.weight"], sd[f"{name}.lora_down.weight"], alpha, sd.get(f"{name}.lora_mid.weight"))


def make_kohya(unet_sd, te_sd, seed):
    g = torch.Generator().manual_seed(seed)
    sd, rec = {}, {}
    unet_mods = [
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k", 4, None),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v", 2, 1.0),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", 4, 4.0),
        ("down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k", 3, 1.5),
        ("mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj", 8, 4.0),
        ("up_blocks.2.attentions.2.transformer_blocks.0.ff.net.2", 2, None),
        ("down_blocks.0.attentions.1.proj_in", 4, 2.0),  # conv 1x1 (LoCon)
        ("up_blocks.1.attentions.0.proj_out", 2, None),  # conv 1x1 (LoCon)
        ("down_blocks.1.resnets.0.conv1", 4, 3.0),  # conv 3x3 (LoCon)
        ("up_blocks.0.resnets.2.conv2", 2, None),  # conv 3x3 (LoCon)
        ("down_blocks.1.resnets.0.time_emb_proj", 4, 1.0),
    ]
    for mod, rank, alpha in unet_mods:
        w = mod + ".weight"
        kohya_entry(sd, g, "lora_unet_" + mod.replace(".", "_"), unet_sd[w], rank, alpha, rec, ("unet", w))
    te_mods = [
        ("text_model.encoder.layers.0.self_attn.q_proj", 4, 2.0),
        ("text_model.encoder.layers.0.self_attn.v_proj", 2, None),
        ("text_model.encoder.layers.1.self_attn.out_proj", 4, 4.0),
        ("text_model.encoder.layers.1.mlp.fc1", 8, 2.0),
    ]
    for mod, rank, alpha in te_mods:
        w = mod + ".weight"
        kohya_entry(sd, g, "lora_te_" + mod.replace(".", "_"), te_sd[w], rank, alpha, rec, ("text_encoder", w))
    return sd, rec


def make_kohya_ldm(unet_sd, te_sd, ldm_of, seed, twin=False):
    """kohya names from the LDM module paths (what sd-scripts writes for sgm UNets).

    diffusers' SD 1.x loader does not map LDM names (only its SDXL loader does, heuristically),
    so with `twin` the same tensors come under the diffusers-path kohya names; the golden is
    what diffusers fuses from that twin."""
    g = torch.Generator().manual_seed(seed)
    sd, rec = {}, {}
    if twin:
        ldm_of = lambda k: k  # noqa: E731
    unet_mods = [
        ("down_blocks.0.attentions.0.proj_in", 4, 2.0),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v", 4, 1.0),
        ("mid_block.attentions.0.transformer_blocks.0.attn1.to_q", 2, None),
        ("mid_block.resnets.1.conv1", 4, 2.0),
        ("up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_k", 4, 4.0),
        ("up_blocks.2.resnets.1.conv1", 2, 1.0),
        ("up_blocks.0.resnets.0.conv_shortcut", 2, None),
        ("down_blocks.0.downsamplers.0.conv", 4, 2.0),
        ("up_blocks.1.upsamplers.0.conv", 4, 2.0),
        ("up_blocks.0.upsamplers.0.conv", 2, 2.0),
        ("down_blocks.2.resnets.1.time_emb_proj", 4, None),
    ]
    for mod, rank, alpha in unet_mods:
        w = mod + ".weight"
        ldm = ldm_of(w)[: -len(".weight")]
        kohya_entry(sd, g, "lora_unet_" + ldm.replace(".", "_"), unet_sd[w], rank, alpha, rec, ("unet", w))
    te_mods = [
        ("text_model.encoder.layers.0.self_attn.q_proj", 4, 1.0),
        ("text_model.encoder.layers.1.mlp.fc2", 2, None),
    ]
    for mod, rank, alpha in te_mods:
        w = mod + ".weight"
        kohya_entry(sd, g, "lora_te_" + mod.replace(".", "_"), te_sd[w], rank, alpha, rec, ("text_encoder", w))
    return sd, rec


def make_peft(pipe, seed):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    ucfg = LoraConfig(
        r=4,
        lora_alpha=4,
        target_modules=["to_q", "to_v", "proj_in", "conv1", "ff.net.2"],
        rank_pattern={"conv1": 2},
        init_lora_weights=False,
    )
    tcfg = LoraConfig(r=2, lora_alpha=2, target_modules=["k_proj", "fc2"], init_lora_weights=False)
    unet, te = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
    unet.add_adapter(ucfg, adapter_name="gen")
    te.add_adapter(tcfg, adapter_name="gen")
    u = get_peft_model_state_dict(unet, adapter_name="gen")
    t = get_peft_model_state_dict(te, adapter_name="gen")
    sd = {f"unet.{k}": v.contiguous() for k, v in u.items()}
    sd.update({f"text_encoder.{k}": v.contiguous() for k, v in classic(t).items()})
    rec = {}  # PEFT files carry no alpha: alpha = rank
    for k, down in sd.items():
        if ".lora_A." in k:
            comp, mod = k.split(".", 1)
            rec[(comp, mod.split(".lora_A.")[0] + ".weight")] = (sd[k.replace(".lora_A.", ".lora_B.")], down, None, None)
    return sd, rec


# ---------------------------------------------------------------- diffusers -> LDM keys

RESNET = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
]


def unet_prefixes(unet):
    """(kind, diffusers prefix, ldm prefix) for a diffusers UNet2DConditionModel."""
    c = unet.config
    n, lpb = len(c.block_out_channels), c.layers_per_block
    t = [
        ("plain", "time_embedding.linear_1", "time_embed.0"),
        ("plain", "time_embedding.linear_2", "time_embed.2"),
        ("plain", "add_embedding.linear_1", "label_emb.0.0"),
        ("plain", "add_embedding.linear_2", "label_emb.0.2"),
        ("plain", "conv_in", "input_blocks.0.0"),
        ("plain", "conv_norm_out", "out.0"),
        ("plain", "conv_out", "out.2"),
        ("resnet", "mid_block.resnets.0", "middle_block.0"),
        ("plain", "mid_block.attentions.0", "middle_block.1"),
        ("resnet", "mid_block.resnets.1", "middle_block.2"),
    ]
    for i in range(n):
        for j in range(lpb):
            k = i * (lpb + 1) + j + 1
            t.append(("resnet", f"down_blocks.{i}.resnets.{j}", f"input_blocks.{k}.0"))
            t.append(("plain", f"down_blocks.{i}.attentions.{j}", f"input_blocks.{k}.1"))
        if i < n - 1:
            t.append(("plain", f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(i + 1) * (lpb + 1)}.0.op"))
    for i, kind in enumerate(c.up_block_types):
        has_attn = "CrossAttn" in kind
        for j in range(lpb + 1):
            k = i * (lpb + 1) + j
            t.append(("resnet", f"up_blocks.{i}.resnets.{j}", f"output_blocks.{k}.0"))
            t.append(("plain", f"up_blocks.{i}.attentions.{j}", f"output_blocks.{k}.1"))
        if i < n - 1:
            k = i * (lpb + 1) + lpb
            t.append(("plain", f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{k}.{2 if has_attn else 1}.conv"))
    return t


def map_key(key, table, resnet_inner, attn_inner=()):
    for kind, d, l in table:
        if key.startswith(d + "."):
            rest = key[len(d) + 1 :]
            inner = resnet_inner if kind == "resnet" else attn_inner if kind == "attn" else ()
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a) :]
                    break
            return l + "." + rest
    return key  # same name in both layouts


def unet_to_ldm(unet):
    table = unet_prefixes(unet)
    return {
        "model.diffusion_model." + map_key(k, table, RESNET): v.clone().contiguous()
        for k, v in unet.state_dict().items()
    }


def vae_to_ldm(vae):
    n = len(vae.config.block_out_channels)
    lpb = vae.config.layers_per_block
    t = [
        ("plain", "encoder.conv_norm_out", "encoder.norm_out"),
        ("plain", "decoder.conv_norm_out", "decoder.norm_out"),
        ("resnet", "encoder.mid_block.resnets.0", "encoder.mid.block_1"),
        ("resnet", "encoder.mid_block.resnets.1", "encoder.mid.block_2"),
        ("attn", "encoder.mid_block.attentions.0", "encoder.mid.attn_1"),
        ("resnet", "decoder.mid_block.resnets.0", "decoder.mid.block_1"),
        ("resnet", "decoder.mid_block.resnets.1", "decoder.mid.block_2"),
        ("attn", "decoder.mid_block.attentions.0", "decoder.mid.attn_1"),
    ]
    for i in range(n):
        for j in range(lpb):
            t.append(("resnet", f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}"))
        if i < n - 1:
            t.append(("plain", f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv"))
        for j in range(lpb + 1):
            t.append(("resnet", f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{n - 1 - i}.block.{j}"))
        if i < n - 1:
            t.append(("plain", f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{n - 1 - i}.upsample.conv"))
    resnet = [("conv_shortcut", "nin_shortcut")]
    attn = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]
    out = {}
    for k, v in vae.state_dict().items():
        lk = map_key(k, t, resnet, attn)
        if ".mid.attn_1." in lk and lk.endswith("weight") and v.ndim == 2:
            v = v[:, :, None, None]  # linear -> conv 1x1 as in the LDM checkpoints
        out["first_stage_model." + lk] = v.clone().contiguous()
    return out


def clip_to_ldm(te, prefix):
    out = {prefix + k: v.clone().contiguous() for k, v in classic(te.state_dict()).items() if "position_ids" not in k}
    return out


def clip_to_openclip(te, prefix):
    sd = classic(te.state_dict())
    out = {
        prefix + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        prefix + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
        prefix + "ln_final.bias": sd["text_model.final_layer_norm.bias"],
    }
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd["text_projection.weight"].T
    for i in range(te.config.num_hidden_layers):
        d, o = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for dn, on in [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                       ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]:
            for p in ("weight", "bias"):
                out[f"{o}{on}.{p}"] = sd[f"{d}{dn}.{p}"]
        for p in ("weight", "bias"):
            out[f"{o}attn.in_proj_{p}"] = torch.cat([sd[f"{d}self_attn.{q}_proj.{p}"] for q in "qkv"])
    return {k: v.clone().contiguous() for k, v in out.items()}


def assert_same(name, got, want):
    want = {k: v for k, v in want.items() if "position_ids" not in k}
    got = {k: v for k, v in got.items() if "position_ids" not in k}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"{name}: missing {missing[:5]} extra {extra[:5]}"
    for k in want:
        assert torch.equal(got[k].reshape(want[k].shape), want[k]), f"{name}: {k} differs"
    print(f"{name}: diffusers' conversion gives back all {len(want)} tensors")


# ---------------------------------------------------------------- main


def save_diffusers(model, path):
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save_pretrained(path, safe_serialization=True)


RECORDS = {}  # file -> {(component, base key): (up, down, alpha or None)}


def formula(models, loras):
    """W + sum of scale * alpha/rank * up @ down (reshaped), in float64, rounded to f32;
    `models`: component -> state dict (text encoders with `text_model.` names)."""
    out = {}
    for f, scale in loras:
        for (comp, key), (up, down, alpha, mid) in RECORDS[f].items():
            w = out.get((comp, key), models[comp][key].double())
            rank = down.shape[0]
            a = rank if alpha is None else alpha
            if mid is None:
                delta = up.double().flatten(1) @ down.double().flatten(1)
            else:  # Tucker: W[i,j,k,l] = sum_nm mid[n,m,k,l] up[i,n] down[m,j] (as A1111's lyco_helpers)
                delta = torch.einsum("nmkl,in,mj->ijkl", mid.double(), up.double().flatten(1), down.double().flatten(1))
            out[(comp, key)] = w + scale * a / rank * delta.reshape(w.shape)
    return {k: v.float() for k, v in out.items()}


def fused(pipe, loras):
    """The unet / text encoder tensors diffusers' fuse_lora changes for [(file, scale), ...]."""
    base = {("unet", k): v.clone() for k, v in pipe.unet.state_dict().items()}
    base.update({("text_encoder", k): v.clone() for k, v in pipe.text_encoder.state_dict().items()})
    names = []
    for i, (f, _) in enumerate(loras):
        f = "tmp/kohya-ldm-twin.safetensors" if f == "kohya-ldm.safetensors" else f
        pipe.load_lora_weights(os.path.join(FILES, f), adapter_name=f"a{i}")
        names.append(f"a{i}")
    pipe.set_adapters(names, adapter_weights=[s for _, s in loras])
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
    pipe.unload_lora_weights()
    out = {}
    for comp, m in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder)):
        for k, v in m.state_dict().items():
            if not torch.equal(v, base[(comp, k)]):
                out[(comp, k)] = v.clone().contiguous()
            m.state_dict()[k].copy_(base[(comp, k)])  # restore the base for the next case
    for comp, m in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder)):
        for k, v in m.state_dict().items():
            assert torch.equal(v, base[(comp, k)])
    return out


def main():
    torch.manual_seed(0)
    unet = perturb(tiny_unet(), 1)
    te = perturb(tiny_clip(), 2)
    vae = perturb(tiny_vae(), 3)
    save_diffusers(unet, os.path.join(BASE, "unet"))
    save_text_encoder(te, os.path.join(BASE, "text_encoder"))
    save_diffusers(vae, os.path.join(BASE, "vae"))

    # ---- LoRA files
    os.makedirs(FILES, exist_ok=True)
    usd, tsd = unet.state_dict(), classic(te.state_dict())
    table = unet_prefixes(unet)
    ldm_of = lambda k: map_key(k, table, RESNET)  # noqa: E731
    sd, RECORDS["kohya.safetensors"] = make_kohya(usd, tsd, 10)
    save_file(sd, os.path.join(FILES, "kohya.safetensors"))
    sd, RECORDS["kohya-ldm.safetensors"] = make_kohya_ldm(usd, tsd, ldm_of, 11)
    save_file(sd, os.path.join(FILES, "kohya-ldm.safetensors"))
    os.makedirs(os.path.join(FILES, "tmp"), exist_ok=True)
    save_file(make_kohya_ldm(usd, tsd, ldm_of, 11, twin=True)[0], os.path.join(FILES, "tmp/kohya-ldm-twin.safetensors"))
    old_src, rec = make_kohya(usd, tsd, 12)
    old_src = {k: v for k, v in old_src.items() if not k.endswith(".alpha")}
    RECORDS["old.safetensors"] = {k: (u, d, None, None) for k, (u, d, _, _) in rec.items()}
    old, _ = _convert_non_diffusers_lora_to_diffusers(dict(old_src))
    save_file({k: v.contiguous() for k, v in old.items()}, os.path.join(FILES, "old.safetensors"))

    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=te, tokenizer=None, unet=unet, scheduler=DDIMScheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    sd, RECORDS["peft.safetensors"] = make_peft(pipe, 13)
    save_file(sd, os.path.join(FILES, "peft.safetensors"))

    g = torch.Generator().manual_seed(14)
    other = {}
    for name, shape in [("lora_unet_blocks_0_attn_qkv", (16, 48)), ("lora_te_encoder_block_0_mlp_w1", (16, 32))]:
        other[f"{name}.lora_down.weight"] = rnd(g, 4, shape[0])
        other[f"{name}.lora_up.weight"] = rnd(g, shape[1], 4)
        other[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(other, os.path.join(FILES, "other-arch.safetensors"))
    wrong = {}
    kohya_entry(wrong, g, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
                torch.zeros(8, 12), 4, 4.0)
    save_file(wrong, os.path.join(FILES, "wrong-shape.safetensors"))

    # ---- goldens
    cases = {
        "kohya_1": [["kohya.safetensors", 1.0]],
        "kohya_05": [["kohya.safetensors", 0.5]],
        "kohya_ldm": [["kohya-ldm.safetensors", 0.8]],  # golden from tmp/kohya-ldm-twin
        "peft": [["peft.safetensors", 1.0]],
        "old": [["old.safetensors", 0.7]],
        "stacked": [["kohya.safetensors", 0.6], ["peft.safetensors", 0.9]],
    }
    # The goldens are the explicit formula (kohya's convention, which diffusers documents):
    # W + scale * alpha/rank * up @ down, alpha absent = rank. diffusers' own fuse_lora is run on
    # every case as a cross-check: with diffusers 0.42.1 + peft 0.21.2 + transformers 5.24 it
    # agrees wherever a file has no alphas (peft, old: asserted below) but applies kohya
    # `.alpha` values to only some modules (others get one shared alpha), and drops or
    # half-initialises some text-encoder LoRA keys (its log says UNEXPECTED / MISSING).
    golden, agree = {}, {}
    for case, loras in cases.items():
        loras = [tuple(x) for x in loras]
        got = fused(pipe, loras)
        got = {(c, k if c == "unet" else "text_model." + k): v for (c, k), v in got.items()}
        want = formula({"unet": pipe.unet.state_dict(), "text_encoder": classic(pipe.text_encoder.state_dict())}, loras)
        ok = [key for key, v in want.items() if key in got and (got[key] - v).abs().max() <= 1e-5]
        unet_total = sum(c == "unet" for c, _ in want)
        unet_ok = sum(c == "unet" for c, _ in ok)
        agree[case] = {"unet": [unet_ok, unet_total], "text_encoder": [len(ok) - unet_ok, len(want) - unet_total]}
        if case in ("peft", "old"):
            assert unet_ok == unet_total and set(got) <= set(want), (case, agree[case])
        for (comp, k), v in want.items():
            golden[f"{case}.{comp}.{k}"] = v.contiguous()
        print(f"{case}: {len(want)} tensors patched; diffusers agrees on {agree[case]}")
    meta = {"cases": json.dumps(cases), "torch": torch.__version__, "diffusers_agrees": json.dumps(agree)}
    import diffusers, peft  # noqa: E401

    meta.update(diffusers=diffusers.__version__, peft=peft.__version__)
    shutil.rmtree(os.path.join(FILES, "tmp"))

    # ---- single-file checkpoints, and an SDXL kohya LoRA on the SDXL models
    sdxl_golden, sdxl_cases = single_files(unet, te, vae)
    golden.update(sdxl_golden)
    meta["cases_sdxl"] = json.dumps(sdxl_cases)
    save_file(golden, GOLDEN, metadata=meta)
    real_layouts()


def real_layouts():
    """Module names of the real SD 1.5 / SDXL UNet and SD VAE layouts (tiny channels: the names do
    not depend on them), diffusers -> LDM, each round-tripped through diffusers' converter."""
    torch.manual_seed(20)
    sd15 = dict(
        block_out_channels=(4, 8, 8, 8), norm_num_groups=2, attention_head_dim=2, cross_attention_dim=8,
        layers_per_block=2,
    )
    sdxl = dict(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(4, 8, 8), norm_num_groups=2, attention_head_dim=2, cross_attention_dim=8,
        transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, layers_per_block=2,
        addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=28,
    )
    out = {}
    for name, cfg in (("sd15_unet", sd15), ("sdxl_unet", sdxl)):
        u = perturb(UNet2DConditionModel(**cfg), 21)
        ldm = unet_to_ldm(u)
        assert_same(name, sfu.convert_ldm_unet_checkpoint(dict(ldm), dict(u.config)), u.state_dict())
        out[name] = modules(u.state_dict(), unet_prefixes(u), RESNET)
    v = perturb(AutoencoderKL(
        block_out_channels=(4, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, norm_num_groups=2,
    ), 22)
    ldm = vae_to_ldm(v)
    assert_same("sd vae", sfu.convert_ldm_vae_checkpoint(dict(ldm), dict(v.config)), v.state_dict())
    out["sd_vae"] = sorted({(k.rsplit(".", 1)[0], lk[len("first_stage_model."):].rsplit(".", 1)[0])
                            for k, lk in zip(v.state_dict(), ldm)})
    with open(os.path.join(SINGLE, "layouts.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


def modules(sd, table, resnet):
    """Sorted (diffusers module, LDM module) pairs."""
    return sorted({(k.rsplit(".", 1)[0], map_key(k, table, resnet).rsplit(".", 1)[0]) for k in sd})


def single_files(unet, te, vae):
    os.makedirs(SINGLE, exist_ok=True)
    usd = {k: v for k, v in unet.state_dict().items()}
    vsd = vae.state_dict()

    def check_unet(ckpt, model, name):
        got = sfu.convert_ldm_unet_checkpoint(dict(ckpt), dict(model.config))
        assert_same(name + " unet", got, model.state_dict())

    def check_vae(ckpt, name):
        got = sfu.convert_ldm_vae_checkpoint(dict(ckpt), dict(vae.config))
        assert_same(name + " vae", got, vsd)

    # SD 1.x: model.diffusion_model + first_stage_model + cond_stage_model.transformer
    sd1 = {**unet_to_ldm(unet), **vae_to_ldm(vae), **clip_to_ldm(te, "cond_stage_model.transformer.")}
    check_unet(sd1, unet, "sd1")
    check_vae(sd1, "sd1")
    assert_same("sd1 clip", sfu.convert_ldm_clip_checkpoint(dict(sd1)), classic(te.state_dict()))
    save_file(sd1, os.path.join(SINGLE, "sd1.safetensors"))

    # SD 2.x (the SD 1 UNet, no VAE: only the OpenCLIP mapping is new): OpenCLIP text encoder with one more layer than diffusers keeps (penultimate layer)
    te3 = perturb(tiny_clip(layers=3, act="gelu"), 4)
    te2x = tiny_clip(layers=2, act="gelu")
    te2x.load_state_dict({k: v for k, v in te3.state_dict().items() if ".layers.2." not in k})
    sd2 = {**unet_to_ldm(unet), **clip_to_openclip(te3, "cond_stage_model.model.")}
    check_unet(sd2, unet, "sd2")
    got = sfu.convert_open_clip_checkpoint(te3, dict(sd2))
    got = {k: v for k, v in got.items() if ".layers.2." not in k}  # what SD2's 23-of-24 config keeps
    assert_same("sd2 open_clip", got, classic(te2x.state_dict()))
    save_file(sd2, os.path.join(SINGLE, "sd2.safetensors"))
    save_text_encoder(te2x, os.path.join(SINGLE, "sd2/text_encoder"))

    # SDXL (no VAE): conditioner.embedders.0.transformer (CLIP-L) + embedders.1.model (OpenCLIP bigG)
    unetx = perturb(tiny_unet(sdxl=True), 6)
    tex1 = perturb(tiny_clip(), 7)
    tex2 = perturb(tiny_clip(projection=4, act="gelu"), 8)
    sdx = {
        **unet_to_ldm(unetx),
        **clip_to_ldm(tex1, "conditioner.embedders.0.transformer."),
        **clip_to_openclip(tex2, "conditioner.embedders.1.model."),
    }
    check_unet(sdx, unetx, "sdxl")
    got = sfu.convert_ldm_clip_checkpoint(dict(sdx), remove_prefix="conditioner.embedders.0.transformer.")
    assert_same("sdxl clip", got, classic(tex1.state_dict()))
    got = sfu.convert_open_clip_checkpoint(tex2, dict(sdx), prefix="conditioner.embedders.1.model.")
    assert_same("sdxl open_clip", got, classic(tex2.state_dict()))
    save_file(sdx, os.path.join(SINGLE, "sdxl.safetensors"))
    save_diffusers(unetx, os.path.join(SINGLE, "sdxl/unet"))
    save_text_encoder(tex1, os.path.join(SINGLE, "sdxl/text_encoder"))
    save_text_encoder(tex2, os.path.join(SINGLE, "sdxl/text_encoder_2"))

    # kohya SDXL LoRA: sgm/LDM UNet names, lora_te1_ / lora_te2_ (formula golden only)
    g = torch.Generator().manual_seed(30)
    sd, rec = {}, {}
    models = {
        "unet": unetx.state_dict(),
        "text_encoder": classic(tex1.state_dict()),
        "text_encoder_2": classic(tex2.state_dict()),
    }
    table = unet_prefixes(unetx)
    mods = [
        ("unet", "down_blocks.1.attentions.1.transformer_blocks.1.attn1.to_q", 4, 2.0),
        ("unet", "up_blocks.0.attentions.2.transformer_blocks.0.attn2.to_k", 2, None),
        ("unet", "up_blocks.0.upsamplers.0.conv", 2, 1.0),
        ("unet", "add_embedding.linear_1", 4, 4.0),
        ("unet", "time_embedding.linear_2", 2, None),
        ("unet", "conv_in", 2, 2.0),
        ("unet", "down_blocks.1.resnets.0.conv1*", 3, 1.5),  # * = LyCORIS Tucker (lora_mid)
        ("unet", "up_blocks.1.resnets.2.conv2*", 2, None),
        ("text_encoder", "text_model.encoder.layers.0.self_attn.k_proj", 2, 1.0),
        ("text_encoder_2", "text_model.encoder.layers.1.mlp.fc1", 4, 2.0),
        ("text_encoder_2", "text_projection", 2, None),
    ]
    for comp, mod, rank, alpha in mods:
        tucker = mod.endswith("*")
        mod = mod.rstrip("*")
        w = mod + ".weight"
        if comp == "unet":
            name = "lora_unet_" + map_key(w, table, RESNET)[: -len(".weight")].replace(".", "_")
        else:
            name = ("lora_te1_" if comp == "text_encoder" else "lora_te2_") + mod.replace(".", "_")
        kohya_entry(sd, g, name, models[comp][w], rank, alpha, rec, (comp, w), tucker)
    save_file(sd, os.path.join(FILES, "kohya-sdxl.safetensors"))
    RECORDS["kohya-sdxl.safetensors"] = rec
    cases = {"sdxl_kohya": [["kohya-sdxl.safetensors", 0.9]]}
    golden = {}
    for case, loras in cases.items():
        for (comp, k), v in formula(models, [tuple(x) for x in loras]).items():
            golden[f"{case}.{comp}.{k}"] = v.contiguous()
    return golden, cases


if __name__ == "__main__":
    main()
