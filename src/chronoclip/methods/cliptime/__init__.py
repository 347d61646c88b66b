"""``cliptime``: stage classification and timestamp regression from an image and its note (spec C).

Modules: :mod:`.config` (the switches), :mod:`.data` (samples and what the training split fixes),
:mod:`.temporal` (the Fourier temporal embedding and its soft-target alignment), :mod:`.model` (the method).
"""

from chronoclip.methods.cliptime.config import CLIPTimeConfig
from chronoclip.methods.cliptime.model import CLIPTime

__all__ = ["CLIPTime", "CLIPTimeConfig"]
