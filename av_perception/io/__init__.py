"""Sources and sinks without ROS: audio devices, WAV files, rosbag2, parameter files."""
