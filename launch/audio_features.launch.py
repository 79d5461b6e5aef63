"""Binaural audio front-end on a live sound card.

ros2 launch av_perception audio_features.launch.py device:=pulse namespace:=robot_head
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")
    default_config = os.path.join(share, "config", "audio_features.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="ROS-params YAML file."),
        DeclareLaunchArgument("device", default_value="",
                              description="Input device name or index (empty: default)."),
        DeclareLaunchArgument("input_file", default_value="",
                              description="Play this WAV in real time instead of the device."),
        DeclareLaunchArgument("frame_id", default_value="stereo_left_optical_frame",
                              description="Frame of the microphone positions."),
        Node(
            package="av_perception",
            executable="audio_features_node",
            name="audio_features_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("config"),
                {
                    "capture.device": LaunchConfiguration("device"),
                    "capture.input_file": LaunchConfiguration("input_file"),
                    "output.frame_id": LaunchConfiguration("frame_id"),
                },
            ],
        ),
    ])
