"""Clips: video files (PyAV), optical flow (OpenCV), chunks and cross-fades, the temporal term. The only place
PyAV and OpenCV are imported."""
