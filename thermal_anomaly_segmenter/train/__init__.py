"""The training wing: recipe tables, data, the Lightning task, run folders and the loop.
"""
