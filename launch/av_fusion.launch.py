"""Audio-visual clustering: audio/features + visual/observations -> av_events.

ros2 launch av_perception av_fusion.launch.py namespace:=robot_head \
    audio_features:=/robot_head/audio/features visual_observations:=/robot_head/visual/observations
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")
    default_config = os.path.join(share, "config", "av_fusion.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("config", default_value=default_config,
                              description="ROS-params YAML file."),
        DeclareLaunchArgument("audio_features", default_value="audio/features",
                              description="Topic of the audio front-end's feature clouds."),
        DeclareLaunchArgument("visual_observations", default_value="visual/observations",
                              description="Topic of the visual front-end's observation clouds."),
        DeclareLaunchArgument("frame_id", default_value="stereo_left_optical_frame",
                              description="frame_id of av_events until observations carry one."),
        Node(
            package="av_perception",
            executable="av_fusion_node",
            name="av_fusion_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[
                LaunchConfiguration("config"),
                {
                    "fusion_input.frame_id": LaunchConfiguration("frame_id"),
                },
            ],
            remappings=[
                ("audio/features", LaunchConfiguration("audio_features")),
                ("visual/observations", LaunchConfiguration("visual_observations")),
            ],
        ),
    ])
