"""Trax: an unattended media-transcription queue."""

from traxd import logging as _logging

_logging.configure("warning")
