"""The parts behind the batch API and `trax batch`: inputs, the run, the result."""
