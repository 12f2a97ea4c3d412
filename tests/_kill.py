"""Kill a real subprocess mid-run, for the resume tests of sweeps and training."""

import signal
import subprocess
import sys


def run_and_kill(script: str, arg: str, *, at: str, **popen) -> list[str]:
    """Runs ``python -c script arg``, reads its stdout line by line, and SIGKILLs it
    as soon as a line starts with ``at``; returns the lines read."""
    lines = []
    cmd = [sys.executable, "-c", script, arg]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **popen) as proc:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith(at):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return lines
