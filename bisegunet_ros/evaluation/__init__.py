"""Rosbag evaluation: bags in and out (bag_io), offline and live measurement (evaluate_bag,
live_replay) and the reports they write (report). Needs rosbags, matplotlib and tqdm (the
`eval` extra); the node never imports this package."""
