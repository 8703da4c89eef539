#!/usr/bin/env python3
"""Run a command and print `seconds peak_rss_kib`. Used by the bench scripts.

    measure.py CMD...        peak RSS of the whole process tree (getrusage(RUSAGE_CHILDREN):
                             the largest of the command and its descendants), e.g. for
                             `bash -c 'zstd -dc | cpio -t'` pipelines
    measure.py --own CMD...  the command's own peak (VmHWM, sampled every 20 ms), leaving
                             out programs it starts (subroot's mke2fs, debugfs, e2fsck)
"""
import resource, subprocess, sys, time

own = len(sys.argv) > 1 and sys.argv[1] == "--own"
cmd = sys.argv[2:] if own else sys.argv[1:]
start = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
hwm = 0
if own:
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
err = p.communicate()[1]
elapsed = time.monotonic() - start
if p.returncode != 0:
    sys.exit(f"benchmarked command failed ({p.returncode}): {' '.join(cmd)}\n"
             + err.decode(errors="replace")[-2000:])
rss = hwm if own else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{elapsed:.4f} {rss}")
