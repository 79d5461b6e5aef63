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
#: mouth centre (x, y) and corner-to-corner width in sprite pixels (face mesh of each
#: sprite, tools/sprite_mouths.py)
_MOUTHS = {
    'astronaut': (77, 145, 54), 'hopper': (82, 134, 39), 'lfw:0': (80, 150, 43),
    'lfw:1': (49, 146, 58), 'lfw:2': (59, 143, 48), 'lfw:3': (70, 148, 46),
    'lfw:4': (59, 135, 41), 'lfw:5': (59, 132, 46), 'lfw:6': (61, 156, 47),
    'lfw:7': (70, 152, 41), 'lfw:8': (68, 141, 50), 'lfw:9': (77, 142, 54),
    'lfw:10': (70, 149, 56), 'lfw:11': (81, 144, 52), 'lfw:12': (64, 144, 41),
    'lfw:13': (74, 128, 41), 'lfw:14': (54, 145, 48), 'lfw:15': (83, 141, 45),
    'lfw:16': (61, 113, 44), 'lfw:17': (82, 130, 45), 'lfw:18': (59, 144, 55),
    'lfw:19': (69, 131, 51), 'lfw:20': (55, 139, 49), 'lfw:21': (60, 141, 50),
    'lfw:22': (73, 149, 55), 'lfw:23': (80, 139, 59), 'lfw:24': (74, 146, 45),
    'lfw:25': (79, 139, 47), 'lfw:26': (68, 143, 49), 'lfw:27': (68, 135, 51),
    'lfw:28': (63, 148, 43), 'lfw:29': (84, 156, 44), 'lfw:30': (41, 149, 50),
    'lfw:31': (68, 144, 59), 'lfw:32': (67, 145, 41), 'lfw:33': (57, 152, 43),
    'lfw:34': (64, 142, 40), 'lfw:35': (50, 143, 43), 'lfw:36': (66, 150, 54),
    'lfw:37': (77, 135, 58), 'lfw:38': (84, 141, 56), 'lfw:39': (64, 129, 42),
    'lfw:40': (59, 153, 34), 'lfw:41': (67, 143, 48), 'lfw:42': (59, 142, 48),
    'lfw:43': (62, 147, 46), 'lfw:44': (83, 140, 48), 'lfw:45': (67, 144, 49),
    'lfw:46': (68, 150, 44), 'lfw:47': (43, 149, 41), 'lfw:48': (58, 140, 32),
    'lfw:49': (68, 148, 42), 'lfw:50': (63, 149, 54), 'lfw:51': (59, 145, 42),
    'lfw:52': (63, 140, 69), 'lfw:53': (82, 132, 47), 'lfw:54': (69, 151, 48),
    'lfw:55': (70, 149, 42), 'lfw:56': (58, 146, 52), 'lfw:57': (58, 156, 41),
    'lfw:58': (90, 149, 44), 'lfw:59': (77, 138, 41), 'lfw:60': (64, 146, 51),
    'lfw:61': (69, 144, 52), 'lfw:62': (62, 149, 37), 'lfw:63': (55, 142, 50),
    'lfw:64': (69, 131, 50), 'lfw:65': (56, 143, 48), 'lfw:66': (63, 144, 42),
    'lfw:67': (66, 141, 39), 'lfw:68': (65, 161, 43), 'lfw:69': (74, 140, 60),
    'lfw:70': (67, 130, 38), 'lfw:71': (64, 151, 47), 'lfw:72': (70, 145, 50),
    'lfw:73': (64, 148, 47), 'lfw:74': (53, 146, 54), 'lfw:75': (35, 145, 39),
    'lfw:76': (88, 148, 44), 'lfw:77': (84, 148, 42), 'lfw:78': (51, 145, 46),
    'lfw:79': (71, 151, 50), 'lfw:80': (72, 149, 45), 'lfw:81': (76, 139, 60),
    'lfw:82': (65, 139, 48), 'lfw:83': (91, 157, 59), 'lfw:84': (77, 148, 43),
    'lfw:85': (63, 139, 53), 'lfw:86': (71, 153, 54), 'lfw:87': (83, 144, 42),
    'lfw:88': (74, 138, 52), 'lfw:89': (46, 146, 44), 'lfw:90': (78, 139, 37),
    'lfw:91': (71, 143, 50), 'lfw:92': (73, 143, 43), 'lfw:93': (75, 146, 53),
    'lfw:94': (69, 144, 63), 'lfw:95': (68, 147, 42), 'lfw:96': (65, 137, 63),
    'lfw:97': (60, 146, 45), 'lfw:98': (80, 145, 45), 'lfw:99': (62, 147, 42),
}


@dataclass
class FaceSprite:
    """A face image with its alpha mask and physical size.

    image : uint8 (H, W, 3) BGR.  alpha : float32 (H, W) in [0, 1].
    width_m : physical width of the sprite (m).  hair : BGR colour of a head
    outline drawn behind the face (None = the photo already shows the hair).
    mouth : (cx, cy, width) of the lips in sprite pixels (None: unknown).
    """

    name: str
    image: np.ndarray
    alpha: np.ndarray
    width_m: float
    hair: tuple | None = None
    mouth: tuple | None = None

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
        return FaceSprite(name, crop, _ellipse_alpha(w, h), width_m=0.19, mouth=_MOUTHS.get(name))
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
                          width_m=0.15, hair=hair, mouth=_MOUTHS.get(name))
    raise ValueError(f"unknown face {name!r}: use one of astronaut, hopper, lfw:0 .. "
                     f"lfw:{N_LFW_FACES - 1}")
