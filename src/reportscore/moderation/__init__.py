"""What moderators see and decide: the review queue, the reasons beside each score, and recorded outcomes."""
