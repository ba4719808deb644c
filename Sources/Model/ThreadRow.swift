/// One kernel thread as every output shows it: the locks pane's thread list and the text snapshot.
public struct ThreadRow: Sendable, Identifiable {
  /// The thread's id (the row's identity).
  public var id: UInt64 { record.id }
  /// The record the row was made from.
  public var record: ThreadRecord
  /// Seconds until it wakes (negative once the time has passed; nil when it is not sleeping or without a clock).
  public var wakeIn: Double?
  /// CPU time it has used, in seconds (nil without a clock).
  public var cpuSeconds: Double?
  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of a thread row.
  public struct Cells: Sendable, Equatable, Codable {
    /// The thread's id.
    public var id: String
    /// Its name.
    public var name: String
    /// "running", "blocked-lock", "sleeping", ….
    public var state: String
    /// The lcpu it belongs to.
    public var lcpu: String
    /// The lock (or semaphore, wait queue) it waits on, by name, else its address; "-" for none.
    public var blockedOn: String
    /// Time until it wakes, "-" when it is not sleeping.
    public var wakeIn: String
    /// CPU time used.
    public var cpuTime: String
    /// Context switches.
    public var switches: String
    /// Workload operations.
    public var ops: String
    /// " " consistent, "~" changing while read, "!" unreadable.
    public var marker: String
  }

  /// Whether the thread waits on a lock, a semaphore or a wait queue.
  public var isBlocked: Bool { record.blockedOn != 0 }

  /// The rows of `snapshot`'s threads: the blocked ones first, then spinning, running, ready,
  /// sleeping, the rest; ties by id.
  ///
  /// - Parameter limit: at most this many rows, the first in that order.
  public static func rows(_ snapshot: Snapshot, style: CellStyle = .unicode, limit: Int? = nil) -> [ThreadRow]
  {
    func rank(_ s: ThreadState) -> Int {
      switch s {
      case .blockedOnLock, .blockedOnSemaphore, .blockedOnWaitQueue: return 0
      case .spinning: return 1
      case .running: return 2
      case .ready: return 3
      case .sleeping: return 4
      default: return 5
      }
    }
    let threads = snapshot.threads
    var order = threads.indices.sorted {
      (rank(threads[$0].state), threads[$0].id) < (rank(threads[$1].state), threads[$1].id)
    }
    if let limit, limit < order.count { order.removeLast(order.count - max(0, limit)) }
    // Names of the locks these threads wait on, only (a snapshot can carry a thousand locks).
    let wanted = Set(order.map { threads[$0].blockedOn }.filter { $0 != 0 })
    var lockNames: [UInt64: String] = [:]
    if !wanted.isEmpty {
      for l in snapshot.locks where wanted.contains(l.address) && lockNames[l.address] == nil {
        lockNames[l.address] = l.name
      }
    }
    let clock = snapshot.clock
    return order.map { ThreadRow(threads[$0], lockNames: lockNames, clock: clock, style: style) }
  }

  /// One row.
  ///
  /// - Parameter lockNames: lock address → name, for what it waits on.
  public init(_ t: ThreadRecord, lockNames: [UInt64: String], clock: GuestClock, style: CellStyle) {
    record = t
    wakeIn = t.wakeTSC == 0 ? nil : clock.until(t.wakeTSC)
    cpuSeconds = clock.seconds(t.cpuTSC)
    cells = Cells(
      id: String(t.id), name: t.name, state: t.state.rawValue, lcpu: String(t.lcpu),
      blockedOn: t.blockedOn == 0 ? style.none : (lockNames[t.blockedOn] ?? Format.address(t.blockedOn)),
      wakeIn: wakeIn.map { Format.due(seconds: $0, micro: style.micro) } ?? style.none,
      cpuTime: cpuSeconds.map { Format.duration(seconds: $0, micro: style.micro) } ?? style.unknown,
      switches: Format.human(Double(t.switches)), ops: Format.human(Double(t.ops)),
      marker: TextTable.marker(t.consistency))
  }

  /// The columns of the text table (the pane's titles).
  public static let columns: [TextColumn<Cells>] = [
    TextColumn(title: "TID", width: 4, left: false) { $0.id },
    TextColumn(title: "THREAD", width: 16, left: true) { $0.name },
    TextColumn(title: "STATE", width: 13, left: true) { $0.state },
    TextColumn(title: "CPU", width: 4, left: false) { $0.lcpu },
    TextColumn(title: "BLOCKED ON", width: 20, left: true) { $0.blockedOn },
    TextColumn(title: "WAKE IN", width: 11, left: false) { $0.wakeIn },
    TextColumn(title: "CPU TIME", width: 8, left: false) { $0.cpuTime },
    TextColumn(title: "SWITCHES", width: 8, left: false) { $0.switches },
    TextColumn(title: "OPS", width: 6, left: false) { $0.ops },
  ]
}
