"""Which device runs the encoders: `VISEARCH_DEVICE=auto` takes a CUDA GPU when one is there, else the CPU.

torch answers "is there a GPU" only once imported (~2 s), so each runtime asks its own library:
the torch backend asks torch, the ONNX backends ask ONNX Runtime which execution providers this
build has (`onnxruntime-gpu` brings CUDAExecutionProvider; the plain wheel has the CPU only).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

AUTO = "auto"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

#: an execution provider as ONNX Runtime takes it: a name, or a name with its options
Provider = str | tuple[str, dict[str, object]]


def wants_gpu(device: str) -> bool:
    """True for `auto` and for any CUDA device name (`cuda`, `cuda:1`)."""
    return device == AUTO or device.startswith("cuda")


def torch_device(device: str) -> str:
    """The torch device for a configured one: `auto` is `cuda` when torch sees a GPU, else `cpu`."""
    if device != AUTO:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def onnx_providers(device: str) -> list[Provider]:
    """ONNX Runtime's execution providers for a configured device, best first.

    CUDA first when the device allows a GPU and this onnxruntime build has the CUDA provider;
    asking for `cuda` on a build without it says so once and runs on the CPU."""
    if not wants_gpu(device):
        return [CPU_PROVIDER]
    import onnxruntime as ort

    if CUDA_PROVIDER in ort.get_available_providers():
        index = device.partition(":")[2]
        cuda: Provider = (CUDA_PROVIDER, {"device_id": int(index)}) if index.isdigit() else CUDA_PROVIDER
        return [cuda, CPU_PROVIDER]
    if device != AUTO:
        logger.warning(
            "VISEARCH_DEVICE=%s but this onnxruntime has no CUDA provider: running on the CPU "
            "(pip install onnxruntime-gpu, or set VISEARCH_BACKEND=torch)",
            device,
        )
    return [CPU_PROVIDER]


def describe_device(backend: str, device: str) -> str:
    """Where the encoder of this backend and device setting runs, for benchmark reports ("cpu",
    "cuda", "cuda (ONNX Runtime)")."""
    if backend == "torch":
        return torch_device(device)
    first = onnx_providers(device)[0]
    return "cuda (ONNX Runtime)" if (first if isinstance(first, str) else first[0]) == CUDA_PROVIDER else "cpu"
