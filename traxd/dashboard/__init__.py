"""`traxctl dashboard`: a local page over the queue (read through queue/reads, written through the store)."""
