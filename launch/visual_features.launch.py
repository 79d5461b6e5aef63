"""Stereo visual front-end: image pairs -> visual/observations.

ros2 launch av_perception visual_features.launch.py namespace:=robot_head compressed:=true \
    left_image:=/zed/left/image_rect_color right_image:=/zed/right/image_rect_color \
    left_info:=/zed/left/camera_info right_info:=/zed/right/camera_info
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")
    default_config = os.path.join(share, "config", "visual_features.yaml")
    left_image = LaunchConfiguration("left_image")
    right_image = LaunchConfiguration("right_image")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="ROS-params YAML file."),
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
        Node(
            package="av_perception",
            executable="visual_features_node",
            name="visual_features_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("config"),
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
    ])
