"""Real face photos for the rendered people (shipped by scikit-image and matplotlib).

:func:`load_face` returns a :class:`FaceSprite` (BGR image, soft elliptic alpha, physical
width in metres) for a name of :func:`face_names`: ``astronaut``, ``hopper`` or
``lfw:K`` (K in 0..99).  Sources: docs/simulation.md, "The simulator".
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

__all__ = ["FaceSprite", "face_names", "load_face", "SPRITE_SIZE"]

#: canonical sprite size (width, height) in pixels
SPRITE_SIZE = (160, 200)
ASPECT = SPRITE_SIZE[0] / SPRITE_SIZE[1]
_PORTRAITS = {
    # name: (Haar box x, y, w, h; crop width / box width; vertical shift / box height)
    "astronaut": ((177, 66, 95, 95), 1.3, -0.02),
    "hopper": ((155, 105, 222, 222), 1.2, 0.02),
}
_SKIN = [(150, 180, 225), (120, 155, 205), (95, 130, 180), (70, 100, 150), (140, 170, 215)]
N_LFW_FACES = 100


@dataclass
class FaceSprite:
    """A face image with its alpha mask and physical size.

    image : uint8 (H, W, 3) BGR.  alpha : float32 (H, W) in [0, 1].
    width_m : physical width of the sprite (m).  hair : BGR colour of a head
    outline drawn behind the face (None = the photo already shows the hair).
    """

    name: str
    image: np.ndarray
    alpha: np.ndarray
    width_m: float
    hair: tuple | None = None

    @property
    def height_m(self) -> float:
        return self.width_m / ASPECT


def face_names() -> list[str]:
    """All face names :func:`load_face` accepts."""
    return list(_PORTRAITS) + [f"lfw:{k}" for k in range(N_LFW_FACES)]


def _ellipse_alpha(w: int, h: int, soft: float = 3.0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = (w - 1) / 2.0, (h - 1) / 2.0
    r = np.sqrt(((x - a) / a) ** 2 + ((y - b) / b) ** 2)
    edge = soft / min(a, b)
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def _portrait(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data

        return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = cv2.imread(str(path))
    if img is None:
        raise ValueError(f"cannot read the face photo {path}")
    return img


@cache
def load_face(name: str) -> FaceSprite:
    """The sprite of face ``name`` (see :func:`face_names`)."""
    w, h = SPRITE_SIZE
    if name in _PORTRAITS:
        (bx, by, bw, bh), scale, shift = _PORTRAITS[name]
        img = _portrait(name)
        cw = scale * bw
        ch = cw / ASPECT
        cx, cy = bx + bw / 2.0, by + bh / 2.0 + shift * bh
        x0, y0 = int(round(cx - cw / 2.0)), int(round(cy - ch / 2.0))
        padded = cv2.copyMakeBorder(img, 64, 64, 64, 64, cv2.BORDER_REPLICATE)
        region = padded[y0 + 64:y0 + 64 + int(round(ch)), x0 + 64:x0 + 64 + int(round(cw))]
        crop = cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)
        return FaceSprite(name, crop, _ellipse_alpha(w, h), width_m=0.19)
    if name.startswith("lfw:"):
        try:
            k = int(name[4:])
        except ValueError:
            k = -1
        if not 0 <= k < N_LFW_FACES:
            raise ValueError(f"unknown face {name!r}: lfw faces are lfw:0 .. lfw:{N_LFW_FACES - 1}")
        import skimage.data

        grey = skimage.data.lfw_subset()[k]  # float in [0, 1], 25 x 25, face region
        grey = grey[:, 2:23]  # aspect ~0.84 -> close to 0.8
        big = cv2.resize(grey.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        skin = np.asarray(_SKIN[k % len(_SKIN)], dtype=np.float32) / 160.0
        img = np.clip(big[:, :, None] * skin[None, None, :] * 255.0 * 1.15, 0, 255)
        hair = tuple(int(v) for v in (np.array([30, 40, 55]) * (1 + (k % 3) * 0.5)))
        return FaceSprite(name, img.astype(np.uint8), _ellipse_alpha(w, h, soft=8.0),
                          width_m=0.15, hair=hair)
    raise ValueError(f"unknown face {name!r}: use one of astronaut, hopper, lfw:0 .. "
                     f"lfw:{N_LFW_FACES - 1}")
