"""Data sets: the one manifest schema, samplers, tensor transforms, importers and synthetic worlds.

Nothing here knows about models; media decoding is delegated to :mod:`chronoclip.io`.
"""
