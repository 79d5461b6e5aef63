"""A recording played into the per-stage nodes, with simulated time.

``av-perception replay BAG --no-pipeline`` publishes the bag's stereo pair
(stereo/{left,right}/image_raw[/compressed] + camera_info, bag stamps), audio/features
(the binaural front-end over the bag's audio) and /clock; this launch file runs
visual_features_node and tracker_node on them with use_sim_time, and starts the replay
itself when bag:= is given (ros2 run av_perception av-perception replay ...).  Without
bag:=, start the replay in another terminal.  (``av-perception replay BAG`` alone runs the
same two nodes in its own process: one command, no launch file needed.)

ros2 launch av_perception replay.launch.py bag:=/data/scene/bag compressed:=true rate:=0.5
rviz2 -d $(ros2 pkg prefix av_perception)/share/av_perception/rviz/av_perception.rviz
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import FindExecutable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("av_perception")

    def config(name):
        return os.path.join(share, "config", name)

    namespace = LaunchConfiguration("namespace")
    profile = LaunchConfiguration("profile")
    bag = LaunchConfiguration("bag")
    return LaunchDescription([
        DeclareLaunchArgument("bag", default_value="",
                              description="rosbag2 to replay (empty: run only the nodes)."),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback speed."),
        DeclareLaunchArgument("loop", default_value="false", description="Replay forever."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the nodes and of the replay."),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="The bag's images are CompressedImage."),
        DeclareLaunchArgument("profile", default_value=config("profile_two_mic_bar.yaml"),
                              description="Hardware profile params file (mics, thresholds)."),
        DeclareLaunchArgument("visual_config", default_value=config("visual_features.yaml"),
                              description="Params file of visual_features_node."),
        DeclareLaunchArgument("tracker_config", default_value=config("tracker.yaml"),
                              description="Params file of tracker_node."),
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
                    "use_sim_time": True,
                    "vision_input.compressed": LaunchConfiguration("compressed"),
                },
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
                    "use_sim_time": True,
                    "tracker_input.compressed": LaunchConfiguration("compressed"),
                },
            ],
        ),
        ExecuteProcess(
            cmd=[FindExecutable(name="ros2"), "run", "av_perception", "av-perception",
                 "replay", bag, "--no-pipeline", ["--namespace=", namespace],
                 ["--rate=", LaunchConfiguration("rate")], ["--config=", profile],
                 ["--delay=", "3.0"]],
            output="screen",
            condition=IfCondition(PythonExpression(
                ["'", bag, "' != '' and '", LaunchConfiguration("loop"), "' != 'true'"])),
        ),
        ExecuteProcess(
            cmd=[FindExecutable(name="ros2"), "run", "av_perception", "av-perception",
                 "replay", bag, "--no-pipeline", "--loop", ["--namespace=", namespace],
                 ["--rate=", LaunchConfiguration("rate")], ["--config=", profile],
                 ["--delay=", "3.0"]],
            output="screen",
            condition=IfCondition(PythonExpression(
                ["'", bag, "' != '' and '", LaunchConfiguration("loop"), "' == 'true'"])),
        ),
    ])
