# The baseline for `smptop bench`: gdb (its Python API) doing the same work as one smptop
# stopped snapshot, over the same gdbstub: all registers of every vCPU plus the given memory
# ranges, with gdb's register and memory caches flushed each round.
#
# Run by smptop bench as:
#   gdb -nx -batch -ex 'source gdb_baseline.py'
# with SMPTOP_GDB (socket path or host:port), SMPTOP_RANGES (JSON [[addr, len], ...]) and
# SMPTOP_ROUNDS in the environment. Prints one JSON line: {"samples_us": [...]}; detaches
# with the VM stopped, as it found it.
import json
import os
import time

import gdb

target = os.environ["SMPTOP_GDB"]
ranges = json.loads(os.environ.get("SMPTOP_RANGES", "[]"))
rounds = int(os.environ.get("SMPTOP_ROUNDS", "50"))

gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("target remote " + target, to_string=True)
inferior = gdb.selected_inferior()
threads = sorted(inferior.threads(), key=lambda t: t.num)
names = [r.name for r in gdb.selected_frame().architecture().registers()]

samples = []
for _ in range(rounds):
    gdb.execute("flushregs", to_string=True)
    gdb.execute("maint flush dcache", to_string=True)
    start = time.perf_counter()
    for thread in threads:
        thread.switch()
        frame = gdb.selected_frame()
        for name in names:
            frame.read_register(name)
    for address, length in ranges:
        inferior.read_memory(address, length)
    samples.append((time.perf_counter() - start) * 1e6)

print(json.dumps({"samples_us": samples, "threads": len(threads), "registers": len(names)}))
gdb.execute("detach", to_string=True)
