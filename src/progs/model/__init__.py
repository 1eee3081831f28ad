"""The ProGS model: octree anchors (``anchors``), the neural-Gaussian generator (``gaussians``) and the
two together (``model``)."""

from progs.model.anchors import AnchorSet
from progs.model.gaussians import GaussianGenerator, NeuralGaussians
from progs.model.model import ProGSModel, RenderOutput

__all__ = [
    "AnchorSet",
    "GaussianGenerator",
    "NeuralGaussians",
    "ProGSModel",
    "RenderOutput",
]
