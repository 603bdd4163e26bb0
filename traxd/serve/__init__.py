"""OpenAI's transcription API served from the durable queue (`traxd run --serve`, `traxctl serve`)."""
