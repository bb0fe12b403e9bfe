"""bisegunet_ros: BiSegUNet semantic segmentation for ROS 2 (runtime; no torch here)."""
