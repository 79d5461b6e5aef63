"""Live robot head: sound card + stereo camera -> speakers, one node per stage.

audio_features_node (sounddevice), visual_features_node (camera topics remapped),
tracker_node and, with fusion:=true, av_fusion_node.  Each node reads its own params
file, then the hardware profile (mics and audio/tracker thresholds; later files win).

ros2 launch av_perception robot.launch.py device:=hw:1 compressed:=true \
    left_image:=/zed/left/image_rect_color right_image:=/zed/right/image_rect_color \
    left_info:=/zed/left/camera_info right_info:=/zed/right/camera_info \
    profile:=$(ros2 pkg prefix av_perception)/share/av_perception/config/profile_dummy_head.yaml
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")

    def config(name):
        return os.path.join(share, "config", name)

    namespace = LaunchConfiguration("namespace")
    profile = LaunchConfiguration("profile")
    left_image = LaunchConfiguration("left_image")
    right_image = LaunchConfiguration("right_image")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the nodes and their topics."),
        DeclareLaunchArgument("profile", default_value=config("profile_two_mic_bar.yaml"),
                              description="Hardware profile params file (mics, thresholds)."),
        DeclareLaunchArgument("audio_config", default_value=config("audio_features.yaml"),
                              description="Params file of audio_features_node."),
        DeclareLaunchArgument("visual_config", default_value=config("visual_features.yaml"),
                              description="Params file of visual_features_node."),
        DeclareLaunchArgument("tracker_config", default_value=config("tracker.yaml"),
                              description="Params file of tracker_node."),
        DeclareLaunchArgument("fusion_config", default_value=config("av_fusion.yaml"),
                              description="Params file of av_fusion_node."),
        DeclareLaunchArgument("fusion", default_value="false",
                              description="Also run av_fusion_node (av_events clusters)."),
        DeclareLaunchArgument("device", default_value="",
                              description="Sound card (sounddevice name or index; empty = "
                                          "the system default)."),
        DeclareLaunchArgument("sample_rate", default_value="16000",
                              description="Capture sample rate (Hz) of the sound card."),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="Subscribe to <image>/compressed (CompressedImage)."),
        DeclareLaunchArgument("left_image", default_value="stereo/left/image_raw",
                              description="Left image topic (base name, without /compressed)."),
        DeclareLaunchArgument("right_image", default_value="stereo/right/image_raw",
                              description="Right image topic (base name, without /compressed)."),
        DeclareLaunchArgument("left_info", default_value="stereo/left/camera_info",
                              description="Left CameraInfo topic."),
        DeclareLaunchArgument("right_info", default_value="stereo/right/camera_info",
                              description="Right CameraInfo topic."),
        DeclareLaunchArgument("publish_voices", default_value="false",
                              description="Publish /humans/voices/<id>/is_speaking."),
        Node(
            package="av_perception",
            executable="audio_features_node",
            name="audio_features_node",
            namespace=namespace,
            output="screen",
            parameters=[
                LaunchConfiguration("audio_config"),
                profile,
                {
                    "capture.device": LaunchConfiguration("device"),
                    "capture.sample_rate": LaunchConfiguration("sample_rate"),
                },
            ],
        ),
        Node(
            package="av_perception",
            executable="visual_features_node",
            name="visual_features_node",
            namespace=namespace,
            output="screen",
            parameters=[
                LaunchConfiguration("visual_config"),
                profile,
                {
                    "vision_input.compressed": LaunchConfiguration("compressed"),
                },
            ],
            remappings=[
                ("stereo/left/image_raw", left_image),
                ("stereo/right/image_raw", right_image),
                ("stereo/left/image_raw/compressed", [left_image, "/compressed"]),
                ("stereo/right/image_raw/compressed", [right_image, "/compressed"]),
                ("stereo/left/camera_info", LaunchConfiguration("left_info")),
                ("stereo/right/camera_info", LaunchConfiguration("right_info")),
            ],
        ),
        Node(
            package="av_perception",
            executable="tracker_node",
            name="tracker_node",
            namespace=namespace,
            output="screen",
            parameters=[
                LaunchConfiguration("tracker_config"),
                profile,
                {
                    "tracker_input.compressed": LaunchConfiguration("compressed"),
                    "tracking.publish_voices": LaunchConfiguration("publish_voices"),
                },
            ],
            remappings=[
                ("stereo/left/image_raw", left_image),
                ("stereo/left/image_raw/compressed", [left_image, "/compressed"]),
                ("stereo/left/camera_info", LaunchConfiguration("left_info")),
            ],
        ),
        Node(
            package="av_perception",
            executable="av_fusion_node",
            name="av_fusion_node",
            namespace=namespace,
            output="screen",
            condition=IfCondition(LaunchConfiguration("fusion")),
            parameters=[LaunchConfiguration("fusion_config"), profile],
        ),
    ])
