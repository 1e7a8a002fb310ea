"""instruct-pipeline: the library. Pure, testable stages over records; no Prefect imports here."""

import os
import sys

__version__ = "0.1.0"

# Arrow's buffers from the C library's allocator, not Arrow's bundled mimalloc: on the writer's pattern
# (an id range read from every unit, sorted, written, dropped) mimalloc kept 3-6x the live Arrow memory
# resident (900 MB for 143 MB live at 200k documents; the system allocator: about 580 MB). The
# environment variable acts when pyarrow starts (here, and in every worker process, which inherits it);
# a pyarrow already started gets the pool set. A user's own ARROW_DEFAULT_MEMORY_POOL wins.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    if "pyarrow" in sys.modules:
        import pyarrow as _pa

        _pa.set_memory_pool(_pa.system_memory_pool())
