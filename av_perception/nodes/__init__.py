"""Thin rclpy nodes: message -> core/pipeline call -> message."""
