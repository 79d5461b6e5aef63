"""Which rosbag2 topics hold the left and right images and their CameraInfo: detected
from the bag's listing, or checked when given."""
from __future__ import annotations

from dataclasses import dataclass

from ..bag import BagError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"

#: topics tried first, in order, when the bag has several image topics per side
DEFAULT_IMAGE_TOPICS = {
    "left": ("/stereo/left/image_raw", "/stereo/left/image_raw/compressed"),
    "right": ("/stereo/right/image_raw", "/stereo/right/image_raw/compressed"),
}


@dataclass
class StereoTopics:
    left_image: str
    right_image: str
    left_info: str | None
    right_info: str | None

    def __str__(self) -> str:
        infos = (f"{self.left_info}, {self.right_info}" if self.left_info
                 else "no camera_info (calibration given)")
        return f"images {self.left_image}, {self.right_image}; {infos}"


def _has_side(topic: str, side: str) -> bool:
    parts = topic.replace("-", "_").split("/")
    return any(p == side or p.startswith(side + "_") or p.endswith("_" + side) for p in parts)


def _pick_image(topics: dict, side: str, listing: str) -> str:
    images = {t for t, m in topics.items() if m in IMAGE_TYPES}
    for name in DEFAULT_IMAGE_TOPICS[side]:  # raw before compressed: lossless
        if name in images:
            return name
    cands = sorted(t for t in images if _has_side(t, side))
    raw = [t for t in cands if topics[t] == IMAGE_TYPES[0]]
    comp = [t for t in cands if topics[t] == IMAGE_TYPES[1]]
    if len(raw) == 1:
        return raw[0]
    if not raw and len(comp) == 1:
        return comp[0]
    option = f"--{side}-topic"
    if not cands:
        raise BagError(
            f"no {side} image topic in the bag (looked for {', '.join(DEFAULT_IMAGE_TOPICS[side])} "
            f"or an Image/CompressedImage topic with '{side}' in its name); the bag has: "
            f"{listing}; name it with {option}")
    raise BagError(
        f"several {side} image topics in the bag ({', '.join(cands)}): choose one with "
        f"{option}; the bag has: {listing}")


def _check_topic(topics: dict, topic: str, types: tuple, what: str, listing: str) -> str:
    if topic not in topics:
        raise BagError(f"{what} topic {topic} is not in the bag; the bag has: {listing}")
    if topics[topic] not in types:
        raise BagError(f"{what} topic {topic} has type {topics[topic]}, expected "
                       f"{' or '.join(types)}; the bag has: {listing}")
    return topic


def _pick_info(topics: dict, image_topic: str, side: str) -> str | None:
    infos = {t for t, m in topics.items() if m == CAMERA_INFO_TYPE}
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") \
        else image_topic
    sibling = base.rsplit("/", 1)[0] + "/camera_info"
    if sibling in infos:
        return sibling
    cands = sorted(t for t in infos if _has_side(t, side))
    return cands[0] if len(cands) == 1 else None


def detect_stereo_topics(topics: dict, left_image: str | None = None,
                         right_image: str | None = None, left_info: str | None = None,
                         right_info: str | None = None, require_info: bool = True
                         ) -> StereoTopics:
    """Choose the image and CameraInfo topics of a stereo pair among a bag's ``topics``
    ({name: type}).

    Given names are checked (existence, type).  Otherwise: the package's defaults
    (``/stereo/{left,right}/image_raw`` then ``.../compressed``), else the only
    Image/CompressedImage topic with 'left' ('right') in its name; the right
    topic is first derived from the left one ('left' -> 'right'); each
    camera_info is the ``camera_info`` sibling of its image topic, else the
    only CameraInfo topic of that side.

    Raises
    ------
    BagError
        Missing or ambiguous topics, listing the bag's topics and the option
        that resolves it.
    """
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(topics.items())) or "no topics"
    if left_image:
        _check_topic(topics, left_image, IMAGE_TYPES, "left image", listing)
    else:
        left_image = _pick_image(topics, "left", listing)
    if right_image:
        _check_topic(topics, right_image, IMAGE_TYPES, "right image", listing)
    else:
        i = left_image.rfind("left")
        derived = left_image[:i] + "right" + left_image[i + 4:] if i >= 0 else ""
        if derived in topics and topics[derived] in IMAGE_TYPES:
            right_image = derived
        else:
            right_image = _pick_image(topics, "right", listing)
    if right_image == left_image:
        raise BagError(f"the left and right image topics are both {left_image}: give "
                       "--left-topic and --right-topic")
    out = {}
    for side, given, image in (("left", left_info, left_image), ("right", right_info,
                                                                 right_image)):
        if given:
            out[side] = _check_topic(topics, given, (CAMERA_INFO_TYPE,), f"{side} camera_info",
                                     listing)
        else:
            out[side] = _pick_info(topics, image, side)
    if require_info:
        for side in ("left", "right"):
            if out[side] is None:
                image = left_image if side == "left" else right_image
                base = image[:-len("/compressed")] if image.endswith("/compressed") else image
                raise BagError(
                    f"no CameraInfo topic for the {side} camera in the bag (looked for "
                    f"{base.rsplit('/', 1)[0]}/camera_info); the bag has: {listing}; name it with "
                    f"--{side}-info, or give the calibration in the config (camera.* with "
                    "vision_input.use_camera_info: false)")
    elif out["left"] is None or out["right"] is None:
        out = {"left": None, "right": None}
    return StereoTopics(left_image, right_image, out["left"], out["right"])
