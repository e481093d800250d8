"""kinkgrad: make non-differentiability in PyTorch visible, controllable and correct."""

__version__ = "0.1.0"

from kinkgrad import ops
from kinkgrad._policy import kink_policy
from kinkgrad._rules import TIE_RULES, KinkWarning

__all__ = ["TIE_RULES", "KinkWarning", "__version__", "kink_policy", "ops"]
