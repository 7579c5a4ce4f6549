"""Region proposal network: anchors, heads, proposals and targets."""
