import Foundation
import InspectABI
import Inspector
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// ABI v3's lcpu fields, and the live seqlock reader against a real concurrent writer.
struct SeqlockTests {
  @Test func v3SchedulerCountersAreDecoded() throws {
    var lcpus = Images.lcpus(2)
    lcpus[1].runq_checks = 1234
    lcpus[1].runq_check_failures = 5
    lcpus[1].sleep_in_atomic = 7
    let engine = SnapshotEngine(
      memory: Images.memory(root: Images.root(lcpus: 2), lcpus: lcpus), rootAddress: Images.rootAddress)
    let snap = try engine.snapshot()
    #expect(snap.guest?.abiVersion == ABIDecoder.supportedVersion)
    #expect(
      snap.lcpus[0].scheduler == SchedulerCounters(runqChecks: 0, runqCheckFailures: 0, sleepInAtomic: 0))
    #expect(
      snap.lcpus[1].scheduler == SchedulerCounters(runqChecks: 1234, runqCheckFailures: 5, sleepInAtomic: 7))
    // And in the JSON a script reads.
    let json = String(decoding: try JSONEncoder().encode(snap.lcpus[1]), as: UTF8.self)
    #expect(json.contains("\"runqCheckFailures\":5"))
  }

  /// A thread rewrites lcpu record 0 in a shared file mapping as the guest does (seq odd,
  /// every field and the panic record set to one value, seq even) while snapshots are read
  /// live from the same file: every record accepted as consistent must be untorn.
  @Test func aLiveReaderNeverAcceptsATornRecordFromAConcurrentWriter() throws {
    let path = NSTemporaryDirectory() + "smptop-seqlock-\(getpid())"
    let size = Int(Images.tableAddress) + 4 * MemoryLayout<smptop_lcpu>.stride
    var image = [UInt8](repeating: 0, count: size)
    let root = Images.bytes(Images.root(lcpus: 2))
    var lcpus = Images.lcpus(2)
    lcpus[0].irq_timer = 0  // record 0 starts all zero: every untorn copy has equal fields
    lcpus[0].ticks = 0
    lcpus[0].cycles_idle = 0
    let table = Images.tableBytes(lcpus)
    image.replaceSubrange(Int(Images.rootAddress)..<Int(Images.rootAddress) + root.count, with: root)
    image.replaceSubrange(Int(Images.tableAddress)..<Int(Images.tableAddress) + table.count, with: table)
    #expect(FileManager.default.createFile(atPath: path, contents: Data(image)))
    defer { try? FileManager.default.removeItem(atPath: path) }

    let fd = open(path, O_RDWR)
    try #require(fd >= 0)
    defer { close(fd) }
    let mapping = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
    try #require(mapping != MAP_FAILED)
    defer { munmap(mapping, size) }
    let writer = Writer(record: mapping + Int(Images.tableAddress))

    let memory = try SharedMemory(path: path)
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    engine.retries = 2
    let thread = Thread { writer.run(rounds: 400_000) }
    thread.start()
    var accepted = 0
    var refused = 0
    var torn: [String] = []
    while !writer.done.load(ordering: .acquiring) {
      let snap = try engine.snapshot()
      let r = snap.lcpus[0]
      guard r.consistency == .consistent else {
        refused += 1
        continue
      }
      accepted += 1
      let values = [
        r.irqTimer, r.ticks, r.cyclesBusy, r.workLoops, r.panic?.rip ?? 0, r.panic?.backtrace.last ?? 0,
      ]
      let untorn =
        r.panic == nil ? Set(values) == [0] : Set(values).count == 1 && r.panic?.consistency == .consistent
      if !untorn {
        torn.append("\(values) panic \(String(describing: r.panic?.consistency))")
      }
    }
    #expect(torn.isEmpty, "accepted torn records: \(torn.prefix(5))")
    #expect(accepted > 0, "no consistent copy at all (\(refused) refused)")
  }
}

/// The guest's writer protocol on lcpu record 0 of a shared mapping.
final class Writer: @unchecked Sendable {
  /// Set once the writer has finished.
  let done = Atomic<Bool>(false)
  /// Where lcpu record 0 lies in the writer's mapping (only the writer thread touches it).
  let record: UnsafeMutableRawPointer

  /// A writer of the record at `record`.
  init(record: UnsafeMutableRawPointer) { self.record = record }

  /// Byte offset of a field of smptop_lcpu.
  static func offset(_ key: PartialKeyPath<smptop_lcpu>) -> Int {
    MemoryLayout<smptop_lcpu>.offset(of: key) ?? 0
  }

  /// Rewrites the record `rounds` times, then sets `done`.
  func run(rounds: UInt64) {
    let seq = record.assumingMemoryBound(to: UInt64.self)
    let panic = Self.offset(\smptop_lcpu.panic)
    let panicSeq = panic + (MemoryLayout<smptop_panic>.offset(of: \smptop_panic.seq) ?? 0)
    let fields =
      [\smptop_lcpu.irq_timer, \smptop_lcpu.ticks, \smptop_lcpu.cycles_busy, \smptop_lcpu.work_loops].map(
        Self.offset)
      + [panic + (MemoryLayout<smptop_panic>.offset(of: \smptop_panic.rip) ?? 0)]
      + (0..<Int(SMPTOP_PANIC_FRAMES)).map {
        panic + (MemoryLayout<smptop_panic>.offset(of: \smptop_panic.backtrace) ?? 0) + 8 * $0
      }
    let frames = panic + (MemoryLayout<smptop_panic>.offset(of: \smptop_panic.frames) ?? 0)
    for n in 1...rounds {
      seq.pointee &+= 1
      atomicMemoryFence(ordering: .sequentiallyConsistent)
      (record + panicSeq).storeBytes(of: n * 2 - 1, as: UInt64.self)
      for f in fields { (record + f).storeBytes(of: n, as: UInt64.self) }
      (record + frames).storeBytes(of: UInt64(SMPTOP_PANIC_FRAMES), as: UInt64.self)
      (record + panicSeq).storeBytes(of: n * 2, as: UInt64.self)
      atomicMemoryFence(ordering: .releasing)
      seq.pointee &+= 1
    }
    done.store(true, ordering: .releasing)
  }
}
