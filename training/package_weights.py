"""Paddle-named weights (the network's state-dict names) read back out of a model package's ONNX graph, so a
packaged model (the bundled one, or an adapted one) can be trained further without its training run folder.

    python -m training.package_weights EISegMed3D/Resources/Models/eiseg-vnet-universal --out runs/init/bundled.npz

paddle2onnx keeps each parameter as a Constant named after the Paddle layer that made it (conv3d_<n>.w_0,
instance_norm3d_<n>.b_0, conv3d_transpose_<n>.w_0), numbered per layer type in the order the layers were built,
which is the state dict's order (the numbers may start above 0). The result is checked against the package's ONNX output before it is returned.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

import numpy as np


def _layer_kind(name: str) -> str:
    if name.startswith("ups."):
        return "conv3d_transpose"
    return "instance_norm3d" if ".norm." in name else "conv3d"


def package_weights(package: Path, net) -> dict:
    """{state-dict name: array} for `net` (a training.network.InteractiveVNet built like the package's)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(Path(package) / "model.onnx"))
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == "Constant"}
    constants.update({i.name: numpy_helper.to_array(i) for i in model.graph.initializer})
    # The numbers need not start at 0 (a process that built other layers first exports conv3d_12 onwards): the
    # k-th layer of a type is the one with the k-th smallest number of that type.
    numbers = collections.defaultdict(set)
    for key in constants:
        match = re.fullmatch(r"(conv3d_transpose|instance_norm3d|conv3d)_(\d+)\.[wb]_0", key)
        if match:
            numbers[match.group(1)].add(int(match.group(2)))
    numbers = {kind: sorted(found) for kind, found in numbers.items()}
    counters, layer_index, out = collections.Counter(), {}, {}
    for name, value in net.state_dict().items():
        if name == "click_scale":
            raise ValueError(f"{package}: reading weights back is implemented for the concat fusion only")
        module, kind = name.rsplit(".", 1)[0], _layer_kind(name)
        if module not in layer_index:
            layer_index[module] = counters[kind]
            counters[kind] += 1
        found = numbers.get(kind, [])
        number = found[layer_index[module]] if layer_index[module] < len(found) else None
        key = f"{kind}_{number}.{'b_0' if name.endswith('bias') else 'w_0'}"
        if key not in constants or tuple(constants[key].shape) != tuple(value.shape):
            raise ValueError(f"{package}/model.onnx: no parameter {key} of shape {tuple(value.shape)} for {name}")
        out[name] = constants[key].astype(np.float32)
    return out


def check_against_onnx(package: Path, net, manifest: dict, tolerance: float = 1e-4) -> float:
    """The export's parity measure (training.export.scaled_difference) between `net` and the package's ONNX graph
    on a random input."""
    import paddle
    from training.export import parity_inputs, run_onnx, scaled_difference

    image, clicks = parity_inputs(manifest)
    net.eval()
    ours = net(paddle.to_tensor(image), paddle.to_tensor(clicks)).numpy()
    diff = scaled_difference(run_onnx(Path(package) / "model.onnx", image, clicks), ours)
    if diff > tolerance:
        raise ValueError(f"{package}: weights read back differ from the package's ONNX output by {diff:.3g} "
                         f"(|difference| over max(1, |logit|))")
    return diff


def extract(package: Path, out: Path) -> float:
    from training.network import build_network, load_weights

    manifest = json.loads((Path(package) / "model.json").read_text(encoding="utf-8"))
    net = build_network({"network": manifest.get("network", {})})
    weights = package_weights(package, net)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **weights)
    load_weights(net, out)
    return check_against_onnx(package, net, manifest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Read a model package's weights back as a .npz of Paddle names.")
    parser.add_argument("package", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    diff = extract(args.package, args.out)
    print(f"{args.out}: weights of {args.package.name}, ONNX parity {diff:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
