"""Inference runtimes besides torch: ONNX export, int8 quantization, a cache of exported files."""
