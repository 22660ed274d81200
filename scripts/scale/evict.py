#!/usr/bin/env python3
"""Evicts files' pages from the page cache (each argument a file or a folder of files), so
the next read of them is cold: the scale steps measure reads from disk, not from memory."""
import os
import sys

for root in sys.argv[1:]:
    files = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        if os.access(f, os.W_OK):
            os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
