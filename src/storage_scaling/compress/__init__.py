"""Compression: codecs (JPEG XL and friends via imagecodecs), quality metrics, compressed stores with
their size tables, which distance fills a storage budget, and the compression chapter's tables.

Data flows one way: ``codecs`` and ``quality`` <- ``store`` and ``budget`` <- ``compression_tables``.
"""
