"""Reduced-precision generator graphs, written beside the fp32 `model.onnx` of a bundle on request.

Why: on CPUs with int8 matrix units (AVX512-VNNI, AMX) ONNX Runtime's int8 GEMMs run about ten
times the fp32 ones, and the generator's GEMMs are most of a bulk row's compute (bench/RESULTS.md,
issue 6). int8 dynamic quantization (per-channel int8 weights, activations quantized per batch)
needs no calibration data. Only the generator network's own GEMMs are quantized: the decoder
(quantile maps, category picks, missing-value flags) stays fp32, so decoded values keep its exact
rules. Opt-in: fp32 stays every bundle's default (bench/bulk_lowp.py measures speed and loss).

Torch-free: it reads and writes ONNX files and the card, so it also works on an exported bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gen_factory.card import PRECISIONS, ModelCard, read_card, write_card

GENERATOR_PREFIX = "generator."  # the generator network's weights in GeneratorGraph's export


def precision_file(precision: str) -> str:
    return f"generator.{precision}.onnx"


def gemms(model) -> tuple[list[str], list[str]]:
    """Names of the Gemm/MatMul nodes whose weight is the generator network's, and of the others
    (the decoder's small matrices, which stay fp32)."""
    weights = {t.name for t in model.graph.initializer if t.name.startswith(GENERATOR_PREFIX)}
    mine, others = [], []
    for node in model.graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            (mine if len(node.input) > 1 and node.input[1] in weights else others).append(node.name)
    return mine, others


def quantize_int8(src: Path, dst: Path) -> list[str]:
    """Write `src` with its generator GEMMs int8-quantized to `dst`; return the quantized nodes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    del model.graph.value_info[:]  # the exporter's intermediate shapes trip the quantizer's shape inference
    nodes, others = gemms(model)
    if not nodes:
        raise ValueError(f"{src}: no generator Gemm/MatMul to quantize")
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # it warns that no pre-processing ran: none is needed
    try:
        # By exclusion: the quantizer renames the Gemm nodes it turns into MatMul + Add.
        quantize_dynamic(model, dst, op_types_to_quantize=["Gemm", "MatMul"], nodes_to_exclude=others,
                         per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return nodes


def add_precision(bundle_dir: Path, precision: str = "int8") -> ModelCard:
    """Write the bundle's generator in `precision` beside the fp32 one and list it on the card."""
    if precision not in PRECISIONS or precision == "fp32":
        raise ValueError(f"reduced precision {precision!r}: choose one of {PRECISIONS[1:]}")
    bundle_dir = Path(bundle_dir)
    card = read_card(bundle_dir)
    name = precision_file(precision)
    quantize_int8(bundle_dir / card.files.generator, bundle_dir / name)
    files = card.files.model_copy(update={"precisions": {**(card.files.precisions or {}), precision: name}})
    card = card.model_copy(update={"files": files})
    write_card(bundle_dir, card)
    return card
