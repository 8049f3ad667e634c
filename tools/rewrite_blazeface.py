"""Rewrite the tflite2onnx BlazeFace graph into one ONNX Runtime runs faster, same outputs.

    python tools/rewrite_blazeface.py IN.onnx src/emolens/faces/models/blazeface_short_range.onnx

Needs the ``onnx`` package (the ``[train]`` extra); emolens itself only loads the result.
Four rewrites, each exact up to float rounding (outputs within 1e-4 of the input graph's):

- grey input: emolens feeds the same grey plane in all three channels, so the first
  convolution's weights are summed over its input channels and the input becomes
  ``(1, 1, 128, 128)`` (a third of that layer's work, and no channel copy);
- channel padding: each BlazeBlock that widens the tensor adds ``Pad(x)`` (zeros appended
  along the channels) to its branch. ONNX Runtime's blocked-channel (NCHWc) kernels have
  no channel Pad, so every one of the 11 cost a layout change out and back. ``Pad(x)`` is
  replaced by the equal 1x1 convolution with an identity-then-zeros weight, which stays in
  the blocked layout and lets the ``Add`` and ``Relu`` fuse into it;
- channel counts: the three stride-2 blocks (28, 42 and 88 channels) run their MaxPool
  (and, at 42, the depthwise convolution) outside the blocked layout, which needs a
  multiple of 16 channels there. Their tensors are widened to 32, 48 and 96 channels with
  all-zero filters: the extra channels are exactly 0 and every consumer ignores them;
- any picture size: the input's height and width (multiples of 16) and the outputs'
  anchor count become symbolic. The graph is convolutional up to its final reshapes
  (``[1, -1, 16]``), so a larger input is one pass over the whole picture with anchors on
  the same 8 and 16 px grids: emolens's small-face pass runs it on a 448 px copy rather
  than in overlapping 128 px tiles (a third of the work for the same area).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def rewrite(model):
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    shapes = onnx.shape_inference.infer_shapes(model).graph
    channels = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in [*shapes.value_info, *shapes.input]}

    # 1. grey input: sum the first convolution's weights over its 3 input channels.
    first = next(n for n in g.node if n.input[0] == g.input[0].name)
    if first.op_type != "Conv":
        raise SystemExit(f"expected a Conv on the input, found {first.op_type}")
    w = numpy_helper.to_array(inits[first.input[1]])
    inits[first.input[1]].CopyFrom(numpy_helper.from_array(w.sum(axis=1, keepdims=True).astype(np.float32),
                                                            first.input[1]))
    g.input[0].type.tensor_type.shape.dim[1].dim_value = 1

    # 2. channel Pad -> 1x1 convolution with an identity-then-zeros weight.
    nodes, unused = [], set()
    for n in g.node:
        if n.op_type != "Pad":
            nodes.append(n)
            continue
        pads = numpy_helper.to_array(inits[n.input[1]]).tolist()
        rank = len(pads) // 2
        if any(p for i, p in enumerate(pads) if i not in (1, rank + 1)) or pads[1] != 0:
            raise SystemExit(f"{n.name}: pads {pads} are not a channel-only padding at the end")
        cin = channels[n.input[0]]
        embed = np.zeros((cin + pads[rank + 1], cin, 1, 1), np.float32)
        embed[np.arange(cin), np.arange(cin)] = 1.0
        name = n.output[0] + "/embed"
        g.initializer.append(numpy_helper.from_array(embed, name))
        nodes.append(helper.make_node("Conv", [n.input[0], name], [n.output[0]], name=n.name + "/as_conv",
                                      kernel_shape=[1, 1]))
        unused.update(n.input[1:])
    del g.node[:]
    g.node.extend(nodes)
    keep = [i for i in g.initializer if i.name not in unused]
    del g.initializer[:]
    g.initializer.extend(keep)

    # 3. widen the tensors that feed a MaxPool to a multiple of 16 channels.
    for pool in [n for n in g.node if n.op_type == "MaxPool"]:
        c = channels[pool.input[0]]
        if c % BLOCK:
            widen(model, pool.input[0], c, -(-c // BLOCK) * BLOCK)
    # 4. any picture size: symbolic height, width and anchor count.
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in g.output:
        out.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del g.value_info[:]  # shapes changed; ONNX Runtime infers them again
    onnx.checker.check_model(model)
    return model


BLOCK = 16  # channels per block of ONNX Runtime's NCHWc layout with AVX-512 (8 with AVX2)


def widen(model, tensor: str, c: int, wide: int) -> None:
    """Give ``tensor`` = Relu(Add(Conv, Conv)) ``wide`` channels, the new ones all zero.

    Its producers get zero filters (and biases) appended; its consumers (a depthwise Conv
    followed by a 1x1 Conv, a MaxPool followed by a Conv, or a Conv) get zero input
    weights for the new channels (the depthwise one, zero filters): every output stays
    the same.
    """
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def get(name):
        return numpy_helper.to_array(inits[name])

    def put(name, a):
        inits[name].CopyFrom(numpy_helper.from_array(a.astype(np.float32), name))

    def pad_axis(a, axis, n):
        shape = list(a.shape)
        shape[axis] = n - a.shape[axis]
        return np.concatenate([a, np.zeros(shape, a.dtype)], axis=axis)

    def widen_outputs(conv):
        put(conv.input[1], pad_axis(get(conv.input[1]), 0, wide))
        if len(conv.input) > 2:
            put(conv.input[2], pad_axis(get(conv.input[2]), 0, wide))

    def widen_inputs(conv):
        if conv.op_type != "Conv" or _group(conv) != 1:
            raise SystemExit(f"{conv.name}: expected a plain Conv after {tensor}")
        put(conv.input[1], pad_axis(get(conv.input[1]), 1, wide))

    relu = producer[tensor]
    add = producer[relu.input[0]]
    if relu.op_type != "Relu" or add.op_type != "Add" or any(producer[i].op_type != "Conv" for i in add.input):
        raise SystemExit(f"{tensor}: expected Relu(Add(Conv, Conv))")
    for i in add.input:
        widen_outputs(producer[i])
    for n in consumers[tensor]:
        if n.op_type == "Conv" and _group(n) == c:  # depthwise
            widen_outputs(n)
            next(a for a in n.attribute if a.name == "group").i = wide
            for after in consumers[n.output[0]]:
                widen_inputs(after)
        elif n.op_type == "MaxPool":
            for after in consumers[n.output[0]]:
                widen_inputs(after)
        elif n.op_type == "Conv" and _group(n) == 1:  # the detection heads read activation_11
            widen_inputs(n)
        else:
            raise SystemExit(f"{tensor}: unexpected consumer {n.op_type} {n.name}")


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="BlazeFace .onnx as tflite2onnx writes it (3-channel input)")
    ap.add_argument("out", help="where to write the rewritten model")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort

    model = rewrite(onnx.load(args.source))
    onnx.save(model, args.out)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 128, 128)).astype(np.float32)
    before = ort.InferenceSession(args.source, providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    ref = before.run(None, {before.get_inputs()[0].name: np.repeat(x, 3, axis=1)})
    new = after.run(None, {after.get_inputs()[0].name: x})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, new))
    wide = after.run(None, {after.get_inputs()[0].name: np.zeros((1, 1, 192, 256), np.float32)})
    anchors = 2 * (192 // 8) * (256 // 8) + 6 * (192 // 16) * (256 // 16)
    print(f"{args.out}: max output difference {diff:.2e}; 256 x 192 input -> {wide[0].shape[1]} anchors")
    return 0 if diff < 1e-3 and wide[0].shape[1] == anchors else 1


if __name__ == "__main__":
    sys.exit(main())
