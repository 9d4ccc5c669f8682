"""Machine probes the benchmarks share: CPU other processes use meanwhile (so a loaded machine
shows in the figures) and a process's peak resident memory. Linux /proc; None elsewhere."""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path


def busy_cpu_s():
    """Seconds of CPU all processes have used (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


class OtherCPU:
    """Cores other processes used while the `with` block ran (None off Linux)."""

    def __enter__(self):
        self.busy, self.own, self.t0 = busy_cpu_s(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall, busy = time.perf_counter() - self.t0, busy_cpu_s()
        self.cores = (None if self.busy is None or busy is None else
                      max(0.0, busy - self.busy - (time.process_time() - self.own)) / wall)


def peak_rss_gb():
    """Linux VmHWM (peak resident set) of this process, GB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def status_mb(field: str) -> float:
    """A /proc/self/status memory field (VmRSS, VmHWM, ...) in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Set VmHWM to the current RSS (Linux), so the peak counts only what follows; False when
    the kernel does not allow it (the peak then counts from the process start)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb(reset: bool) -> float:
    """The peak RSS in MB since `reset_peak_rss` (when it returned True), else since start."""
    return status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
