"""What one prediction becomes on disk: mask, probability, overlay, JSON and GeoJSON files,
previews, plots, retention.
"""
