"""Print the mouth table of the simulator's face sprites (sim/faces.py ``_MOUTHS``).

Each sprite is padded, found by BlazeFace and meshed by face_landmark.tflite once; the
mouth centre (mean of the inner-lip vertices 13, 14) and width (corners 78-308) in sprite
pixels are printed as a Python dict.  Run: ``PYTHONPATH=. .venv/bin/python
tools/sprite_mouths.py``.
"""
import cv2
import numpy as np

from av_perception.core import blazeface as bf
from av_perception.sim.faces import face_names, load_face


def main():
    det = bf.BlazeFaceDetector(variant="short_range")
    mesh = bf.FaceLandmarker()
    rows = []
    for name in face_names():
        img = cv2.copyMakeBorder(load_face(name).image, 100, 100, 100, 100,
                                 cv2.BORDER_CONSTANT, value=(128, 128, 128))
        r = det.detect(img)
        if not len(r):
            continue
        lm = mesh.run(bf.to_rgb(img), r.boxes[0], r.keypoints[0])
        if lm is None or lm.presence < 0.5:
            continue
        p = lm.points[:, :2] - 100.0
        c = 0.5 * (p[13] + p[14])
        w = float(np.linalg.norm(p[308] - p[78]))
        rows.append(f"{name!r}: ({c[0]:.0f}, {c[1]:.0f}, {w:.0f}),")
    lines, cur = [], "   "
    for r in rows:
        if len(cur) + len(r) + 1 > 95:
            lines.append(cur)
            cur = "   "
        cur += " " + r
    print("_MOUTHS = {\n" + "\n".join(lines + [cur]) + "\n}")


if __name__ == "__main__":
    main()
