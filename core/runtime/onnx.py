"""ONNX Runtime for the encoders: export a torch module once, quantize it, cache it, open sessions.

Why: on this 2-core CPU, ONNX Runtime runs the same graphs 2-4x faster than eager PyTorch, and
dynamic int8 quantization of the transformer matmuls (CLIP, MiniLM) roughly doubles that again.

Cache: one file per (model part, source weights digest, export code version, precision), e.g.
`efficientnet-lite0-image-<digest>-e1.onnx` and `...-e1.int8.onnx`. Changed weights give a new digest,
so a stale export is never reused. Files are written to a temporary name and moved into place
with `os.replace`, so a crash mid-export never leaves a half-written file under the final name.
A cached file that ONNX Runtime cannot load (corrupt, truncated) is logged, deleted and exported again.

Quantization: `quantize_dynamic` with `op_types_to_quantize=("MatMul", "Gemm")`, signed int8
weights, one scale per output channel. Measured on MiniLM (cosine to fp32 ONNX, texts/s, 1 thread):
per-tensor QInt8 0.970, per-tensor QUInt8 0.983, per-channel QUInt8 0.994 (308/s), per-channel
QInt8 0.993 (1081/s, versus 167/s fp32) - per-channel QInt8 it is. Dynamic int8 on convolutions (the EfficientNet's depthwise convs) was both slower and
inaccurate here (measured: 27-32 img/s and cosine 0.87 to fp32, versus 127 img/s and 1.0000 for
fp32 ONNX), so convs stay fp32: for the offline CNN "int8" only touches the classifier.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from visearch.core.errors import EncoderUnavailableError

logger = logging.getLogger(__name__)

#: bump when the export code changes what a graph computes (wrappers, opset, quantization recipe)
EXPORT_VERSION = "e1"
OPSET = 17
BACKENDS = ("torch", "onnx", "onnx-int8")
#: operator types quantized by `onnx-int8` (see the module docstring for why not Conv)
QUANTIZED_OP_TYPES = ("MatMul", "Gemm")
DEFAULT_CACHE = Path("~/.cache/visearch/onnx")


class InferenceSession(Protocol):
    """The part of `onnxruntime.InferenceSession` the encoders call (onnxruntime ships no type information)."""

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The named outputs (all of them for None), in the graph's order."""
        ...


def is_onnx(backend: str) -> bool:
    """True for the ONNX Runtime backends."""
    return backend in ("onnx", "onnx-int8")


def check_backend(backend: str) -> str:
    """The backend name, or an error that lists the valid ones (for code paths not using Settings)."""
    if backend not in BACKENDS:
        raise EncoderUnavailableError(
            f"unknown encoder backend {backend!r}: set VISEARCH_BACKEND to one of {', '.join(BACKENDS)}"
        )
    return backend


def default_cache_dir(configured: Path | str | None = None) -> Path:
    """VISEARCH_ONNX_CACHE (or the given folder), else ~/.cache/visearch/onnx."""
    raw = configured or os.environ.get("VISEARCH_ONNX_CACHE") or DEFAULT_CACHE
    return Path(raw).expanduser()


def files_digest(paths: Iterable[Path], root: Path | None = None, length: int = 16) -> str:
    """SHA-256 prefix of the files' names (relative to `root`) and bytes: the cache key of an export."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        name = path.relative_to(root).as_posix() if root is not None else path.name
        digest.update(name.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:length]


def module_digest(module: Any, length: int = 16) -> str:
    """SHA-256 prefix of a torch module's parameters and buffers (names, dtypes, shapes, bytes).

    For models without one weights file to hash (a Hub model in the Hugging Face cache, a CLIP folder
    whose layout we do not control): what is hashed is exactly what gets exported.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode() + b"\0")
        digest.update(
            tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
            if tensor.numel()
            else b""
        )
    return digest.hexdigest()[:length]


def writable_dir(preferred: Path, fallback: Path) -> Path:
    """`preferred` if it can be created and written to, else `fallback` (created)."""
    for folder in (preferred, fallback):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
                pass
            return folder
        except OSError:
            continue
    raise EncoderUnavailableError(
        f"no writable folder for ONNX exports ({preferred}, {fallback}): set VISEARCH_ONNX_CACHE to a writable folder"
    )


def model_path(folder: Path, name: str, digest: str, int8: bool) -> Path:
    """Where the export of `name` with weights `digest` lives (fp32 or int8)."""
    return folder / f"{name}-{digest}-{EXPORT_VERSION}{'.int8' if int8 else ''}.onnx"


def export_module(
    module: Any,
    example: tuple[Any, ...],
    target: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """torch.onnx.export (TorchScript exporter: no onnxscript needed) into `target`, atomically."""
    import torch

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            torch.onnx.export(
                module,
                example,
                str(tmp),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        # the exporter's notes on how it traced (shape checks traced as constants, though inputs are truncated
        # anyway; Slice ops not folded; index ops split up) are for developers: a log line at DEBUG each
        for category, message in dict.fromkeys((note.category.__name__, str(note.message)) for note in notes):
            logger.debug("torch.onnx.export: %s: %s", category, message)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_file(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of `source`'s MatMul/Gemm weights into `target`, atomically."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization needs the `onnx` package
        raise EncoderUnavailableError(
            f"VISEARCH_BACKEND=onnx-int8 needs the `onnx` package ({exc}): pip install onnx"
        ) from None

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    root = logging.getLogger()
    advice = _DropPreprocessingAdvice()
    root.addFilter(advice)
    try:
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
        )
        os.replace(tmp, target)
    finally:
        root.removeFilter(advice)
        tmp.unlink(missing_ok=True)


class _DropPreprocessingAdvice(logging.Filter):
    """Drops quantize_dynamic's root-logger advice to run ORT's shape pre-processing first: it is
    about static quantization of conv nets, and printed on every export it reads like a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def session_options(threads: int) -> Any:
    """One inference session's options: `threads` intra-op threads (0 = ORT's default), sequential graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def open_session(path: Path, threads: int, device: str = "cpu") -> InferenceSession:
    """An ONNX Runtime session for `path`: on a CUDA GPU when `device` allows one and this
    onnxruntime build has the CUDA provider (see `visearch.core.runtime.devices`), else the CPU."""
    import onnxruntime as ort

    from visearch.core.runtime.devices import onnx_providers

    session: InferenceSession = ort.InferenceSession(
        str(path), session_options(threads), providers=onnx_providers(device)
    )
    return session


def cached_session(
    folder: Path,
    name: str,
    digest: str,
    int8: bool,
    threads: int,
    export: Callable[[Path], None],
    device: str = "cpu",
) -> InferenceSession:
    """A session for the cached export of `name`, exporting (and quantizing) it first when missing.

    `export(path)` writes the fp32 graph to `path`. A cached file that does not load is deleted
    and rebuilt once, with a warning that names it; a second failure is an EncoderUnavailableError.
    """
    fp32 = model_path(folder, name, digest, int8=False)
    target = model_path(folder, name, digest, int8=int8)
    for attempt in (1, 2):
        exporting = not target.is_file()
        try:
            if exporting:
                _build(fp32, target, int8, export)
            return open_session(target, threads, device)
        except EncoderUnavailableError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if attempt == 2:
                raise EncoderUnavailableError(
                    f"ONNX Runtime cannot export or load {target} even on a second try ({reason}); "
                    f"delete {folder} or set VISEARCH_BACKEND=torch"
                ) from None
            if exporting:
                logger.warning("exporting %s failed (%s): trying once more", target.name, reason)
            else:
                logger.warning(
                    "cached ONNX file %s is unreadable (%s): deleting and exporting it again", target, reason
                )
            target.unlink(missing_ok=True)
            if int8:
                fp32.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover


def _build(fp32: Path, target: Path, int8: bool, export: Callable[[Path], None]) -> None:
    """Export the fp32 graph if missing, then quantize it when int8 is asked for."""
    fp32.parent.mkdir(parents=True, exist_ok=True)
    if not fp32.is_file():
        logger.info("exporting %s (once; cached)", fp32.name)
        export(fp32)
    if int8 and not target.is_file():
        logger.info("quantizing %s to int8 (once; cached)", fp32.name)
        quantize_file(fp32, target)
