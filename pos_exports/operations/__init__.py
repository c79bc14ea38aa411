"""Schedules and sensors: when things run without anyone clicking."""
