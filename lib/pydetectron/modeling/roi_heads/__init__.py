"""RoI heads: proposal sampling, RoI feature pooling, box heads and post-processing."""
