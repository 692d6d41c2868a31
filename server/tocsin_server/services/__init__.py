"""Domain services: no HTTP here. They take a session or the hot read path and raise domain errors."""
