"""PyTorch architectures, checkpoint loaders, ONNX export and parity (the only place torch is imported).

Entry point: ``vsslrt.export.pipeline.export_model`` (also re-exported here). Importing this
package does not import torch; the functions that need it import it when called.
"""

from vsslrt.export.pipeline import export_model

__all__ = ["export_model"]
