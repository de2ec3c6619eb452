#!/usr/bin/env python3
"""The 4-bit matmuls of an exported int4 graph, alone: the kernel half of "where an int4 token's time goes".

usage: matmulnbits_only.py MODEL.onnx OUT.onnx [--accuracy-level N]

Writes a graph of every com.microsoft.MatMulNBits node of MODEL.onnx with its own initializers (the same packed
blocks, scales, zero points and attributes), nothing else: each node reads a graph input a_K of shape [1, 1, K]
(one per input width K, a decode step's single row) and writes a graph output. Timed per run by
dev.loraflow.benchmarks.GraphRuns, one run is every 4-bit matmul of one decoded token, without the attention,
norms, KV cache and dispatch of the rest of the step. --accuracy-level rewrites the nodes' accuracy_level (the
CPU kernel's compute type: 4 int8, 0/1 float32) in the copy. Needs the onnx Python package (any 1.x).
"""
import sys

import onnx
from onnx import TensorProto, helper


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--accuracy-level"):
        sys.exit(__doc__.strip().splitlines()[2])
    model = onnx.load(argv[0])  # external data, if any, from beside the model
    accuracy_level = int(argv[3]) if len(argv) == 4 else None
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes, used, widths, outputs = [], [], {}, []
    for node in model.graph.node:
        if node.op_type != "MatMulNBits" or node.domain != "com.microsoft":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, n = attributes["K"], attributes["N"]
        if accuracy_level is not None:
            attributes["accuracy_level"] = accuracy_level
        width = widths.setdefault(k, f"a_{k}")
        weights = [name for name in node.input[1:] if name]
        missing = [name for name in weights if name not in initializers]
        if missing:
            sys.exit(f"{node.name}: inputs {missing} are not initializers; only constant weights can be copied")
        used += [name for name in weights if name not in used]
        output = f"y{len(nodes)}_{n}"
        nodes.append(helper.make_node("MatMulNBits", [width] + list(node.input[1:]), [output],
                                      name=node.name or output, domain="com.microsoft", **attributes))
        outputs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 1, n]))
    if not nodes:
        sys.exit(f"{argv[0]} has no com.microsoft.MatMulNBits node (export it with --quantize int4)")
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, k]) for k, name in widths.items()]
    graph = helper.make_graph(nodes, "matmulnbits_only", inputs, outputs, [initializers[name] for name in used])
    only = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="bench/matmulnbits_only.py")
    only.ir_version = model.ir_version
    onnx.save(only, argv[1])
    weight_bytes = sum(len(initializers[name].raw_data) for name in used)
    print(f"{len(nodes)} MatMulNBits nodes, inputs {sorted(widths)}, {weight_bytes / 1e6:.1f} MB of weights"
          f" -> {argv[1]}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
