"""The two inference runtimes behind a Model: Paddle Inference and ONNX Runtime.

Each runner takes inputs by position (0 = image, 1 = clicks), reports the graph's declared input shapes
(-1 for a dynamic axis) and holds no global state, so a Model can live on one worker thread.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import ModelError


def import_paddle_inference():
    """paddle.inference, without the "No ccache found" warning Paddle prints on import (it concerns compiling C++
    extensions, which the engine never does, and read as an error to users of the CLI)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle.inference as pi
    return pi


def paddle_gpu_available() -> bool:
    import_paddle_inference()
    import paddle

    try:
        return bool(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0)
    except Exception:  # a CUDA build without a driver raises here: no GPU then
        return False


def onnx_gpu_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def onnxruntime_importable() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def paddle_importable() -> bool:
    """Without importing it (seconds): whether a paddle package is installed."""
    import importlib.util

    return importlib.util.find_spec("paddle") is not None


def first_line(error: Exception) -> str:
    """Paddle's C++ errors run over many lines; the first says what went wrong."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def default_threads(threads) -> int:
    return int(threads) if threads else (os.cpu_count() or 1)


class PaddleRunner:
    """Paddle Inference predictor: GPU, or CPU with oneDNN and a set number of math threads."""

    def __init__(self, graph: Path, params: Path, device: str, threads: int):
        pi = import_paddle_inference()

        config = pi.Config(str(graph), str(params))
        if device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            (config.enable_onednn if hasattr(config, "enable_onednn") else config.enable_mkldnn)()
            config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        try:
            self.predictor = pi.create_predictor(config)
        except Exception as error:
            raise ModelError(f"{graph}: Paddle Inference cannot load it with {params.name} ({first_line(error)})") from error
        self.graph = graph
        self.input_names = self._ordered_inputs()
        self.output_name = self.predictor.get_output_names()[0]

    def _ordered_inputs(self) -> list[str]:
        if self.graph.suffix == ".pdmodel":
            return [name for name, _ in pdmodel_feeds(self.graph)]
        return list(self.predictor.get_input_names())

    def input_shapes(self) -> list[list[int]]:
        if self.graph.suffix == ".pdmodel":
            return [dims for _, dims in pdmodel_feeds(self.graph)]
        return [list(self.predictor.get_input_handle(name).shape()) for name in self.input_names]

    def run(self, image: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        for name, array in zip(self.input_names, (image, clicks)):
            handle = self.predictor.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


def pdmodel_feeds(graph: Path) -> list[tuple[str, list[int]]]:
    """(name, declared dims) of a legacy ProgramDesc's feed targets, in feed column order."""
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    try:
        program.ParseFromString(graph.read_bytes())
    except Exception as error:
        raise ModelError(f"{graph}: not a Paddle .pdmodel program ({error})") from error
    block = program.blocks[0]
    variables = {var.name: var for var in block.vars}
    feeds = []
    for op in block.ops:
        if op.type == "feed":
            name = op.outputs[0].arguments[0]
            column = next((a.i for a in op.attrs if a.name == "col"), len(feeds))
            tensor = variables[name].type.dense_tensor.tensor  # field "lod_tensor" in Paddle 2.x, same number
            feeds.append((column, name, [int(d) for d in tensor.dims]))
    return [(name, dims) for _, name, dims in sorted(feeds)]


class OnnxRunner:
    """ONNX Runtime session: CUDA provider on gpu, else CPU with intra-op threads."""

    def __init__(self, path: Path, device: str, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: paddle2onnx graphs carry harmless unused-initializer warnings
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "gpu" else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({first_line(error)})") from error
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def input_shapes(self) -> list[list[int]]:
        return [[d if isinstance(d, int) else -1 for d in i.shape] for i in self.session.get_inputs()]

    def run(self, image: np.ndarray, clicks: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], dict(zip(self.input_names, (image, clicks))))[0]
