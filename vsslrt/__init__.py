"""vsslrt: fast, honest evaluation and deployment of visual sound source localization models.

Importing this package is cheap: it never imports torch, onnxruntime, tensorrt or cupy.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
