"""Choices shared by several commands (one definition, the same spelling everywhere)."""

from __future__ import annotations

from enum import Enum


class Protocol(str, Enum):
    """fixed: the protocol with the reference's bugs fixed; paper: the reference's numbers and key names."""

    fixed = "fixed"
    paper = "paper"


class Interp(str, Enum):
    """Upsampling of small maps to 224x224."""

    bilinear = "bilinear"
    cv2 = "cv2"
