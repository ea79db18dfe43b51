"""Export a trained dynamic-graph network as a model package the engine loads (issue 3, item 5).

A package folder holds:
  inference.json + inference.pdiparams   Paddle 3 static graph (PIR), for Paddle Inference
  inference.pdmodel (+ the same params)  the legacy ProgramDesc graph, for Paddle < 3 and old tools
  model.onnx                             ONNX (paddle2onnx, opset >= 13), for ONNX Runtime
  model.json                             the manifest, with the sha256 of every weight file

    manifest = export_model(net, "out/my_model", manifest, patch_shape=(64, 64, 64))
    manifest["export"]["parity_max_abs_diff"]   # {"paddle": ..., "paddle_legacy": ..., "onnx": ...}
"""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
PREFIX = "inference"
ONNX_FILE = "model.onnx"
DEFAULT_INPUTS = [
    {"name": "image", "channels": ["image"]},
    {"name": "clicks", "channels": ["previous_mask", "positive_clicks", "negative_clicks"]},
]
DEFAULT_OUTPUT = {"name": "logits", "meaning": "foreground logit per voxel; sigmoid then threshold"}


class ExportError(RuntimeError):
    """An export step failed or the exported graphs disagree with the network."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_specs(inputs, patch_shape):
    """InputSpecs with batch 1; a None in patch_shape leaves that axis dynamic (-1)."""
    import paddle

    return [paddle.static.InputSpec([1, len(spec["channels"]), *patch_shape], "float32", spec["name"]) for spec in inputs]


def save_pir(layer, prefix: Path, specs) -> None:
    """Paddle 3 static graph: <prefix>.json + <prefix>.pdiparams."""
    import paddle

    with paddle.pir_utils.IrGuard():
        paddle.jit.save(layer, str(prefix), input_spec=specs)


def save_legacy(layer, prefix: Path, specs) -> None:
    """Legacy ProgramDesc graph: <prefix>.pdmodel + <prefix>.pdiparams (what Paddle 2.x and the original wrote)."""
    import paddle

    with paddle.pir_utils.OldIrGuard():
        paddle.jit.save(layer, str(prefix), input_spec=specs)
    info = Path(str(prefix) + ".pdiparams.info")  # only needed to resume training from a jit save
    info.unlink(missing_ok=True)


def export_legacy_pair(layer, prefix, input_shapes) -> tuple[Path, Path]:
    """Write <prefix>.pdmodel + <prefix>.pdiparams for inputs of the given shapes (None = dynamic axis)."""
    import paddle

    specs = [paddle.static.InputSpec(list(shape), "float32", name) for name, shape in input_shapes]
    layer.eval()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    save_legacy(layer, prefix, specs)
    return Path(str(prefix) + ".pdmodel"), Path(str(prefix) + ".pdiparams")


def to_onnx(graph: Path, params: Path, out: Path, opset: int = 13) -> None:
    """paddle2onnx without its optimiser (its default, polygraphy, pip-installs packages at run time)."""
    import onnx
    import paddle2onnx

    out.unlink(missing_ok=True)
    try:
        paddle2onnx.export(str(graph), str(params), str(out), opset_version=opset, auto_upgrade_opset=True,
                           enable_onnx_checker=True, optimize_tool="None")
    except Exception as error:  # paddle2onnx logs its own failure then fails on an unbound name
        raise ExportError(f"{out}: paddle2onnx failed: {error}") from error
    if not out.is_file():
        raise ExportError(f"{out}: paddle2onnx wrote nothing (see its log above)")
    model = onnx.load(str(out))
    if fix_leaky_relu_alpha(model, graph):
        onnx.save(model, str(out))
    onnx.checker.check_model(model)
    version = max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))
    if version < 13:
        raise ExportError(f"{out}: opset {version} < 13")


def fix_leaky_relu_alpha(model, graph: Path) -> bool:
    """Restore LeakyRelu slopes paddle2onnx 2.1 garbles (it reads Paddle 3.3's float64 negative_slope as float32).

    The PIR program's leaky_relu ops and the ONNX LeakyRelu nodes come in the same order; the parity check
    afterwards proves the result. Returns whether anything changed.
    """
    if graph.suffix != ".json":
        return False
    slopes = [attr["AT"]["D"] for op in pir_ops(json.loads(graph.read_text(encoding="utf-8")))
              if op.get("#", "").split(".", 1)[-1] in ("leaky_relu", "leaky_relu_")
              for attr in op.get("A", []) if attr.get("N") == "negative_slope"]
    nodes = [node for node in model.graph.node if node.op_type == "LeakyRelu"]
    if len(nodes) != len(slopes):
        return False
    changed = False
    for node, slope in zip(nodes, slopes):
        for attr in node.attribute:
            if attr.name == "alpha" and attr.f != np.float32(slope):
                attr.f, changed = float(slope), True
    return changed


def pir_ops(tree):
    """Every op dict of a PIR JSON program, in program order."""
    if isinstance(tree, dict):
        if "#" in tree and "A" in tree:
            yield tree
        for value in tree.values():
            yield from pir_ops(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from pir_ops(value)


def export_model(layer, out_dir, manifest: dict, patch_shape, formats=("paddle", "paddle_legacy", "onnx"),
                 opset: int = 13, parity: bool = True, tolerance: float = 1e-4) -> dict:
    """Export `layer` (image (1,C0,*patch), clicks (1,C1,*patch) -> logits (1,1,*patch)) into `out_dir`.

    `manifest` gives name, description, spacing policy, normalisation, ...; this fills in format_version,
    inputs/output (defaults above unless given), patch_shape, files and sha256, writes model.json and returns it.
    With parity=True the exported graphs are run against the dynamic graph and an ExportError is raised when a
    max abs difference exceeds `tolerance`; the differences are recorded under manifest["export"].
    """
    unknown = set(formats) - {"paddle", "paddle_legacy", "onnx"}
    if unknown or not formats:
        raise ExportError(f"unknown export formats {sorted(unknown)}; use paddle, paddle_legacy, onnx")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = copy.deepcopy(manifest)
    manifest.setdefault("inputs", copy.deepcopy(DEFAULT_INPUTS))
    manifest.setdefault("output", dict(DEFAULT_OUTPUT))
    manifest["format_version"] = FORMAT_VERSION
    manifest["patch_shape"] = [int(s) for s in patch_shape]
    specs = input_specs(manifest["inputs"], manifest["patch_shape"])
    layer.eval()
    files = write_graphs(layer, out, specs, formats, opset)
    manifest["files"] = files
    manifest["sha256"] = {name: sha256_file(out / name) for name in sorted(weight_files(files))}
    if parity:
        diffs, scaled = parity_check(layer, out, manifest)
        manifest.setdefault("export", {}).update(parity_max_abs_diff=diffs, parity_max_scaled_diff=scaled)
        worst = max(scaled.values())
        if not worst <= tolerance:
            raise ExportError(f"{out}: exported graphs differ from the network by {worst:.3g} > {tolerance} "
                              f"(abs diff over max(1, |logit|)): {scaled}")
    write_manifest(out, manifest)
    return manifest


def write_graphs(layer, out: Path, specs, formats, opset: int) -> dict:
    """Write the requested graph files and return the manifest's "files" entry."""
    files = {}
    with tempfile.TemporaryDirectory(prefix="eiseg_export_") as tmp:
        pir = Path(tmp) / "pir" / PREFIX
        save_pir(layer, pir, specs)
        pir_graph, pir_params = pir.with_suffix(".json"), pir.with_suffix(".pdiparams")
        if "onnx" in formats:
            to_onnx(pir_graph, pir_params, out / ONNX_FILE, opset)
            files["onnx"] = ONNX_FILE
        if "paddle" in formats:
            shutil.copyfile(pir_graph, out / f"{PREFIX}.json")
            shutil.copyfile(pir_params, out / f"{PREFIX}.pdiparams")
            files["paddle"] = {"graph": f"{PREFIX}.json", "params": f"{PREFIX}.pdiparams"}
        if "paddle_legacy" in formats:
            files["paddle_legacy"] = write_legacy(layer, out, Path(tmp), specs, pir_params if "paddle" in formats else None)
    return files


def write_legacy(layer, out: Path, tmp: Path, specs, shared_params) -> dict:
    """Legacy pair; it shares inference.pdiparams with the PIR graph when the bytes are identical."""
    legacy = tmp / "legacy" / PREFIX
    save_legacy(layer, legacy, specs)
    graph, params = legacy.with_suffix(".pdmodel"), legacy.with_suffix(".pdiparams")
    shutil.copyfile(graph, out / f"{PREFIX}.pdmodel")
    if shared_params is not None and params.read_bytes() == Path(shared_params).read_bytes():
        return {"graph": f"{PREFIX}.pdmodel", "params": f"{PREFIX}.pdiparams"}
    name = f"{PREFIX}_legacy.pdiparams" if shared_params is not None else f"{PREFIX}.pdiparams"
    shutil.copyfile(params, out / name)
    return {"graph": f"{PREFIX}.pdmodel", "params": name}


def weight_files(files: dict) -> set[str]:
    names = set()
    for entry in files.values():
        names.update(entry.values() if isinstance(entry, dict) else [entry])
    return names


def write_manifest(out: Path, manifest: dict) -> Path:
    path = out / "model.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def parity_inputs(manifest: dict, seed: int = 0):
    """A realistic random pair: z-scored image, soft previous mask, sparse click balls."""
    rng = np.random.default_rng(seed)
    patch = manifest["patch_shape"]
    image = rng.standard_normal((1, len(manifest["inputs"][0]["channels"]), *patch)).astype(np.float32)
    clicks = (rng.random((1, len(manifest["inputs"][1]["channels"]), *patch)) > 0.98).astype(np.float32)
    clicks[:, 0] = rng.random(patch).astype(np.float32)
    return image, clicks


def parity_check(layer, out_dir, manifest: dict, seed: int = 0) -> tuple[dict, dict]:
    """Per exported graph, vs the dynamic graph on one random input pair: the max abs difference of the logits,
    and the max of that difference over max(1, |logit|), the one checked. A trained network gives logits of
    several hundred far from the object, where float32 itself steps by 3e-5 to 6e-5, so an absolute 1e-4 there
    is two rounding steps (step 4,863 of cpu-universal-v3: 1.1e-4), not a wrong graph."""
    import paddle

    out = Path(out_dir)
    image, clicks = parity_inputs(manifest, seed)
    layer.eval()
    with paddle.no_grad():
        reference = layer(paddle.to_tensor(image), paddle.to_tensor(clicks)).numpy()
    diffs, scaled = {}, {}
    for fmt, entry in manifest["files"].items():
        if fmt == "onnx":
            result = run_onnx(out / entry, image, clicks)
        else:
            result = run_paddle_inference(out / entry["graph"], out / entry["params"], image, clicks)
        if result.shape != reference.shape:
            raise ExportError(f"{out}: {fmt} graph gives shape {result.shape}, the network {reference.shape}")
        diffs[fmt] = float(np.abs(result - reference).max())
        scaled[fmt] = scaled_difference(result, reference)
    return diffs, scaled


def scaled_difference(result: np.ndarray, reference: np.ndarray) -> float:
    """The parity measure: largest |difference| over max(1, |reference logit|). float32 rounding grows with the
    logit, so a confident network's large logits differ by more than 1e-4 in absolute terms between runtimes."""
    return float((np.abs(result - reference) / np.maximum(np.abs(reference), 1.0)).max())


def run_paddle_inference(graph: Path, params: Path, image, clicks, threads: int = 1) -> np.ndarray:
    """One CPU run through Paddle Inference with oneDNN, inputs by position."""
    import paddle.inference as pi

    config = pi.Config(str(graph), str(params))
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    for name, array in zip(predictor.get_input_names(), (image, clicks)):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(array.shape))
        handle.copy_from_cpu(np.ascontiguousarray(array))
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def run_onnx(path: Path, image, clicks, threads: int = 1) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {names[0]: image, names[1]: clicks})[0]
