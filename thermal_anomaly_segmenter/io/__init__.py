"""The I/O wing: frames, their formats and validation, masks, datasets, atomic writes.
"""
