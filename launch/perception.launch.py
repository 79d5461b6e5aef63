"""Every stage in one process: sound card (or WAV) + stereo images -> speakers.

ros2 launch av_perception perception.launch.py device:=hw:1 compressed:=true \
    left_image:=/zed/left/image_rect_color right_image:=/zed/right/image_rect_color
ros2 launch av_perception perception.launch.py input_file:=/data/talk.wav
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")
    default_config = os.path.join(share, "config", "perception.yaml")
    left_image = LaunchConfiguration("left_image")
    right_image = LaunchConfiguration("right_image")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="ROS-params YAML file."),
        DeclareLaunchArgument("device", default_value="",
                              description="Sound card (name or index; empty = default)."),
        DeclareLaunchArgument("input_file", default_value="",
                              description="Play this 2-channel WAV file instead of capturing."),
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
            executable="perception_node",
            name="perception_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("config"),
                {
                    "capture.device": LaunchConfiguration("device"),
                    "capture.input_file": LaunchConfiguration("input_file"),
                    "vision_input.compressed": LaunchConfiguration("compressed"),
                    "tracking.publish_voices": LaunchConfiguration("publish_voices"),
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
    ])
