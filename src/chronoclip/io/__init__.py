"""Media readers and writers: video (PyAV), audio (soundfile / PyAV), images (Pillow).

Nothing in this package knows about data sets, manifests or models.
"""
