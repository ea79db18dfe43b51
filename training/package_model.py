"""Turn trained weights into a model package the engine loads (Paddle 3 + legacy graph, ONNX, manifest).

    python -m training.package_model --config training/configs/gpu.json --weights runs/gpu/paddle_weights.npz \
        --out EISegMed3D/Resources/Models/eiseg-vnet-universal --training-note training/runs_note.json --default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .export import export_model
from .network import build_network, load_weights, parameter_count
from .train import ROOT, load_config

MODELS = ROOT / "EISegMed3D" / "Resources" / "Models"


def package(config: dict, weights: Path, out: Path, name: str, description: str, training: dict, **export) -> dict:
    """Export `weights` with the config's network and manifest; `export` goes to export_model (e.g. formats)."""
    net = build_network(config)
    load_weights(net, weights)
    net.eval()
    manifest = json.loads(Path(config["manifest"]).read_text(encoding="utf-8"))
    manifest.update(name=name, description=description,
                    network={"class": "training.network.InteractiveVNet", **config.get("network", {}),
                             "parameters": parameter_count(net)},
                    training=training)
    return export_model(net, out, manifest, manifest["patch_shape"], **export)


def set_validation(package_dir: Path, validation: dict) -> None:
    """Record validation metrics in an exported package's manifest (weights and their hashes unchanged)."""
    path = Path(package_dir) / "model.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["validation"] = validation
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Export trained weights as a model package.")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--weights", required=True, type=Path, help=".pdparams checkpoint or .npz from the PyTorch twin")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", default="eiseg-vnet-universal")
    parser.add_argument("--description", default="Class-agnostic interactive 3D segmentation (CT and MRI): "
                                                  "positive/negative clicks and an optional previous mask to one object.")
    parser.add_argument("--training-note", type=Path, help="JSON file with the training summary to put in the manifest")
    parser.add_argument("--default", action="store_true", help="make this the bundled default model")
    args = parser.parse_args(argv)
    training = json.loads(args.training_note.read_text(encoding="utf-8")) if args.training_note else {}
    manifest = package(load_config(args.config), args.weights, args.out, args.name, args.description, training)
    print(json.dumps(manifest.get("export", {}), indent=1))
    if args.default:
        (MODELS / "DEFAULT").write_text(args.out.name + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
