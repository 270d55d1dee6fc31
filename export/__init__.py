"""PyTorch architectures, checkpoint loaders, ONNX export and parity (the only place torch is imported)."""
