"""Geometry of boxes, masks and keypoints shared by data, modeling and evaluation."""
