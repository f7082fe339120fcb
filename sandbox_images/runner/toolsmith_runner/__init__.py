"""The in-container test runner of the toolsmith sandbox.

Process layout inside one container (one job per container, then the container is discarded):

    runner (PID 1, non-dumpable)      reads the job on stdin, runs pytest in-process, writes the
      │                               report, framed with the job's nonce, to the container stdout
      └── worker (fresh interpreter)  holds the tool's code; receives arguments, returns results

The tool's code never runs in the runner, so it cannot reach pytest, the tests, their frames or the
report channel; the host trusts only nonce-framed records and recomputes the verdict from them.
"""

READY = b"TOOLSMITH-READY\n"
FRAME = "TOOLSMITH"
