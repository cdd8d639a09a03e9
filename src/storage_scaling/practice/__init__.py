"""For practitioners: plan, pilot and compress your own image dataset (``storage-scaling plan |
pilot | compress``), on this machine or a Dask cluster."""
