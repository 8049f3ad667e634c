"""Convert dlib's face-descriptor ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

    python tools/dlib_descriptor_to_onnx.py SRC.dat src/emolens/weights/dlib_face_descriptor.onnx \
        [--weights float16|float32] [--check PICTURE ...]

Reads dlib's binary serialization with numpy (no dlib build), checks every layer against
the network dlib's Python API declares (``tools/python/src/face_recognition.cpp``), and
writes the same network as an ONNX graph. Needs the ``onnx`` package (the ``[train]``
extra); emolens itself only loads the result (``emolens.people.persons.FaceDescriber``).

The graph takes ``chip`` ``(N, 150, 150, 3)`` uint8 RGB (what ``dlib.get_face_chip``
returns) and gives ``descriptor`` ``(N, 128)`` float32. What it computes, as dlib does:

- input: ``(pixel - channel mean) / 256``, the means stored in the file;
- ``con`` (with its bias) then ``affine`` (the batch norm frozen for inference): one ONNX
  ``Conv`` whose weights and bias carry the per-channel scale and shift (folded here in
  float64); padding as stored (0 for stride 2, ``k // 2`` for stride 1);
- ``max_pool`` / ``avg_pool``: windows clipped at the border, so a max over the real
  pixels only and a mean that counts them only (ONNX's ``MaxPool`` and ``AveragePool``
  with ``count_include_pad=0``); ``avg_pool_everything`` is ``GlobalAveragePool``;
- ``add_prev`` of two tensors of different shapes gives the larger shape, each one
  zero-padded at its end (more channels; rows and columns at the bottom and right).
  This happens in every down-sampling block: 32 -> 64, 64 -> 128, 128 -> 256 channels,
  and 3x3 + 4x4 -> 4x4, 1x1 + 2x2 -> 2x2 pixels (a stride-2 3x3 convolution without
  padding and a 2x2 average pool disagree on even sizes);
- ``fc_no_bias``: ``MatMul`` by the ``(256, 128)`` weight; the descriptor is its output
  as is (``loss_metric`` does not normalise it).

``--weights float16`` (the default) stores the convolution and fc weights in float16 with
a ``Cast`` back to float32, as ``emolens export`` does (``emolens.training.export.store_weights``).
``--check`` then runs dlib and the ONNX model on the faces of the pictures given and prints
the largest differences (the shipped file's are in its model card).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128
OPSET = 17


class DlibFormatError(ValueError):
    """The file is not the network this converter knows, or not dlib's serialization."""


# ---------------------------------------------------------------- dlib's serialization (dlib/serialize.h)

class DlibReader:
    """Reads the primitives of ``dlib::serialize`` from a byte string."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise DlibFormatError(f"unexpected end of file at offset {self.pos} ({size} bytes wanted)")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise DlibFormatError("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def integer(self) -> int:
        """An integer: a control byte (0x80: negative; low 4 bits: byte count), then little-endian bytes."""
        control = self.byte()
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {self.pos - 1}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def floating(self) -> float:
        """A float as dlib's ``float_details``: int64 mantissa and int16 exponent, mantissa * 2**exponent."""
        mantissa, exponent = self.integer(), self.integer()
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        return special[exponent] if exponent in special else math.ldexp(mantissa, exponent)

    def boolean(self) -> bool:
        ch = chr(self.byte())
        if ch not in "01":
            raise DlibFormatError(f"bad bool {ch!r} at offset {self.pos - 1}")
        return ch == "1"

    def string(self) -> str:
        size = self.integer()
        return self.take(size).decode("latin-1")

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: version 2, num_samples, k, nr, nc, then little-endian float32 values."""
        self.expect_version(2, "tensor")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: version 1 and the four sizes (a view into the layer's params)."""
        self.expect_version(1, "alias_tensor")
        return tuple(self.integer() for _ in range(4))

    def expect_version(self, allowed, what: str) -> int:
        version = self.integer()
        if version not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            raise DlibFormatError(f"{what}: version {version} at offset {self.pos}, expected {allowed}")
        return version

    def expect_name(self, allowed: tuple[str, ...], what: str) -> str:
        name = self.string()
        if name not in allowed:
            raise DlibFormatError(f"{what}: found {name!r}, expected one of {allowed}")
        return name


# ---------------------------------------------------------------- the network dlib declares

@dataclass
class Layer:
    """One ``add_layer`` (kind: con, affine, relu, add_prev, avg_pool, max_pool, fc) or a
    ``tag`` / ``skip`` marker, in the order data flows (input to output)."""

    kind: str
    tag: int = 0                  # tag / skip / add_prev: which tag
    filters: int = 0              # con: output channels; fc: outputs
    size: int = 0                 # con / pools: window (0: the whole input)
    stride: int = 1
    values: dict = field(default_factory=dict)   # read from the file


def _block(n: int, stride: int) -> list[Layer]:
    """``block<N,affine,stride>``: con(stride), affine, relu, con(1), affine."""
    return [Layer("con", filters=n, size=3, stride=stride), Layer("affine"), Layer("relu"),
            Layer("con", filters=n, size=3, stride=1), Layer("affine")]


def _ares(n: int) -> list[Layer]:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``."""
    return [Layer("tag", tag=1), *_block(n, 1), Layer("add_prev", tag=1), Layer("relu")]


def _ares_down(n: int) -> list[Layer]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``."""
    return [Layer("tag", tag=1), *_block(n, 2), Layer("tag", tag=2), Layer("skip", tag=1),
            Layer("avg_pool", size=2, stride=2), Layer("add_prev", tag=2), Layer("relu")]


def descriptor_network() -> list[Layer]:
    """dlib's ``anet_type`` (face_recognition.cpp), input to output, without the input and loss layers."""
    layers = [Layer("con", filters=32, size=7, stride=2), Layer("affine"), Layer("relu"),
              Layer("max_pool", size=3, stride=2)]
    # alevel4 .. alevel0: (channels, blocks from the input side; d = ares_down, r = ares)
    for n, kinds in ((32, "rrr"), (64, "drrr"), (128, "drr"), (256, "drr"), (256, "d")):
        for k in kinds:
            layers += _ares_down(n) if k == "d" else _ares(n)
    layers += [Layer("avg_pool", size=0, stride=1), Layer("fc", filters=DESCRIPTOR_SIZE)]
    return layers


LAYER_NAMES = {"con": ("con_4", "con_5", "con_6"), "affine": ("affine_", "affine_2"),
               "relu": ("relu_", "relu_2"), "add_prev": ("add_prev_",), "avg_pool": ("avg_pool_2",),
               "max_pool": ("max_pool_2",), "fc": ("fc_2", "fc_3")}


def _read_details(reader: DlibReader, layer: Layer) -> None:
    """A layer's own fields (its ``serialize`` in dlib/dnn/layers.h), checked against the declared network."""
    name = reader.expect_name(LAYER_NAMES[layer.kind], layer.kind)
    v = layer.values
    if layer.kind == "con":
        params = reader.tensor().ravel()
        filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(7))
        w_shape, b_shape = reader.alias_tensor(), reader.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.floating()
        use_bias = reader.boolean() if name in ("con_5", "con_6") else True
        use_relu = reader.boolean() if name == "con_6" else False
        if (filters, nr, nc, stride_y, stride_x) != (layer.filters, layer.size, layer.size, layer.stride, layer.stride):
            raise DlibFormatError(f"con: {filters} filters {nr}x{nc} stride {stride_y}x{stride_x}, expected "
                                  f"{layer.filters} {layer.size}x{layer.size} stride {layer.stride}")
        n_w = int(np.prod(w_shape))
        v["weight"] = params[:n_w].reshape(w_shape)
        v["bias"] = params[n_w:n_w + filters] if use_bias else np.zeros(filters, np.float32)
        if use_bias and int(np.prod(b_shape)) != filters or params.size != n_w + (filters if use_bias else 0):
            raise DlibFormatError(f"con: {params.size} parameters do not fit filters {w_shape} and biases {b_shape}")
        v["pads"] = (pad_y, pad_x)
        v["relu"] = use_relu
    elif layer.kind == "affine":
        params = reader.tensor().ravel()
        gamma_shape, beta_shape = reader.alias_tensor(), reader.alias_tensor()
        mode = reader.integer()
        disabled = reader.boolean() if name == "affine_2" else False
        if mode != 0 or gamma_shape != beta_shape or gamma_shape[0] != 1 or gamma_shape[2:] != (1, 1):
            raise DlibFormatError(f"affine: mode {mode}, gamma {gamma_shape}, beta {beta_shape}: expected the "
                                  "per-channel (CONV_MODE) affine layer")
        k = gamma_shape[1]
        if disabled:  # a disabled affine layer passes its input on
            v["gamma"], v["beta"] = np.ones(k, np.float32), np.zeros(k, np.float32)
        else:
            v["gamma"], v["beta"] = params[:k], params[k:2 * k]
    elif layer.kind == "relu":
        if name == "relu_2" and reader.boolean():
            layer.kind = "identity"  # a disabled relu passes its input on
    elif layer.kind in ("avg_pool", "max_pool"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
        if (nr, nc, stride_y, stride_x) != (layer.size, layer.size, layer.stride, layer.stride):
            raise DlibFormatError(f"{layer.kind}: {nr}x{nc} stride {stride_y}x{stride_x}, expected "
                                  f"{layer.size}x{layer.size} stride {layer.stride}")
        v["pads"] = (pad_y, pad_x)
    elif layer.kind == "fc":
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor().ravel()
        w_shape, _ = reader.alias_tensor(), reader.alias_tensor()
        bias_mode = reader.integer()
        for _ in range(4):
            reader.floating()
        if name == "fc_3":
            reader.boolean()
        if outputs != layer.filters or bias_mode != 1 or w_shape[:2] != (inputs, outputs):
            raise DlibFormatError(f"fc: {inputs} -> {outputs} (bias mode {bias_mode}), expected -> {layer.filters} "
                                  "without bias (fc_no_bias)")
        v["weight"] = params[:inputs * outputs].reshape(inputs, outputs)


def read_descriptor_network(data: bytes) -> tuple[np.ndarray, list[Layer]]:
    """The input layer's channel means and the layers (input to output) with their weights.

    dlib writes a network from the loss layer inwards: each ``add_layer`` writes its version
    and then its whole sub-network before its own fields, so the file holds the loss, one
    version number per wrapper (outermost first), the input layer, and then the layers'
    fields from the input outwards. ``tag`` and ``skip`` wrappers write only a version.
    """
    reader = DlibReader(data)
    layers = descriptor_network()
    reader.expect_version(1, "add_loss_layer")
    if reader.expect_name(("loss_metric_", "loss_metric_2"), "loss layer") == "loss_metric_2":
        reader.floating(), reader.floating()  # margin, distance threshold (training only)
    versions = [reader.integer() for _ in reversed(layers)]
    versions.reverse()  # versions[i] belongs to layers[i]
    for layer, version in zip(layers, versions):
        ok = (1, 2) if layer.kind not in ("tag", "skip") else (1,)
        if layer is layers[0]:
            ok = (2, 3)   # the add_layer on the input layer
        if version not in ok:
            raise DlibFormatError(f"{layer.kind}: wrapper version {version}, expected {ok}")
    input_name = reader.expect_name(("input_rgb_image_sized", "input_rgb_image"), "input layer")
    mean = np.array([reader.floating() for _ in range(3)], dtype=np.float32)
    if input_name == "input_rgb_image_sized":
        size = (reader.integer(), reader.integer())
        if size != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"input layer: {size[0]}x{size[1]}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    for i, (layer, version) in enumerate(zip(layers, versions)):
        if layer.kind in ("tag", "skip"):
            continue
        _read_details(reader, layer)
        # add_layer's own state: setup flag, two gradient flags, x_grad, cached_output, then params_grad
        # (version 2), or for the layer on the input: grad_final and (version 3) the sample expansion factor
        reader.boolean(), reader.boolean(), reader.boolean()
        reader.tensor(), reader.tensor()
        if i == 0:
            reader.tensor()
            if version >= 3:
                reader.integer()
        elif version == 2:
            reader.tensor()
    if reader.pos != len(data):
        raise DlibFormatError(f"{len(data) - reader.pos} bytes left after the last layer")
    return mean, layers


# ---------------------------------------------------------------- the ONNX graph

def _fold_affine(con: Layer, affine: Layer) -> tuple[np.ndarray, np.ndarray]:
    """``affine(con(x)) = gamma * (W * x + b) + beta`` as one convolution (float64, then float32)."""
    w = con.values["weight"].astype(np.float64)
    b = con.values["bias"].astype(np.float64)
    gamma = affine.values["gamma"].astype(np.float64)
    beta = affine.values["beta"].astype(np.float64)
    return (w * gamma[:, None, None, None]).astype(np.float32), (b * gamma + beta).astype(np.float32)


def descriptor_graph(mean: np.ndarray, layers: list[Layer]):
    """The ONNX model (float32 weights): ``chip`` (N, 150, 150, 3) uint8 -> ``descriptor`` (N, 128)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    count = {}

    def name(kind: str) -> str:
        count[kind] = count.get(kind, 0) + 1
        return f"{kind}{count[kind]}"

    def const(label: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), label))
        return label

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    # (x - mean) / 256 per RGB channel, NHWC uint8 -> NCHW float32
    x = node("Cast", ["chip"], to=TensorProto.FLOAT)
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    x = node("Sub", [x, const("input_mean", mean.reshape(1, 3, 1, 1))])
    x = node("Mul", [x, const("input_scale", np.array(1 / 256, np.float32))])
    shape = (3, CHIP_SIZE, CHIP_SIZE)   # (channels, rows, cols) of x
    tags: dict[int, tuple[str, tuple]] = {}

    def out_size(n: int, size: int, stride: int, pad: int) -> int:
        return 1 + (n + 2 * pad - size) // stride

    i = 0
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            follower = layers[i + 1]
            if follower.kind != "affine":
                raise DlibFormatError(f"con without affine after it (layer {i})")
            w, b = _fold_affine(layer, follower)
            label = name("conv")
            pad_y, pad_x = layer.values["pads"]
            x = node("Conv", [x, const(label + ".weight", w), const(label + ".bias", b)],
                     kernel_shape=[layer.size, layer.size], strides=[layer.stride, layer.stride],
                     pads=[pad_y, pad_x, pad_y, pad_x])
            if layer.values["relu"]:
                raise DlibFormatError("con with its fused relu enabled before an affine: not in this network")
            shape = (w.shape[0], out_size(shape[1], layer.size, layer.stride, pad_y),
                     out_size(shape[2], layer.size, layer.stride, pad_x))
            i += 2
            continue
        if layer.kind == "relu":
            x = node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool") and layer.size:
            pad_y, pad_x = layer.values["pads"]
            attrs = dict(kernel_shape=[layer.size, layer.size], strides=[layer.stride, layer.stride],
                         pads=[pad_y, pad_x, pad_y, pad_x])
            if layer.kind == "avg_pool":
                attrs["count_include_pad"] = 0
            x = node("MaxPool" if layer.kind == "max_pool" else "AveragePool", [x], **attrs)
            shape = (shape[0], out_size(shape[1], layer.size, layer.stride, pad_y),
                     out_size(shape[2], layer.size, layer.stride, pad_x))
        elif layer.kind == "avg_pool":  # avg_pool_everything
            x = node("GlobalAveragePool", [x])
            shape = (shape[0], 1, 1)
        elif layer.kind == "tag":
            tags[layer.tag] = (x, shape)
        elif layer.kind == "skip":
            x, shape = tags[layer.tag]
        elif layer.kind == "add_prev":
            other, other_shape = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape))
            terms = []
            for t, s in ((x, shape), (other, other_shape)):
                if s != target:  # dlib's tt::add: the smaller tensor is zero beyond its own end
                    grow = [0, 0, 0, 0, 0, target[0] - s[0], target[1] - s[1], target[2] - s[2]]
                    t = node("Pad", [t, const(name("pads"), np.array(grow, np.int64))])
                terms.append(t)
            x = node("Add", terms)
            shape = target
        elif layer.kind == "fc":
            x = node("Flatten", [x], axis=1)
            w = layer.values["weight"]
            if w.shape[0] != int(np.prod(shape)):
                raise DlibFormatError(f"fc takes {w.shape[0]} inputs, the network gives {shape}")
            x = node("MatMul", [x, const("fc.weight", w)])
        elif layer.kind != "identity":
            raise DlibFormatError(f"no ONNX for layer kind {layer.kind}")
        i += 1

    nodes.append(helper.make_node("Identity", [x], ["descriptor"], name="descriptor"))
    graph = helper.make_graph(
        nodes, "dlib_face_descriptor",
        [helper.make_tensor_value_info("chip", TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", DESCRIPTOR_SIZE])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="emolens tools/dlib_descriptor_to_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(source: Path, out: Path, weights: str = "float16") -> None:
    import onnx

    mean, layers = read_descriptor_network(Path(source).read_bytes())
    onnx.save(descriptor_graph(mean, layers), str(out))
    if weights != "float32":
        from emolens.training.export import store_weights  # the [train] extra's one way to store weights

        store_weights(out, weights)


def parity(source: Path, model: Path, pictures: list[Path]) -> dict:
    """dlib's descriptors (``source`` run by dlib) against the ONNX model's, on every face found in
    ``pictures``, each cut by ``FaceDescriber.chip`` as emolens cuts it."""
    import cv2
    import dlib

    from emolens import Recognizer
    from emolens.people.persons import FaceDescriber

    recognizer = Recognizer(threads=1)
    describer = FaceDescriber(threads=1, model=model)
    reference = dlib.face_recognition_model_v1(str(source))
    chips = []
    for picture in pictures:
        image = cv2.imread(str(picture))
        if image is None:
            raise SystemExit(f"{picture}: not a picture")
        chips += [describer.chip(image, f.landmarks) for f in recognizer.analyze(image) if f.landmarks is not None]
    if not chips:
        raise SystemExit("no face with landmarks in the pictures given")
    theirs = np.array([reference.compute_face_descriptor(c) for c in chips], dtype=np.float32)
    ours = np.concatenate([describer.describe_chips(c[None]) for c in chips])
    distance = np.linalg.norm(ours - theirs, axis=1)
    return {"faces": len(chips), "pictures": len(pictures), "max_abs_difference": float(np.abs(ours - theirs).max()),
            "max_distance": float(distance.max()), "mean_distance": float(distance.mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="dlib_face_recognition_resnet_model_v1.dat")
    parser.add_argument("out", type=Path, help="the ONNX file to write")
    parser.add_argument("--weights", choices=("float16", "float32"), default="float16",
                        help="weight storage (float16: half the file, a Cast back to float32 in the graph)")
    parser.add_argument("--check", type=Path, nargs="+", metavar="PICTURE",
                        help="then compare the descriptors with dlib's on the faces of these pictures")
    args = parser.parse_args(argv)
    convert(args.source, args.out, args.weights)
    print(f"{args.source} (sha256 {sha256(args.source)})")
    print(f"-> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {args.weights} weights, sha256 {sha256(args.out)})")
    if args.check:
        r = parity(args.source, args.out, args.check)
        print(f"parity with dlib on {r['faces']} faces of {r['pictures']} pictures: largest difference "
              f"{r['max_abs_difference']:.3g}, distance largest {r['max_distance']:.3g} mean {r['mean_distance']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
