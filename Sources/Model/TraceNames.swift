/// Names for what trace events refer to: locks, threads, code sites, virtqueues.
public struct TraceNames: Sendable {
  /// Lock name by lock address.
  public var locks: [UInt64: String] = [:]
  /// Thread name by thread id.
  public var threads: [UInt64: String] = [:]
  /// Virtqueue label by its record address.
  public var queues: [UInt64: String] = [:]
  /// Turns a code address into `symbol` or `file:line` (nil = unknown).
  public var site: @Sendable (UInt64) -> String? = { _ in nil }
  /// Turns a code address into its source line (`File.swift:27`) and function, when the
  /// kernel's DWARF knows it (nil = no line: exports fall back to `site`).
  public var locate: @Sendable (UInt64) -> TraceSite? = { _ in nil }

  /// Empty names.
  public init() {}

  /// Names taken from a snapshot (locks and threads).
  public init(
    snapshot: Snapshot, site: @escaping @Sendable (UInt64) -> String? = { _ in nil },
    locate: @escaping @Sendable (UInt64) -> TraceSite? = { _ in nil }
  ) {
    add(snapshot)
    self.site = site
    self.locate = locate
  }

  /// Adds the locks and threads of another snapshot (a replay's later frames).
  public mutating func add(_ snapshot: Snapshot) {
    for lock in snapshot.locks { locks[lock.address] = lock.name }
    for thread in snapshot.threads { threads[thread.id] = thread.name }
  }

  /// Export arguments for a code site: `site` as `File.swift:27` and `function` when the line is
  /// known, else `site` as `symbol+0x1a` (or the address). `prefix` names the pair (`holder_`).
  public func siteArgs(_ address: UInt64, prefix: String = "") -> [String: String] {
    if address != 0, let l = locate(address) {
      return [prefix + "site": l.fileLine, prefix + "function": l.function]
    }
    return [prefix + "site": siteText(address)]
  }

  /// A lock's name, or its address.
  public func lock(_ address: UInt64) -> String { locks[address] ?? "lock 0x\(String(address, radix: 16))" }
  /// A thread's name, `idle`/`irq` for 0, or its id.
  public func thread(_ id: UInt64) -> String { id == 0 ? "-" : threads[id] ?? "thread \(id)" }
  /// A code site as text, or its address, or `?`.
  public func siteText(_ address: UInt64) -> String {
    address == 0 ? "?" : site(address) ?? "0x\(String(address, radix: 16))"
  }
}

/// A code address as a source line and the function around it.
public struct TraceSite: Sendable, Equatable {
  /// `File.swift:27`.
  public var fileLine: String
  /// The function (demangled, shortened); an inlined function is marked `[inlined]`.
  public var function: String

  /// Creates a site.
  public init(fileLine: String, function: String) {
    self.fileLine = fileLine
    self.function = function
  }
}
