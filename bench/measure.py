#!/usr/bin/env python3
"""Run a command and print `seconds peak_rss_kib` (peak RSS of the command's process tree
leaves, as getrusage(RUSAGE_CHILDREN) reports it). Used by the bench scripts."""
import resource, subprocess, sys, time

start = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.monotonic() - start
if rc != 0:
    sys.exit(f"benchmarked command failed ({rc}): {' '.join(sys.argv[1:])}")
print(f"{elapsed:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
