import InspectABI
import Inspector
import Testing

/// The recorder keeps the bytes the snapshot engine decoded (`keepsBytes`), so a frame is read
/// once and replays to the records the live snapshot saw.
struct RecorderBytesTests {
  /// A live image whose lcpu record 2 is caught mid-update by the first batch read (odd sequence
  /// word and a half-written field in the table bytes, odd sequence word on its own), and is
  /// written by the time it is read again.
  final class CaughtWriting: GuestMemory {
    let kind = MemorySourceKind.sharedRAM
    let isLive = true
    let image: [UInt64: [UInt8]]
    let record: UInt64
    /// The record's bytes as the writer left them halfway.
    let half: [UInt8]
    private var tableReads = 0
    private var wordReads = 0

    init(image: [UInt64: [UInt8]], record: UInt64, half: [UInt8]) {
      self.image = image
      self.record = record
      self.half = half
    }

    func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
      ranges.map { range in
        for (base, bytes) in image
        where range.address >= base && range.address + UInt64(range.count) <= base + UInt64(bytes.count) {
          let start = Int(range.address - base)
          var out = Array(bytes[start..<start + range.count])
          if range.address == record && range.count == 8 {
            wordReads += 1
            if wordReads <= 2 { out = Images.bytes(UInt64(3)) }  // before and after the batch
          } else if range.address == base && range.count == bytes.count && base == Images.tableAddress {
            tableReads += 1
            if tableReads == 1 {
              let offset = Int(record - base)
              out.replaceSubrange(offset..<offset + half.count, with: half)
            }
          }
          return .success(out)
        }
        return .failure(GuestMemoryError(.outOfRange, range, "outside the image"))
      }
    }
  }

  @Test func aFrameOfDecodedBytesReplaysToTheLiveRecords() throws {
    let stride = UInt64(MemoryLayout<smptop_lcpu>.stride)
    let lcpus = Images.lcpus(4)
    var half = lcpus[2]
    half.seq = 3
    half.irq_timer = 0xdead
    let record = Images.tableAddress + 2 * stride
    let memory = CaughtWriting(
      image: [
        Images.rootAddress: Images.bytes(Images.root(lcpus: 4)),
        Images.tableAddress: Images.tableBytes(lcpus),
      ], record: record, half: Images.bytes(half))
    let engine = SnapshotEngine(memory: memory, rootAddress: Images.rootAddress)
    engine.keepsBytes = true
    let live = try engine.snapshot()
    #expect(live.lcpus.count == 4 && live.lcpus.allSatisfy { $0.consistency == .consistent })
    #expect(live.lcpus[2].irqTimer == 102, "the live reader read the torn record again")

    // The same ranges the engine reports it reads, each once.
    let kept = engine.decodedBytes
    #expect(kept.map(\.address) == engine.modelRanges.map(\.address))
    #expect(kept.map(\.bytes.count) == engine.modelRanges.map(\.count))
    // The table is the batch's read with the re-read record patched in: it replays consistent.
    let replay = SnapshotEngine(
      memory: RecordedMemory(frames: [.init(timeNanoseconds: live.timeNanoseconds, ranges: kept)]),
      rootAddress: Images.rootAddress)
    let replayed = try replay.snapshot()
    #expect(replayed.lcpus == live.lcpus)
    #expect(replayed.lcpus[2].irqTimer == 102)

    // Negative control: the batch's own table bytes (no patch) replay as a torn record.
    let table = try #require(kept.first { $0.address == Images.tableAddress })
    var unpatched = table.bytes
    let offset = Int(record - Images.tableAddress)
    unpatched.replaceSubrange(offset..<offset + Int(stride), with: Images.bytes(half))
    let torn = try SnapshotEngine(
      memory: RecordedMemory(frames: [
        .init(timeNanoseconds: 0, ranges: [kept[0], (Images.tableAddress, unpatched)])
      ]), rootAddress: Images.rootAddress
    ).snapshot()
    #expect(torn.lcpus[2].consistency == .inconsistent(retries: 0))
  }

  /// Without `keepsBytes` the engine keeps nothing (the dashboard's snapshots copy no bytes).
  @Test func bytesAreKeptOnlyWhenAsked() throws {
    let engine = SnapshotEngine(
      memory: Images.memory(root: Images.root(lcpus: 2), lcpus: Images.lcpus(2)),
      rootAddress: Images.rootAddress)
    _ = try engine.snapshot()
    #expect(engine.decodedBytes.isEmpty)
    engine.keepsBytes = true
    _ = try engine.snapshot()
    #expect(engine.decodedBytes.count == 2)
  }
}
