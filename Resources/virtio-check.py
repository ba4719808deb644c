#!/usr/bin/env python3
"""Reads the guest's VIRTIO_DEV and VIRTQ tables (smptop_abi.h) through QMP and compares
each queue with QEMU's own view (x-query-virtio-queue-status) at a stopped VM.

  Resources/virtio-check.py QMP_SOCKET [ELF] [--leave-stopped]

The VM must run with `-qmp unix:QMP_SOCKET,server=on,wait=off` and the NIC with an `id=`.
Guest memory is read with QMP pmemsave (into a temporary file on this host).
"""
import json, os, socket, struct, subprocess, sys, tempfile

ROLE = {0: "rx", 1: "tx", 2: "ctrl"}
TABLES_OFF, TABLE_COUNT_OFF = 432, 424  # offsetof(struct smptop_root, tables / table_count)
LCPU_IRQ_DEVICE_OFF = 56  # offsetof(struct smptop_lcpu, irq_device)
VIRTQ_FMT = "<Q10I10Q"  # struct smptop_virtq, 128 bytes
DEV_FMT = "<Q32sIIQII8sIIQ"  # struct smptop_virtio_dev, 88 bytes


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, command, **args):
        self.f.write(json.dumps({"execute": command, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{command}: {r['error']['desc']}")

    def read(self, addr, size):
        with tempfile.NamedTemporaryFile(delete=False) as t:
            path = t.name
        try:
            self.cmd("pmemsave", val=addr, size=size, filename=path)
            return open(path, "rb").read()
        finally:
            os.unlink(path)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    leave = "--leave-stopped" in sys.argv
    elf = args[1] if len(args) > 1 else ".build-guest/x86_64-unknown-none-elf/release/Kernel"
    root = None
    for line in subprocess.run(["nm", elf], capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[2] == "smptop_root":
            root = int(p[0], 16)
    q = QMP(args[0])
    q.cmd("stop")
    try:
        r = q.read(root, 704)
        count = struct.unpack_from("<I", r, TABLE_COUNT_OFF)[0]
        def table(k):
            return struct.unpack_from("<QII", r, TABLES_OFF + 16 * k) if k < count else (0, 0, 0)
        da, dc, ds = table(7)
        qa, qc, qs = table(8)
        print(f"VIRTIO_DEV table: addr {da:#x} count {dc} stride {ds}; VIRTQ table: addr {qa:#x} count {qc} stride {qs}")
        paths = [d["path"] for d in q.cmd("x-query-virtio") if d.get("name") == "virtio-net"]
        la, lc, ls = table(0)
        irqs = [struct.unpack_from("<Q", q.read(la + i * ls + LCPU_IRQ_DEVICE_OFF, 8))[0] for i in range(lc)]
        print("lcpu irq_device:", " ".join(f"{i}:{n}" for i, n in enumerate(irqs)))
        for p in paths:
            st = q.cmd("x-query-virtio-status", path=p)
            status = st.get("status")
            if isinstance(status, dict):
                status = "|".join(x.split(":")[0].replace("VIRTIO_CONFIG_S_", "") for x in status.get("statuses", []))
            print(f"qemu {p}: status {status} "
                  f"num-vqs {st.get('num-vqs')} isr {st.get('isr')} broken {st.get('broken')}")
        for i in range(dc):
            (seq, name, bdf, devid, feat, pairs, nq, mac, link, msix, first) = struct.unpack(DEV_FMT, q.read(da + i * ds, 88))
            nm = name.split(b"\0")[0].decode()
            print(f"dev {i}: {nm} bdf {bdf >> 8:02x}:{(bdf >> 3) & 31:02x}.{bdf & 7} "
                  f"id {devid} features {feat:#x} pairs {pairs} queues {nq} mac {':'.join('%02x' % b for b in mac[:6])} "
                  f"link {link} msix {msix} first_queue {first}")
        hdr = ("q  role lcpu size free  avail   used  lastu nOff  packets    bytes err drop  kicks   irqs  polls"
               " | qemu: last-avail shadow used-idx inuse  desc-addr-match")
        print(hdr)
        for i in range(qc):
            v = struct.unpack(VIRTQ_FMT, q.read(qa + i * qs, 128))
            (seq, dev, idx, role, lcpu, size, free, avail, used, lastu, noff,
             pk, by, er, dr, ki, irq, po, desca, availa, useda) = v
            qemu = ""
            if paths:
                try:
                    s = q.cmd("x-query-virtio-queue-status", path=paths[dev], queue=idx)
                    match = "yes" if s["vring-desc"] == desca and s["vring-avail"] == availa and s["vring-used"] == useda else "NO"
                    qemu = (f" | {s['last-avail-idx']:10} {s['shadow-avail-idx']:6} {s['used-idx']:8} {s['inuse']:5}  {match}"
                            f"{'' if s['used-idx'] == used % 65536 else ' (used differs)'}")
                except RuntimeError as e:
                    qemu = f" | {e}"
            print(f"{idx:<2} {ROLE.get(role, role):4} {lcpu:4} {size:4} {free:4} {avail:6} {used:6} {lastu:6} {noff:4} "
                  f"{pk:8} {by:8} {er:3} {dr:4} {ki:6} {irq:6} {po:6}{qemu}")
    finally:
        if not leave:
            q.cmd("cont")


if __name__ == "__main__":
    main()
