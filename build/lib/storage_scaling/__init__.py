"""storage_scaling: the companion code of the storage scaling-law book.

Codecs and compressed stores (what an image costs in bytes), GPU training from those stores,
scaling-law fits and storage-optimal allocation, the stylized multiresolution theory, and the
papermill + Jupyter Book pipeline that turns them into a book. See README.md for the module map.
"""

__version__ = "0.1.0"
