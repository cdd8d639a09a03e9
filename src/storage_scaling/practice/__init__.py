"""For practitioners: plan, pilot and compress your own image dataset (``storage-scaling plan |
pilot | compress``), on this machine or a Dask cluster."""


class Failed(Exception):
    """The work ran but did not give what was asked (a compression over its budget, no image
    written): the command line prints it as one line and exits with status 1."""
