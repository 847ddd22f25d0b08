"""Keep a GGUF's own quantization grid: its blocks carried into Core ML and ExecuTorch/XNNPACK, not requantized.

A GGUF source is already quantized (SmolLM2 here: Q4_1). Requantizing its dequantized
weights onto another 4-bit grid rounds every weight a second time: that, not 4 bits as
such, is most of what `--quant 8da4w` costs on such a source. Core ML's
constexpr_blockwise_shift_scale (iOS 18) computes w = scale · (data − offset) per block,
and llama.cpp's simple block formats map onto it exactly:

  Q4_0   w = d · (q − 8)     data uint4 q, scale d, offset 8 (uint4)
  Q4_1   w = d · q + m       data uint4 q, scale d, offset −m/d (float16)
  Q8_0   w = d · q           data int8 q, scale d
(blocks of 32 weights along the input dimension; d and m are float16 in the file.)
Only the Q4_1 offset is rounded (to float16): a weight moves by float16 rounding of its block's
minimum, no more than storing the dequantized weight in float16 would.

Which targets can hold such a grid:
- Core ML (above), every block as it is;
- ExecuTorch/XNNPACK (GridLinear, recipes' `gguf`): its 4-bit kernel (QD8-F32-QB4W) is symmetric, with no
  per-block minimum, but Q4_1 splits exactly into a symmetric block and a per-block constant,
  w = d·q + m = d·(q − 8) + (m + 8d), and the constant's product with x needs only x's sums
  over each block: y = QB4W(x) + offsets @ blocksums(x), two small int8 GEMMs (1/32 of the
  main one's weights; see GridLinear). XNNPACK stores block scales as bfloat16: d is rounded
  to bfloat16 and the offset absorbs the block's mean share of that rounding, so a weight
  moves by |d − bf16(d)|·|q − mean(q)| ≤ 15·2⁻⁸·d: at most 6% of one grid step (requantizing
  to another 4-bit grid moves weights by up to half a step). Q8_0 embeddings keep their
  blocks (int8, group 32); a Q8_0 linear (a tied head) is requantized per channel to 8da8w
  (XNNPACK has no blockwise int8 GEMM).
- LiteRT cannot: its int4 is symmetric per channel or block, with nothing to carry the offset.
K-quants (Q4_K, Q6_K, as in Gemma 3's Q4_K_M) are not carried over yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pocketlm.errors import ConversionError, RecipeError

BLOCK = 32
SUPPORTED = ("Q4_0", "Q4_1", "Q8_0")


@dataclass
class GridWeight:
    gguf_name: str
    gguf_type: str
    data: np.ndarray  # [rows, cols] uint8 codes 0..15 (Q4_*) or int8 (Q8_0)
    scale: np.ndarray  # [rows, cols / 32] float16
    offset: np.ndarray | None  # [rows, cols / 32]: uint8 (Q4_0) or float16 (Q4_1); None for Q8_0
    d: np.ndarray | None = None  # the file's own block scale and minimum (float16; m: Q4_1 only)
    m: np.ndarray | None = None

    def dequantized(self) -> np.ndarray:
        """What Core ML computes from the stored block (float32)."""
        scale = np.repeat(self.scale.astype(np.float32), BLOCK, axis=1)
        data = self.data.astype(np.float32)
        if self.offset is not None:
            data = data - np.repeat(self.offset.astype(np.float32), BLOCK, axis=1)
        return scale * data


def decode(raw: np.ndarray, gguf_type: str, rows: int, cols: int):
    """(codes [rows, cols], d [rows, cols/32] float16, m or None) from a tensor's raw blocks."""
    nb = cols // BLOCK
    size = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}[gguf_type]
    blocks = np.ascontiguousarray(raw).reshape(rows, nb, size)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    if gguf_type == "Q8_0":
        return blocks[..., 2:].copy().view(np.int8).reshape(rows, cols), d, None
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0] if gguf_type == "Q4_1" else None
    qs = blocks[..., 4:] if gguf_type == "Q4_1" else blocks[..., 2:]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # low nibbles: values 0-15; high: 16-31
    return codes.reshape(rows, cols).astype(np.uint8), d, m


def _to_grid(name: str, gguf_type: str, codes, d, m) -> GridWeight:
    if gguf_type == "Q8_0":
        return GridWeight(name, gguf_type, codes, d, None, d)
    if gguf_type == "Q4_0":
        return GridWeight(name, gguf_type, codes, d, np.full(d.shape, 8, np.uint8), d)
    d32, m32 = d.astype(np.float32), m.astype(np.float32)
    zero = d32 == 0  # a constant block: every weight is m (llama.cpp stores codes 0)
    scale = np.where(zero, 1.0, d32)
    offset = np.where(zero, -m32, -m32 / np.where(zero, 1.0, d32))
    return GridWeight(name, gguf_type, codes, scale.astype(np.float16), offset.astype(np.float16), d, m)


def read_grid(gguf_path: str | Path, hf_model) -> dict[str, GridWeight]:
    """Hugging Face parameter name -> its GGUF blocks, for every tensor stored in a supported type.

    Each grid is checked against the weights transformers dequantized from the same file, so a
    wrong name mapping or row order cannot pass silently.
    """
    import gguf
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    reader = gguf.GGUFReader(str(gguf_path))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    to_hf = get_gguf_hf_weights_map(hf_model, TensorProcessor())
    cfg = hf_model.config
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(
        config={"num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads})
    params = dict(hf_model.named_parameters(remove_duplicate=False))
    out = {}
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        hf_name = to_hf.get(tensor.name)
        if kind not in SUPPORTED or hf_name is None or hf_name not in params:
            continue
        cols, rows = (int(x) for x in tensor.shape[:2])
        codes, d, m = decode(tensor.data, kind, rows, cols)
        # transformers reorders some rows on load (llama's q/k rotary layout): the same order here
        order = processor.process(np.arange(rows).reshape(rows, 1), tensor.name).weights.reshape(-1)
        codes, d = codes[order], d[order]
        m = None if m is None else m[order]
        grid = _to_grid(tensor.name, kind, codes, d, m)
        reference = params[hf_name].detach().float().numpy()
        if reference.shape != grid.data.shape:
            raise ConversionError(f"GGUF tensor {tensor.name} {grid.data.shape} does not match {hf_name} "
                                  f"{reference.shape}")
        err = np.abs(grid.dequantized() - reference).max()
        if err > 1e-3 * max(1e-6, float(np.abs(reference).max())):
            raise ConversionError(f"GGUF blocks of {tensor.name} do not reproduce {hf_name} as transformers loaded "
                                  f"it (max |Δ| {err:.3g}); pocketlm does not write a grid it cannot verify")
        out[hf_name] = grid
    return out


def grids_for_consts(gguf_path, hf_model, const_params: dict) -> tuple[dict[str, GridWeight], list[str]]:
    """Program constant name -> grid; and the weight constants with no grid (named, for the error)."""
    grid = read_grid(gguf_path, hf_model)
    # by storage, not identity: the decoder wraps some tensors in parameters of its own (the
    # embedding), and a tied head shares the embedding's storage
    name_of = {p.data_ptr(): n for n, p in hf_model.named_parameters(remove_duplicate=False) if n in grid}
    out, missing = {}, []
    for const, (_, param) in const_params.items():
        hf_name = name_of.get(param.data_ptr())
        if hf_name in grid:
            out[const] = grid[hf_name]
        else:
            missing.append(hf_name or const)
    return out, missing


def apply_to_coreml(model, grids: dict[str, GridWeight]):
    """Replace each weight constant named in `grids` by a constexpr_blockwise_shift_scale of its blocks."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.models.utils import _apply_graph_pass

    class KeepGGUFGrid(AbstractGraphPass):
        def apply(self, prog):
            block = prog.functions["main"]
            with block:
                for op in list(block.operations):
                    if op.op_type != "const" or op.name not in grids:
                        continue
                    g = grids[op.name]
                    four_bit = g.gguf_type.startswith("Q4")
                    data = g.data.astype(types.np_uint4_dtype) if four_bit else g.data
                    offset = g.offset
                    if offset is not None and g.gguf_type == "Q4_0":
                        offset = offset.astype(types.np_uint4_dtype)
                    new = mb.constexpr_blockwise_shift_scale(
                        data=data, scale=g.scale, before_op=op, name=op.name + "_quantized",
                        **({"offset": offset} if offset is not None else {}))
                    block.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=new,
                                                       no_check_var_types=True)
                    block.remove_ops([op])

    return _apply_graph_pass(model, KeepGGUFGrid(), spec_version=model.get_spec().specificationVersion)


def expected_storage(g: GridWeight) -> tuple:
    """(storage, bits, block_size, lut_group_size, sparsity) in coreml_program.WeightInfo's terms."""
    return ("uint4", 4, BLOCK, None, None) if g.gguf_type.startswith("Q4") else ("int8", 8, BLOCK, None, None)


def require_gguf(gguf_path) -> Path:
    if gguf_path is None:
        raise RecipeError("--quant gguf keeps a GGUF source's own blocks: the source must be a .gguf file or a "
                          "named model")
    return Path(gguf_path)


def _bf16(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16).float()


def _intx(qdata: np.ndarray, scale: torch.Tensor, bits: int, activations: bool):
    """torchao's tensor for int`bits` blocks of 32 along the input, zero point 0 — what
    Int8DynamicActivationIntxWeightConfig (activations=True) or IntxWeightOnlyConfig makes, with
    the file's codes and scales instead of ones it chose."""
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import (
        IntxUnpackedToInt8Tensor,
        IntxUnpackedToInt8TensorActivationQuantization,
    )

    act = IntxUnpackedToInt8TensorActivationQuantization.INT8_ASYM_PER_TOKEN if activations else None
    return IntxUnpackedToInt8Tensor(
        qdata=torch.from_numpy(np.ascontiguousarray(qdata, dtype=np.int8)), scale=scale.contiguous(),
        zero_point=torch.zeros(scale.shape, dtype=torch.int8), target_dtype=getattr(torch, f"int{bits}"),
        block_size=(1, BLOCK), dtype=torch.float32, activation_quantization=act)


class GridLinear(nn.Module):
    """y = QB4W(x) + offsets @ blocksums(x): Q4_0 / Q4_1 linears on XNNPACK's symmetric 4-bit
    kernel (8da4w's), with the file's codes.

    Given several linears that read the same input (q, k, v; gate, up) it returns each one's
    output and computes the block sums once. (Stacking their rows into one GEMM would save
    more, but splitting its output needs slices, which XNNPACK does not run on a dynamic
    token count.) The block sums are a GEMM with a 0/1 matrix, exact in int8, which XNNPACK
    runs, where a reshape + sum would leave the delegate."""

    def __init__(self, linears: list[nn.Linear], grids: list[GridWeight]):
        super().__init__()
        for g in grids:
            if not g.gguf_type.startswith("Q4"):
                raise ValueError(f"GridLinear takes Q4_0 / Q4_1 blocks, not {g.gguf_type}")
        if len({lin.in_features for lin in linears}) != 1:
            raise ValueError("GridLinear shares block sums between linears of one input width")
        self.in_features = linears[0].in_features
        self.main = nn.ModuleList()
        offsets = []
        for lin, g in zip(linears, grids, strict=True):
            d_file = g.d.astype(np.float32)
            d = _bf16(d_file)  # XNNPACK stores QB4W scales as bfloat16: round here, so eager == lowered
            main = nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
            main.weight = nn.Parameter(_intx(g.data.astype(np.int8) - 8, d, 4, activations=True), requires_grad=False)
            if lin.bias is not None:
                main.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
            self.main.append(main)
            if g.gguf_type == "Q4_0" and np.array_equal(d.numpy(), d_file):
                offsets.append(None)  # w = d·(q − 8) exactly
                continue
            # w − d'·(q − 8) = (d − d')·q + m + 8d': keep its mean over each block (exact when d' = d)
            m = g.m.astype(np.float32) if g.m is not None else -8 * d_file
            rows, nb = d_file.shape
            mean_q = g.data.reshape(rows, nb, BLOCK).mean(axis=-1, dtype=np.float32)
            offsets.append(torch.from_numpy(np.ascontiguousarray(m + 8 * d.numpy() + (d_file - d.numpy()) * mean_q)))
        self.offsets = nn.ModuleList()  # the offset terms, [nb] -> [out] each (an Identity where exact)
        for o in offsets:
            if o is None:
                self.offsets.append(nn.Identity())
                continue
            lin = nn.Linear(o.shape[1], o.shape[0], bias=False)
            lin.weight = nn.Parameter(o, requires_grad=False)
            self.offsets.append(lin)
        self.block_sum = None
        if any(o is not None for o in offsets):
            ones = torch.zeros(self.in_features // BLOCK, self.in_features)
            ones[torch.arange(self.in_features) // BLOCK, torch.arange(self.in_features)] = 1.0
            self.block_sum = nn.Linear(self.in_features, self.in_features // BLOCK, bias=False)
            self.block_sum.weight = nn.Parameter(ones, requires_grad=False)
        # Both small GEMMs as 8da8w: in float32 their weights were ~40% of the 4-bit ones' bytes,
        # and a decode step is bandwidth-bound. The 0/1 matrix is exact in int8; the sums are
        # over the int8 activations the main GEMM sees; each offset row is rounded to 1/127 of
        # its largest entry (~1% of a grid step).
        from torchao.quantization import quantize_

        from .recipes import LINEAR_SCHEMES, dynamic_activation_config

        small = [m for m in (self.block_sum, *self.offsets) if isinstance(m, nn.Linear)]
        quantize_(self, dynamic_activation_config(LINEAR_SCHEMES["8da8w"](0)),
                  filter_fn=lambda m, fqn: any(m is x for x in small))

    def forward(self, x):
        sums = self.block_sum(x) if self.block_sum is not None else None
        out = []
        for main, offsets in zip(self.main, self.offsets, strict=True):
            y = main(x)
            out.append(y + offsets(sums) if isinstance(offsets, nn.Linear) else y)
        return out[0] if len(out) == 1 else tuple(out)


def grid_embedding_weight(g: GridWeight):
    """Q8_0 / Q4_0 rows as torchao's weight-only tensor (ExecuTorch's quantized embedding kernels,
    groups of 32; their scales stay float32, so the rows are the file's exactly)."""
    d = torch.from_numpy(g.d.astype(np.float32))
    if g.gguf_type == "Q8_0":
        return _intx(g.data, d, 8, activations=False)
    if g.gguf_type == "Q4_0":
        return _intx(g.data.astype(np.int8) - 8, d, 4, activations=False)
    raise RecipeError(f"--quant gguf: an embedding stored as {g.gguf_type} has no ExecuTorch form that keeps "
                      "its blocks (Q8_0 and Q4_0 do)")
