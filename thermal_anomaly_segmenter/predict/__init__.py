"""Files in, files out: frames, folders and orthomosaics through the segmenter to the output files,
on one machine or over Dask workers.
"""
