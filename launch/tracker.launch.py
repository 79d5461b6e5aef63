"""Tracker: visual/observations + audio/features -> speakers, speakers/markers, speakers/image.

Runs with visual_features_node and audio_features_node (or a bag of their topics):
ros2 launch av_perception tracker.launch.py namespace:=robot_head publish_voices:=true \
    left_image:=/zed/left/image_rect_color left_info:=/zed/left/camera_info
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")
    default_config = os.path.join(share, "config", "tracker.yaml")
    left_image = LaunchConfiguration("left_image")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="ROS-params YAML file."),
        DeclareLaunchArgument("observations", default_value="visual/observations",
                              description="Visual observations topic (PointCloud2)."),
        DeclareLaunchArgument("features", default_value="audio/features",
                              description="Audio features topic (PointCloud2)."),
        DeclareLaunchArgument("left_image", default_value="stereo/left/image_raw",
                              description="Left image annotated into speakers/image."),
        DeclareLaunchArgument("left_info", default_value="stereo/left/camera_info",
                              description="Left CameraInfo topic."),
        DeclareLaunchArgument("publish_voices", default_value="false",
                              description="Publish /humans/voices/<id>/is_speaking."),
        Node(
            package="av_perception",
            executable="tracker_node",
            name="tracker_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("config"),
                {
                    "tracking.publish_voices": LaunchConfiguration("publish_voices"),
                },
            ],
            remappings=[
                ("visual/observations", LaunchConfiguration("observations")),
                ("audio/features", LaunchConfiguration("features")),
                ("stereo/left/image_raw", left_image),
                ("stereo/left/image_raw/compressed", [left_image, "/compressed"]),
                ("stereo/left/camera_info", LaunchConfiguration("left_info")),
            ],
        ),
    ])
