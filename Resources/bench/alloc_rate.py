#!/usr/bin/env python3
"""Allocations per second per lcpu from the guest's own counters.

Boots the guest (alloc.churn=full), samples smptop_alloc_record.lcpu_allocs and
smptop_alloc_churn_tsc through the gdbstub at T1 and T2 seconds (gdb stops the VM for each
sample, then detaches), and prints the rates plus the accounting check of the last sample:
  Resources/bench/alloc_rate.py SMP MODE [T1 T2]
"""
import re, subprocess, sys, time

smp, mode = int(sys.argv[1]), sys.argv[2]
t1, t2 = (float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (3.0, 8.0)
port = 12500 + smp * 10 + (mode == "lockfree")
kernel = ".build-guest/x86_64-unknown-none-elf/release/Kernel"
q = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-smp", str(smp), "-m", "128M", "-kernel", kernel,
    "-append", f"alloc={mode} alloc.churn=full {' '.join(sys.argv[5:])} quiet", "-display", "none", "-serial", f"file:/tmp/alloc_rate_{port}.log",
    "-monitor", "none", "-no-reboot", "-gdb", f"tcp::{port}"])

def sample():
    out = subprocess.run(["gdb", "-batch", "-ex", f"target remote :{port}", "-ex", "set print pretty off",
        "-ex", "p smptop_root.tsc_per_ms", "-ex", "p smptop_alloc_record", "-ex", "p smptop_alloc_orders",
        "-ex", "p smptop_alloc_churn_tsc", kernel], capture_output=True, text=True).stdout
    vals = re.findall(r"^\$\d+ = (.*)$", out, re.M)
    def arr(s, name):
        m = re.search(name + r" = \{([^}]*)\}", s)
        nums = []
        for part in m.group(1).split(","):
            part = part.strip()
            r = re.match(r"(\d+) <repeats (\d+) times>", part)
            nums += [int(r.group(1))] * int(r.group(2)) if r else [int(part)]
        return nums
    rec = vals[1]
    field = lambda n: int(re.search(r"\b" + n + r" = (\d+)", rec).group(1))
    orders = re.findall(r"\{order = (\d+), block_bytes = (\d+), free_blocks = (\d+), used_blocks = (\d+), allocs = (\d+), frees = (\d+), splits = (\d+), merges = (\d+), failures = (\d+), cas_retries = (\d+)\}", vals[2])
    churn = [int(x.strip().split()[0]) for x in vals[3].strip("{}").split(",") if x.strip() and not x.strip().startswith("0 <")]
    return dict(tsc=int(vals[0]), allocs=arr(rec, "lcpu_allocs"), frees=arr(rec, "lcpu_frees"), rec=rec,
                field=field, orders=[tuple(map(int, o)) for o in orders], churn=churn, t=time.time())

start = time.time()
time.sleep(t1)
a = sample()
time.sleep(max(0, t2 - (time.time() - start)))
b = sample()
q.terminate(); q.wait()
wall = b["t"] - a["t"]
print(f"smp={smp} mode={mode} window={wall:.1f}s")
for i in range(smp):
    d = b["allocs"][i] - a["allocs"][i]
    ct = (b["churn"][i] - a["churn"][i]) / b["tsc"] / 1000 if i < len(b["churn"]) else 0
    print(f"  lcpu {i}: {d} allocs, {d / wall:,.0f}/s wall, {d / ct if ct else 0:,.0f}/s of churn time")
tot = sum(b["allocs"][i] - a["allocs"][i] for i in range(smp))
f = b["field"]
free = sum(o[2] << o[0] for o in b["orders"]); used = sum(o[3] << o[0] for o in b["orders"])
print(f"  total {tot / wall:,.0f}/s; checks {f('churn_checks')} failures {f('churn_failures')}; pages managed "
      f"{f('pages_managed')} free {f('pages_free')} start {f('start_free_pages')}; free+used blocks = {free}+{used} = {free + used}")
print(f"  heap allocs {f('heap_allocs')} frees {f('heap_frees')} in use {f('heap_bytes_in_use')}; "
      f"cas_retries {[o[9] for o in b['orders']]}; failures {[o[8] for o in b['orders']]}")
