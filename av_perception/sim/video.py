"""Stereo video rendering: textured room, people as face photos on bodies.

:class:`VideoRenderer` renders the left and right images of a scene at a time, with the
ground truth of each person (:class:`PersonView`: pixel, disparity, visibility).  The
geometry is exact for the rectified pinhole pair of :class:`StereoCameraConfig`: every
element is a fronto-parallel plane at depth z, shifted by the disparity ``fx * B / z`` in
the right image.  Details: docs/simulation.md, "The simulator".
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import SPRITE_SIZE, load_face
from .talking import MouthEnvelope, dry_speech, open_mouth

__all__ = ["VideoRenderer", "RenderedFrame", "PersonView"]

_BODY_RES = 0.004  # m per pixel of the body sprite
_TEX_RES = 0.01  # m per pixel of the wall / floor textures
_MOUTH_LEVELS = 8  # talking faces: the opening is drawn in steps of 1 / 8
_HAIR_RES = 0.002  # m per pixel of the hair sprites
#: hair colour (BGR) of the back of a head whose face photo shows its own hair
_DEFAULT_HAIR = (40, 55, 80)


@dataclass
class PersonView:
    """Where one person's face is in the images of one frame."""

    u: float  # left-image column of the face centre
    v: float  # row of the face centre
    disparity: float  # fx * B / z
    face_width_px: float
    visible_left: float  # unoccluded, in-image fraction of the face ellipse
    visible_right: float


@dataclass
class RenderedFrame:
    left: np.ndarray  # uint8 (H, W, 3) BGR
    right: np.ndarray
    views: dict  # {person id: PersonView}


class _Sprite:
    """An image + alpha with a Gaussian pyramid, placed by its centre in metres."""

    def __init__(self, image: np.ndarray, alpha: np.ndarray, res: float, label: int):
        self.levels = [(image.astype(np.float32), alpha.astype(np.float32))]
        while min(self.levels[-1][1].shape) > 8:
            img, a = self.levels[-1]
            self.levels.append((cv2.pyrDown(img), cv2.pyrDown(a)))
        self.res = res
        self.label = label
        h, w = alpha.shape
        self.centre = ((w - 1) / 2.0, (h - 1) / 2.0)

    def draw(self, canvas, labels, fx, fy, u_c, v_c, z, row_limit=None):
        """Paint onto ``canvas`` with the sprite centre at image point (u_c, v_c), depth z."""
        scale_x = fx * self.res / z
        scale_y = fy * self.res / z
        level = 0
        while level + 1 < len(self.levels) and scale_x * 2 ** (level + 1) <= 1.0:
            level += 1
        img, alpha = self.levels[level]
        f = 2 ** level
        ax, ay = scale_x * f, scale_y * f  # image pixels per level pixel
        # level-0 pixel j <-> level pixel j / f (pyrDown keeps pixel 2j' at j')
        bu = u_c - scale_x * self.centre[0]
        bv = v_c - scale_y * self.centre[1]
        h_l, w_l = alpha.shape
        u0 = int(np.floor(bu - 0.5 * ax))
        v0 = int(np.floor(bv - 0.5 * ay))
        u1 = int(np.ceil(bu + ax * (w_l - 0.5))) + 1
        v1 = int(np.ceil(bv + ay * (h_l - 0.5))) + 1
        H, W = labels.shape
        if row_limit is not None:
            v1 = min(v1, int(np.floor(row_limit)) + 1)
        u0c, v0c, u1c, v1c = max(u0, 0), max(v0, 0), min(u1, W), min(v1, H)
        if u1c <= u0c or v1c <= v0c:
            return
        m = np.array([[ax, 0.0, bu - u0c], [0.0, ay, bv - v0c]])
        size = (u1c - u0c, v1c - v0c)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        inv = cv2.invertAffineTransform(m)
        a = cv2.warpAffine(alpha, inv, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        if not np.any(a > 0):
            return
        im = cv2.warpAffine(img, inv, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        if row_limit is not None:
            rows = np.arange(v0c, v1c)[:, None]
            a = a * (rows <= row_limit)
        roi = canvas[v0c:v1c, u0c:u1c]
        roi += a[:, :, None] * (im - roi)
        labels[v0c:v1c, u0c:u1c][a > 0.5] = self.label


def _body_sprite(shirt, seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Neck, torso, arms and legs on a canvas 0.56 m x 1.9 m (4 mm/px).

    Returns image, alpha, and the canvas point (m) that sits at the face centre.
    """
    rng = np.random.default_rng(seed)
    w, h = int(0.56 / _BODY_RES), int(1.9 / _BODY_RES)
    img = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    # y (m) measured downwards from the face centre; x from the body axis
    top = 0.07  # canvas row 0 is 7 cm below the face centre

    def px(x, y):
        return int(round(w / 2 + x / _BODY_RES)), int(round((y - top) / _BODY_RES))

    shirt = np.asarray(shirt, np.float32)
    skin = np.array([120, 150, 200], np.float32)
    trousers = np.array([60, 45, 35], np.float32) * rng.uniform(0.8, 1.3)

    def fill(poly, colour):
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.array([px(x, y) for x, y in poly], np.int32)], 1, cv2.LINE_AA)
        m = mask.astype(bool)
        img[m] = colour
        alpha[m] = 1.0

    fill([(-0.055, 0.07), (0.055, 0.07), (0.06, 0.19), (-0.06, 0.19)], skin * 0.9)
    fill([(-0.11, 0.15), (0.11, 0.15), (0.22, 0.2), (0.23, 0.26), (0.18, 0.75), (-0.18, 0.75),
          (-0.23, 0.26), (-0.22, 0.2)], shirt)
    for side in (-1, 1):
        fill([(side * 0.22, 0.2), (side * 0.27, 0.27), (side * 0.26, 0.78), (side * 0.2, 0.78),
              (side * 0.19, 0.3)], shirt * 0.8)
        fill([(side * 0.2, 0.78), (side * 0.26, 0.78), (side * 0.25, 0.86), (side * 0.21, 0.86)],
             skin * 0.85)
        fill([(side * 0.01, 0.74), (side * 0.17, 0.74), (side * 0.16, 1.82), (side * 0.03, 1.82)],
             trousers)
    # cloth texture: stripes or checks plus fine noise, shading towards the edges
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pattern = rng.integers(3)
    if pattern == 0:
        tex = 1.0 + 0.12 * np.sign(np.sin(yy * 2 * np.pi / rng.uniform(8, 16)))
    elif pattern == 1:
        period = rng.uniform(10, 20)
        tex = 1.0 + 0.1 * np.sign(np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period))
    else:
        tex = np.ones_like(xx)
    tex = tex * (1.0 + 0.05 * rng.standard_normal((h, w)).astype(np.float32))
    shade = 1.0 - 0.25 * ((xx - w / 2) / (w / 2)) ** 2
    img *= (tex * shade)[:, :, None]
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)
    return np.clip(img, 0, 255), alpha, ((w - 1) / 2.0, -top / _BODY_RES)


def _back_of_head(width_m: float, height_m: float, colour, seed: int):
    """The back of a head (turned away): an ellipse of hair with strands running down,
    darker towards the edge; image and alpha at 2 mm/px, ``width_m`` x ``height_m``."""
    rng = np.random.default_rng(seed)
    w, h = int(round(width_m / _HAIR_RES)), int(round(height_m / _HAIR_RES))
    noise = rng.standard_normal((h, w)).astype(np.float32)
    strands = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.2, sigmaY=9.0)
    strands /= max(float(strands.std()), 1e-6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - (w - 1) / 2) / ((w - 1) / 2), (yy - (h - 1) / 2) / ((h - 1) / 2))
    shade = 1.0 - 0.35 * np.clip(r, 0, 1) ** 2
    tex = np.clip(1.0 + 0.22 * strands, 0.4, 1.8) * shade
    img = np.clip(tex[:, :, None] * np.asarray(colour, np.float32)[None, None, :], 0, 255)
    alpha = np.clip((1 - r) * 20 + 0.5, 0, 1).astype(np.float32)
    return img.astype(np.float32), alpha


def _wall_texture(width_m: float, height_m: float) -> np.ndarray:
    import skimage.data

    brick = skimage.data.brick().astype(np.float32) / 255.0  # 512 px ~ 2 m
    tile = cv2.resize(brick, (int(2.0 / _TEX_RES), int(2.0 / _TEX_RES)),
                      interpolation=cv2.INTER_AREA)
    w, h = int(width_m / _TEX_RES), int(height_m / _TEX_RES)
    g = np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1))[:h, :w]
    colour = np.array([150, 170, 200], np.float32)
    tex = 0.55 + 0.45 * g[:, :, None] * 1.3
    return np.clip(tex * colour, 0, 255)


def _poster() -> np.ndarray:
    import skimage.data

    return cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR).astype(np.float32)


def _floor_texture(width_m: float, depth_m: float) -> np.ndarray:
    import skimage.data

    gravel = skimage.data.gravel().astype(np.float32) / 255.0  # 512 px ~ 1 m
    tile = cv2.resize(gravel, (int(1.0 / _TEX_RES), int(1.0 / _TEX_RES)),
                      interpolation=cv2.INTER_AREA)
    w, h = int(width_m / _TEX_RES), int(depth_m / _TEX_RES)
    g = np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[1] + 1))[:h, :w]
    colour = np.array([70, 95, 120], np.float32)
    return np.clip((0.6 + 0.8 * g[:, :, None]) * colour, 0, 255)


class VideoRenderer:
    """Renders the stereo pair of a :class:`Scene` at any time.

    Parameters
    ----------
    scene : Scene
    dry : {person id: dry speech (n,)}, optional
        The people's speech (``render_audio(..., keep_dry=True).dry``) that opens their
        mouths when ``scene.video.talking_faces``; default: re-synthesised
        (:func:`~av_perception.sim.talking.dry_speech`).
    """

    def __init__(self, scene, dry: dict | None = None):
        self.scene = scene
        cam = scene.robot.camera
        self.cam = cam
        self.shape = (cam.height, cam.width)
        self.wall_z = self._wall_distance()
        self.floor_y = scene.robot.floor_y
        self.backgrounds = [self._background(offset) for offset in (0.0, cam.baseline)]
        self.faces = {}
        self.bodies = {}
        self.hair = {}
        self.backs = {}  # the back of the head of people who turn away
        for k, p in enumerate(scene.people):
            face = load_face(p.face)
            self.faces[p.id] = _Sprite(face.image, face.alpha, face.width_m / SPRITE_SIZE[0],
                                       label=2 * k + 1)
            img, alpha, anchor = _body_sprite(p.shirt, seed=1000 + p.id)
            body = _Sprite(img, alpha, _BODY_RES, label=2 * k + 2)
            body.anchor = anchor
            self.bodies[p.id] = body
            if face.hair is not None:
                hw, hh = int(face.width_m * 1.22 / 0.002), int(face.height_m * 1.15 / 0.002)
                himg = np.empty((hh, hw, 3), np.float32)
                himg[:] = face.hair
                yy, xx = np.mgrid[0:hh, 0:hw].astype(np.float32)
                r = np.hypot((xx - (hw - 1) / 2) / ((hw - 1) / 2),
                             (yy - (hh - 1) / 2) / ((hh - 1) / 2))
                halpha = np.clip((1 - r) * 20 + 0.5, 0, 1).astype(np.float32)
                hs = _Sprite(himg, halpha, 0.002, label=2 * k + 2)
                hs.offset_y = -0.04 * face.height_m / 0.2375
                self.hair[p.id] = hs
            if p.turn_away:  # same label as the face: the person stays visible
                bimg, balpha = _back_of_head(face.width_m * 1.15, face.height_m * 1.12,
                                             face.hair or _DEFAULT_HAIR, seed=2000 + p.id)
                back = _Sprite(bimg, balpha, _HAIR_RES, label=2 * k + 1)
                back.offset_y = -0.03 * face.height_m / 0.2375
                self.backs[p.id] = back
        self._noise_bank = None
        #: {person id: MouthEnvelope} of the talking faces (empty: mouths still)
        self.mouths = {}
        if scene.video.talking_faces and scene.people:
            dry = dry if dry is not None else dry_speech(scene)
            self.mouths = {p.id: MouthEnvelope(dry[p.id], scene.audio.rate)
                           for p in scene.people
                           if load_face(p.face).mouth is not None and p.id in dry}
        self._open_faces = {}
        self.face_size = {p.id: (load_face(p.face).width_m, load_face(p.face).height_m)
                          for p in scene.people}

    # ------------------------------------------------------------ background
    def _wall_distance(self) -> float:
        """Distance along the optical axis to the room wall it hits (m)."""
        r = self.scene.robot
        o = np.asarray(r.position)
        d = r.rotation[:, 2]
        size = np.asarray(self.scene.room.size)
        ts = []
        for k in range(2):
            if abs(d[k]) > 1e-9:
                ts.append(((size[k] if d[k] > 0 else 0.0) - o[k]) / d[k])
        return float(min(t for t in ts if t > 0))

    def _background(self, offset: float) -> np.ndarray:
        """Wall + floor seen from the camera at x = ``offset`` (0 left, B right)."""
        cam = self.cam
        H, W = self.shape
        z = self.wall_z
        half_w = 1.2 * z * max(cam.cx + 1, W - cam.cx) / cam.fx + cam.baseline
        top = -1.2 * z * (cam.cy + 1) / cam.fy
        wall = _wall_texture(2 * half_w, self.floor_y - top + 0.1)
        # a picture on the wall, 1.2 m x 0.8 m, right of the axis
        poster = _poster()
        pw, ph = int(1.2 / _TEX_RES), int(0.8 / _TEX_RES)
        px0 = int((half_w + 0.4) / _TEX_RES)
        py0 = int((-0.7 - top) / _TEX_RES)
        if 0 <= py0 and py0 + ph < wall.shape[0] and px0 + pw < wall.shape[1]:
            wall[py0:py0 + ph, px0:px0 + pw] = cv2.resize(poster, (pw, ph),
                                                           interpolation=cv2.INTER_AREA)
            wall[py0 - 3:py0 + ph + 3, px0 - 3:px0 + 3] = 30
            wall[py0 - 3:py0 + ph + 3, px0 + pw - 3:px0 + pw + 3] = 30
            wall[py0 - 3:py0 + 3, px0 - 3:px0 + pw + 3] = 30
            wall[py0 + ph - 3:py0 + ph + 3, px0 - 3:px0 + pw + 3] = 30
        floor = _floor_texture(2 * half_w, z + 0.5)
        u = np.arange(W, dtype=np.float32)[None, :]
        v = np.arange(H, dtype=np.float32)[:, None]
        X = (u - cam.cx) * z / cam.fx + offset
        Y = (v - cam.cy) * z / cam.fy
        mx = np.broadcast_to((X + half_w) / _TEX_RES, (H, W)).astype(np.float32)
        my = np.broadcast_to((Y - top) / _TEX_RES, (H, W)).astype(np.float32)
        out = cv2.remap(wall, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        # floor: rows below the wall/floor line, depth from the camera height
        with np.errstate(divide="ignore"):
            zf = np.where(v - cam.cy > 0, self.floor_y * cam.fy / np.maximum(v - cam.cy, 1e-6),
                          np.inf)
        below = np.broadcast_to(zf < z, (H, W))
        if np.any(below):
            Xf = (u - cam.cx) * zf / cam.fx + offset
            fx_ = np.where(below, (Xf + half_w) / _TEX_RES, 0).astype(np.float32)
            fy_ = np.where(below, (z + 0.5 - zf) / _TEX_RES, 0).astype(np.float32)
            fl = cv2.remap(floor, fx_, fy_, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            out[below] = fl[below]
        return out

    def _noise(self, rng) -> np.ndarray:
        """A Gaussian sensor-noise field: a random crop of one of a few pre-drawn fields
        (drawing 2 x 921,600 normals per frame would dominate the rendering time)."""
        H, W = self.shape
        if self._noise_bank is None:
            bank_rng = np.random.default_rng(rng.integers(2**63))
            self._noise_bank = [
                self.scene.video.noise_std * bank_rng.standard_normal((H + 97, W + 131, 3),
                                                                      dtype=np.float32)
                for _ in range(4)]
        k, dy, dx = rng.integers(4), rng.integers(98), rng.integers(132)
        return self._noise_bank[k][dy:dy + H, dx:dx + W]

    def _head_warp(self, t: float):
        """Homography of the background for the head's rotation at ``t`` (the room seen
        from the turned camera; the pivot's small translation is left out), or None."""
        head = self.scene.head()
        if head is None:
            return None
        from .head_motion import _rotation

        R = _rotation(*head.angles(t))[0]  # camera -> rest
        c = self.cam
        K = np.array([[c.fx, 0, c.cx], [0, c.fy, c.cy], [0, 0, 1.0]])
        return K @ R.T @ np.linalg.inv(K)

    def mouth_opening(self, pid: int, t: float) -> float:
        """Drawn mouth opening of person ``pid`` at ``t`` (0 closed .. 1, in steps)."""
        if pid not in self.mouths:
            return 0.0
        return round(float(self.mouths[pid](t)) * _MOUTH_LEVELS) / _MOUTH_LEVELS

    def _face(self, pid: int, t: float) -> _Sprite:
        level = int(round(self.mouth_opening(pid, t) * _MOUTH_LEVELS))
        if level == 0:
            return self.faces[pid]
        key = (pid, level)
        if key not in self._open_faces:
            p = self.scene.person(pid)
            face = load_face(p.face)
            base = self.faces[pid]
            img = open_mouth(face.image.astype(np.float32), face.mouth, level / _MOUTH_LEVELS)
            self._open_faces[key] = _Sprite(img, face.alpha, base.res, base.label)
        return self._open_faces[key]

    # ----------------------------------------------------------------- frames
    def render(self, t: float, rng) -> RenderedFrame:
        """The left and right images at time ``t`` (s from the start) and the face views."""
        cam = self.cam
        pos = {pid: p[0] for pid, p in self.scene.positions([t]).items()}
        order = sorted(self.scene.people, key=lambda p: -pos[p.id][2])
        images, label_maps = [], []
        warp = self._head_warp(t)
        for view, offset in enumerate((0.0, cam.baseline)):
            canvas = (self.backgrounds[view].copy() if warp is None else cv2.warpPerspective(
                self.backgrounds[view], warp, (self.shape[1], self.shape[0]),
                borderMode=cv2.BORDER_REFLECT_101))
            labels = np.zeros(self.shape, np.int16)
            for p in order:
                x, y, z = pos[p.id]
                if z < 0.1:
                    continue
                u = cam.cx + cam.fx * (x - offset) / z
                v = cam.cy + cam.fy * y / z
                floor_row = cam.cy + cam.fy * self.floor_y / z
                body = self.bodies[p.id]
                ax, ay = body.anchor
                # the body canvas point (ax, ay) px sits at the face centre
                bu = u + cam.fx * _BODY_RES / z * (body.centre[0] - ax)
                bv = v + cam.fy * _BODY_RES / z * (body.centre[1] - ay)
                body.draw(canvas, labels, cam.fx, cam.fy, bu, bv, z, row_limit=floor_row)
                if p.id in self.backs and p.turned_away(t):  # hair, no face
                    back = self.backs[p.id]
                    back.draw(canvas, labels, cam.fx, cam.fy, u, v + cam.fy * back.offset_y / z,
                              z)
                    continue
                if p.id in self.hair:
                    hs = self.hair[p.id]
                    hs.draw(canvas, labels, cam.fx, cam.fy, u, v + cam.fy * hs.offset_y / z, z)
                self._face(p.id, t).draw(canvas, labels, cam.fx, cam.fy, u, v, z)
            images.append(canvas)
            label_maps.append(labels)
        views = {}
        for k, p in enumerate(self.scene.people):
            x, y, z = pos[p.id]
            fw, fh = self.face_size[p.id]
            if z < 0.1:
                views[p.id] = PersonView(np.nan, np.nan, np.nan, np.nan, 0.0, 0.0)
                continue
            area = np.pi / 4 * (cam.fx * fw / z) * (cam.fy * fh / z)
            fr = [float(np.count_nonzero(lm == 2 * k + 1)) / area for lm in label_maps]
            views[p.id] = PersonView(
                u=float(cam.cx + cam.fx * x / z), v=float(cam.cy + cam.fy * y / z),
                disparity=float(cam.fx * cam.baseline / z), face_width_px=float(cam.fx * fw / z),
                visible_left=min(fr[0], 1.0), visible_right=min(fr[1], 1.0))
        gain = float(self.scene.video.gain(t)[0])
        out = []
        for img in images:
            if gain != 1.0:
                img *= gain
            if self.scene.video.blur_sigma > 0:
                img = cv2.GaussianBlur(img, (0, 0), self.scene.video.blur_sigma)
            if self.scene.video.noise_std > 0:
                img += self._noise(rng)
            img += 0.5
            np.clip(img, 0, 255, out=img)
            out.append(img.astype(np.uint8))
        return RenderedFrame(out[0], out[1], views)
