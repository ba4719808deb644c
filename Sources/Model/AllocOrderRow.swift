/// One buddy order as every output shows it: the alloc pane and the text snapshot.
public struct AllocOrderRow: Sendable, Identifiable {
  /// The order (the row's identity).
  public var id: UInt64 { record.order }
  /// The record the row was made from.
  public var record: AllocOrderRecord
  /// The interval's rates, when two snapshots were compared.
  public var rates: AllocOrderRates?
  /// Bytes in free blocks.
  public var freeBytes: UInt64
  /// Bytes in used blocks.
  public var usedBytes: UInt64
  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of an order row.
  public struct Cells: Sendable, Equatable, Codable {
    /// The order.
    public var order: String
    /// Its block size.
    public var block: String
    /// "used/free" blocks.
    public var usedFree: String
    /// Bytes in free blocks.
    public var free: String
    /// Bytes in used blocks.
    public var used: String
    /// Allocations per second.
    public var allocsPerSecond: String
    /// Frees per second.
    public var freesPerSecond: String
    /// Failed allocations per second.
    public var failuresPerSecond: String
    /// Compare-and-swap retries per second.
    public var casRetriesPerSecond: String
    /// Allocations since boot.
    public var allocs: String
    /// Frees since boot.
    public var frees: String
    /// Splits since boot.
    public var splits: String
    /// Merges since boot.
    public var merges: String
    /// Failed allocations since boot.
    public var failures: String
    /// Compare-and-swap retries since boot.
    public var casRetries: String
  }

  /// The rows of `snapshot`'s allocator orders, in record order (none without an allocator).
  public static func rows(_ snapshot: Snapshot, rates: SnapshotRates?, style: CellStyle = .unicode)
    -> [AllocOrderRow]
  {
    var rateByOrder: [UInt64: AllocOrderRates] = [:]
    for r in rates?.allocOrders ?? [] where rateByOrder[r.order] == nil { rateByOrder[r.order] = r }
    return (snapshot.allocator?.orders ?? []).map {
      AllocOrderRow($0, rates: rateByOrder[$0.order], style: style)
    }
  }

  /// One row.
  public init(_ o: AllocOrderRecord, rates rate: AllocOrderRates?, style: CellStyle) {
    record = o
    rates = rate
    freeBytes = o.freeBlocks &* o.blockBytes
    usedBytes = o.usedBlocks &* o.blockBytes
    func count(_ n: UInt64) -> String { Format.human(Double(n)) }
    cells = Cells(
      order: String(o.order), block: Format.bytes(o.blockBytes), usedFree: "\(o.usedBlocks)/\(o.freeBlocks)",
      free: Format.bytes(freeBytes), used: Format.bytes(usedBytes),
      allocsPerSecond: style.rate(rate?.allocsPerSecond), freesPerSecond: style.rate(rate?.freesPerSecond),
      failuresPerSecond: style.rate(rate?.failuresPerSecond),
      casRetriesPerSecond: style.rate(rate?.casRetriesPerSecond), allocs: count(o.allocs),
      frees: count(o.frees),
      splits: count(o.splits), merges: count(o.merges), failures: count(o.failures),
      casRetries: count(o.casRetries))
  }

  /// The columns of the text table (the pane's titles).
  public static let columns: [TextColumn<Cells>] = [
    TextColumn(title: "ORDER", width: 5, left: false) { $0.order },
    TextColumn(title: "BLOCK", width: 6, left: false) { $0.block },
    TextColumn(title: "USED/FREE BLOCKS", width: 16, left: true) { $0.usedFree },
    TextColumn(title: "FREE", width: 6, left: false) { $0.free },
    TextColumn(title: "USED", width: 6, left: false) { $0.used },
    TextColumn(title: "ALLOC/s", width: 7, left: false) { $0.allocsPerSecond },
    TextColumn(title: "FREE/s", width: 6, left: false) { $0.freesPerSecond },
    TextColumn(title: "FAIL/s", width: 6, left: false) { $0.failuresPerSecond },
    TextColumn(title: "CAS/s", width: 6, left: false) { $0.casRetriesPerSecond },
    TextColumn(title: "ALLOCS", width: 7, left: false) { $0.allocs },
    TextColumn(title: "FREES", width: 7, left: false) { $0.frees },
    TextColumn(title: "SPLITS", width: 7, left: false) { $0.splits },
    TextColumn(title: "MERGES", width: 7, left: false) { $0.merges },
    TextColumn(title: "FAILS", width: 6, left: false) { $0.failures },
    TextColumn(title: "CAS", width: 7, left: false) { $0.casRetries },
  ]
}
