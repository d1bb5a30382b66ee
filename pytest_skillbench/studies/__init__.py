"""Behaviour studies beside the pass rates: drift, checkpoint trajectory and loss vs quality, the generality
probe, pairwise / rubric judging against the base (``behaviour`` gathers their report sections)."""
