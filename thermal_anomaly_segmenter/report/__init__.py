"""The reporting wing: a prediction's files, overlay, JSON report, GeoJSON and plots.
"""
