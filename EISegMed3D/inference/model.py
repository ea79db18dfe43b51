"""load_model(): a model package (folder with model.json) or the original's .pdmodel -> a ready Model.

    model = load_model()                                     # bundled default package
    model = load_model("path/to/package", backend="onnx", device="cpu", threads=2)
    model = load_model("eiseg.pdmodel", params_path="eiseg.pdiparams")   # original EISeg-Med3D files
    logits = model.predict(image, clicks)   # (1,1,*patch), (1,C,*patch) float32 -> (1,1,*patch), C per manifest
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from . import manifest as mf
from . import runtimes
from .errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent.parent / "Resources" / "Models"
DEFAULT_POINTER = "DEFAULT"  # optional text file in MODELS_DIR naming the default package folder


class Model:
    """A loaded, validated and warmed-up network. One predict at a time (a lock guards the runtime)."""

    def __init__(self, manifest: dict, runner, backend: str, device: str, threads: int, path: Path):
        self.manifest = manifest
        self.backend = backend
        self.device = device
        self.threads = threads
        self.path = path
        self.name = manifest["name"]
        self.patch_shape = tuple(manifest["patch_shape"])
        self._runner = runner
        self._lock = threading.Lock()
        self._channels = [len(spec["channels"]) for spec in manifest["inputs"]]

    def predict(self, image: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        """Logits (1, 1, *patch) float32 for image (1, 1, *patch) and clicks (1, C, *patch) in the model's axis order."""
        for label, array, channels in (("image", image, self._channels[0]), ("clicks", clicks, self._channels[1])):
            expected = (1, channels, *self.patch_shape)
            if tuple(np.shape(array)) != expected:
                raise ModelError(f"{self.path}: {label} input must have shape {expected}, got {tuple(np.shape(array))}")
        image = np.ascontiguousarray(image, dtype=np.float32)
        clicks = np.ascontiguousarray(clicks, dtype=np.float32)
        with self._lock:
            logits = np.asarray(self._runner.run(image, clicks), dtype=np.float32)
        if logits.shape != (1, 1, *self.patch_shape):
            raise ModelError(f"{self.path}: output has shape {logits.shape}, expected {(1, 1, *self.patch_shape)}")
        return logits

    def describe(self) -> str:
        return f"{self.name} ({self.backend}, {self.device}, {self.threads} threads)"

    def __repr__(self) -> str:
        return f"<Model {self.describe()} patch {self.patch_shape} from {self.path}>"


def load_model(path=None, backend: str = "auto", device: str = "auto", threads=None, params_path=None,
               legacy_grid=mf.LEGACY_GRID) -> Model:
    """Load, validate and warm up a model. Raises ModelError naming the file and the problem."""
    if backend not in ("auto", "paddle", "onnx"):
        raise ModelError(f"backend {backend!r}: use 'auto', 'paddle' or 'onnx'")
    if device not in ("auto", "gpu", "cpu"):
        raise ModelError(f"device {device!r}: use 'auto', 'gpu' or 'cpu'")
    path = default_package() if path is None else Path(path)
    threads = runtimes.default_threads(threads)
    if path.suffix == ".pdmodel":
        model = load_legacy(path, params_path, backend, device, threads, legacy_grid)
    elif path.is_dir():
        model = load_package(path, backend, device, threads)
    elif path.name == mf.MANIFEST_NAME and path.is_file():
        model = load_package(path.parent, backend, device, threads)
    else:
        raise ModelError(f"{path}: not a model package folder (with {mf.MANIFEST_NAME}) nor a .pdmodel file")
    warm_up(model)
    return model


def default_package() -> Path:
    """The bundled default: the folder named in Models/DEFAULT, else the only package in Models/."""
    pointer = MODELS_DIR / DEFAULT_POINTER
    if pointer.is_file():
        return MODELS_DIR / pointer.read_text(encoding="utf-8").strip()
    packages = sorted(p.parent for p in MODELS_DIR.glob(f"*/{mf.MANIFEST_NAME}"))
    if len(packages) != 1:
        raise ModelError(f"{MODELS_DIR}: no single bundled model package ({len(packages)} found; "
                         f"name the default in {pointer.name}) - pass a model path")
    return packages[0]


def load_package(folder: Path, backend: str, device: str, threads: int) -> Model:
    manifest = mf.read_manifest(folder)
    files = manifest["files"]
    backend = choose_backend(folder, files, backend)
    if backend == "onnx":
        needed = [files["onnx"]]
    else:
        entry = paddle_entry(files)
        if not entry:
            raise ModelError(f"{folder / mf.MANIFEST_NAME}: lists no Paddle graph (files.paddle or files.paddle_legacy)")
        needed = [entry["graph"], entry["params"]]
    mf.verify_files(folder, manifest, needed)
    device = choose_device(backend, device, folder)
    if backend == "onnx":
        runner = runtimes.OnnxRunner(folder / needed[0], device, threads)
    else:
        runner = runtimes.PaddleRunner(folder / needed[0], folder / needed[1], device, threads)
    check_graph_inputs(runner, manifest, folder / needed[0])
    return Model(manifest, runner, backend, device, threads, folder)


def choose_backend(folder: Path, files: dict, backend: str) -> str:
    """auto: Paddle Inference when paddle is installed and the package has its Paddle graph, unless only ONNX
    Runtime sees a GPU; else ONNX Runtime. On CPU Paddle Inference (oneDNN) runs the 64^3 network in 100 ms where
    ONNX Runtime takes 128 ms on this project's 2-core Intel machine (BENCHMARKS.md, prompt latency)."""
    has_onnx = "onnx" in files and (folder / files["onnx"]).is_file()
    if backend == "onnx":
        if "onnx" not in files:
            raise ModelError(f"{folder / mf.MANIFEST_NAME}: lists no ONNX file; use backend='paddle' or 'auto'")
        if not has_onnx:
            raise ModelError(f"{folder / files['onnx']}: missing, backend='onnx' needs it; use backend='paddle' or 'auto'")
        if not runtimes.onnxruntime_importable():
            raise ModelError(f"{folder / files['onnx']}: backend='onnx' needs the onnxruntime package, not installed")
        return "onnx"
    if backend == "auto":
        onnx_ok = has_onnx and runtimes.onnxruntime_importable()
        paddle_ok = _has_paddle_graph(folder, files) and runtimes.paddle_importable()
        if paddle_ok and not (onnx_ok and runtimes.onnx_gpu_available() and not runtimes.paddle_gpu_available()):
            return "paddle"
        return "onnx" if onnx_ok else "paddle"
    return backend


def paddle_entry(files: dict) -> dict | None:
    """The package's Paddle graph and params: the Paddle 3 pair, else the legacy one."""
    return files.get("paddle") if "paddle" in files else files.get("paddle_legacy")


def _has_paddle_graph(folder: Path, files: dict) -> bool:
    entry = paddle_entry(files) or {}
    return bool(entry) and all((folder / entry[key]).is_file() for key in ("graph", "params") if key in entry)


def choose_device(backend: str, device: str, where: Path) -> str:
    available = runtimes.onnx_gpu_available() if backend == "onnx" else runtimes.paddle_gpu_available()
    if device == "gpu" and not available:
        what = "onnxruntime has no CUDAExecutionProvider" if backend == "onnx" else \
            "the installed Paddle has no CUDA or no GPU is visible"
        raise ModelError(f"{where}: device='gpu' asked but {what}; use device='cpu' or 'auto'")
    if device == "auto":
        return "gpu" if available else "cpu"
    return device


def check_graph_inputs(runner, manifest: dict, graph: Path) -> None:
    """The graph's declared inputs must match the manifest (a Paddle predictor silently accepts wrong sizes)."""
    shapes = runner.input_shapes()
    if len(shapes) != len(manifest["inputs"]):
        raise ModelError(f"{graph}: graph has {len(shapes)} inputs, the manifest expects {len(manifest['inputs'])} "
                         "(image, clicks)")
    for spec, shape in zip(manifest["inputs"], shapes):
        expected = [1, len(spec["channels"]), *manifest["patch_shape"]]
        if len(shape) != 5:
            raise ModelError(f"{graph}: input {spec['name']!r} has {len(shape)} dimensions, expected 5 (N, C, 3 axes)")
        if shape[1] not in (-1, expected[1]):
            raise ModelError(f"{graph}: input {spec['name']!r} has {shape[1]} channels, the manifest says "
                             f"{expected[1]} {spec['channels']}")
        if any(d not in (-1, e) for d, e in zip(shape[2:], expected[2:])) or shape[0] not in (-1, 1):
            raise ModelError(f"{graph}: input {spec['name']!r} takes shape {shape}, cannot take the patch "
                             f"{expected} (patch_shape {manifest['patch_shape']})")


def load_legacy(graph: Path, params_path, backend: str, device: str, threads: int, grid) -> Model:
    """The original EISeg-Med3D two files, no manifest: run with its I/O contract on Paddle Inference."""
    params = Path(params_path) if params_path is not None else graph.with_suffix(".pdiparams")
    for path in (graph, params):
        if not path.is_file():
            raise ModelError(f"{path}: missing (the legacy profile needs the .pdmodel and its .pdiparams)")
    if backend == "onnx":
        raise ModelError(f"{graph}: a legacy .pdmodel runs on Paddle Inference only; use backend='paddle' or 'auto'")
    mf.check_legacy_grid(grid, graph)
    manifest = mf.legacy_manifest(graph, params, grid)
    manifest["sha256"] = {graph.name: mf.sha256_file(graph), params.name: mf.sha256_file(params)}
    device = choose_device("paddle", device, graph)
    runner = runtimes.PaddleRunner(graph, params, device, threads)
    check_graph_inputs(runner, manifest, graph)
    return Model(manifest, runner, "paddle", device, threads, graph)


def warm_up(model: Model) -> None:
    """One predict on zeros so the first click does not pay for graph optimisation and allocation."""
    patch = model.patch_shape
    image = np.zeros((1, model._channels[0], *patch), np.float32)
    clicks = np.zeros((1, model._channels[1], *patch), np.float32)
    try:
        model.predict(image, clicks)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(f"{model.path}: warm-up inference failed ({runtimes.first_line(error)})") from error
