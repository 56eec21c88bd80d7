"""Running many files: inputs (paths, folders, URLs) into result rows on local processes or a
Dask cluster (:func:`run` with :class:`BatchOptions`), and the reports they are written to.
What the command line's ``predict`` and ``timeline`` with several files call.

>>> from ser_core.batch import BatchOptions, run
>>> for row in run(["recordings/"], BatchOptions(jobs=2)):
...     print(row["path"], row.get("emotion") or row["error"])
"""

from .inputs import find_inputs
from .job import BatchOptions
from .runner import run

__all__ = ["BatchOptions", "run", "find_inputs"]
