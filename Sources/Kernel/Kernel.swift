// The kernel's main line, read top to bottom like xv6's main.c: each step is one file.
// boot.S enters `kmain` on the BSP in long mode; SMP.swift brings every AP to `ap_main`.
//
// Build (from the package root; the ELF is .build-guest/x86_64-unknown-none-elf/release/Kernel):
//   swift build -c release --scratch-path .build-guest --triple x86_64-unknown-none-elf \
//     --toolset Resources/toolset.json --product Kernel
// Boot under QEMU (TCG), serial console on stdout:
//   Resources/boot-guest.sh -smp 4 -machine q35 -append "shutdown=5"
// With a NIC (virtio-net, UDP echo on port 7; Resources/virtio-net.md):
//   Resources/boot-guest.sh -smp 4 -- -device virtio-net-pci,netdev=n0,disable-legacy=on,mq=on,id=nic0 \
//     -netdev user,id=n0,hostfwd=udp:127.0.0.1:15555-:7
// Command-line keys: CommandLine.swift. What the host reads: smptop_abi.h, Inspect.swift.
// Locks and threads: LockCore.swift + SpinLock/TicketLock/RWLock/Mutex/
// Semaphore.swift, Sched.swift (threads, run queues, switch.S),
// TimerQueue.swift (per-lcpu deadlines), Workload.swift (`workload=`), sync_data.c.
//
// The host build compiles every guest file to nothing (SMP_GUEST is only defined by
// Resources/toolset.json), leaving the empty `Kernel.main` below.

#if SMP_GUEST
  import KernelSupport

  /// The BSP's 64-bit entry from boot.S: brings the machine up, starts the APs, then idles.
  @c func kmain() {
    Traps.install()  // IDT first: from here on no exception is silent
    LCPU.beginBootstrap()  // lcpu 0 record: BUSY while booting
    klock_static_init()  // static lock records (LOCK table)
    Console.initialize()
    BootInfo.read()  // multiboot: command line, memory map
    KernelCommandLine.parse()
    Buddy.start()  // page allocator, the heap on top of it, the churn's tables
    Console.log("smptop guest: cmdline \"\(cstring: abi_root_cmdline())\"")
    PIC.disable()
    CPUFeatures.detect()
    GDT.loadTSS(lcpu: 0)
    ACPI.discover()  // lcpus (MADT), LAPIC address, power-off port (FADT)
    LAPIC.enable()
    Timer.calibrate()
    Paging.protectStacks()  // guard pages under every stack
    Inspect.publish()  // root complete; magic written last
    SMP.startAPs()
    VirtioNet.start()  // PCI scan; virtio-net pairs owned by the online lcpus
    Timer.start()
    LCPU.becomeOnline()  // BSP IDLE
    LCPU.bootstrapDone()  // stage RUNNING
    Workload.start()  // kernel threads exercising the locks (workload=)
    LCPU.idleLoop()
  }
#endif

/// The executable's entry point on the host: an empty stub (the kernel starts at `kmain`).
@main struct Kernel {
  /// Does nothing; SwiftPM needs a `main` for the executable target.
  static func main() {}
}
