/// A thread of the remote target; for QEMU's system-mode stub, one vCPU.
///
/// QEMU numbers threads `cpu_index + 1` (0 means "any thread") and processes
/// `cluster_index + 1`; with multiprocess extensions the stub prints them as `p01.02`.
public struct ThreadID: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The process id, or nil when multiprocess extensions are not in use.
  public var pid: Int?
  /// The thread id: a positive number, 0 for "any thread" or -1 for "all threads".
  public var tid: Int

  /// Creates a thread id.
  public init(pid: Int? = nil, tid: Int) {
    self.pid = pid
    self.tid = tid
  }

  /// Any thread (`0`).
  public static let any = ThreadID(tid: 0)
  /// All threads (`-1`).
  public static let all = ThreadID(tid: -1)

  /// The QEMU vCPU index (`tid - 1`), or nil for the special ids.
  public var vcpuIndex: Int? { tid >= 1 ? tid - 1 : nil }

  /// The thread id of vCPU `index` in process `pid` (QEMU's default process is 1).
  public static func vcpu(_ index: Int, pid: Int? = 1) -> ThreadID {
    ThreadID(pid: pid, tid: index + 1)
  }

  /// Parses `p01.02`, `p1.-1`, `02`, `-1` (thread ids are hex).
  public init?(parsing text: some StringProtocol) {
    var rest = Substring(text)
    var pid: Int? = nil
    if rest.first == "p" {
      rest = rest.dropFirst()
      guard let dot = rest.firstIndex(of: ".") else {
        // `pNN` alone names a process: all of its threads.
        guard let p = ThreadID.component(rest) else { return nil }
        self.init(pid: p, tid: -1)
        return
      }
      guard let p = ThreadID.component(rest[..<dot]) else { return nil }
      pid = p
      rest = rest[rest.index(after: dot)...]
    }
    guard let t = ThreadID.component(rest) else { return nil }
    self.init(pid: pid, tid: t)
  }

  private static func component(_ text: Substring) -> Int? {
    if text == "-1" { return -1 }
    guard let v = Hex.number(text), v <= UInt64(Int32.max) else { return nil }
    return Int(v)
  }

  /// The protocol spelling: `p1.2` with a pid, `2` without; `-1` for all.
  public var protocolText: String {
    let t = tid < 0 ? "-1" : String(tid, radix: 16)
    guard let pid else { return t }
    let p = pid < 0 ? "-1" : String(pid, radix: 16)
    return "p\(p).\(t)"
  }

  /// The protocol spelling.
  public var description: String { protocolText }

  /// Orders by pid (nil first), then tid.
  public static func < (lhs: ThreadID, rhs: ThreadID) -> Bool {
    (lhs.pid ?? Int.min, lhs.tid) < (rhs.pid ?? Int.min, rhs.tid)
  }
}

/// What `qThreadExtraInfo` says about a thread.
public struct ThreadInfo: Sendable, Equatable {
  /// The thread.
  public var thread: ThreadID
  /// The decoded text, for QEMU `CPU#0 [running]` or `CPU#3 [halted ]`.
  public var text: String
  /// True for `[halted ]`, false for `[running]`, nil if the text says neither.
  ///
  /// "running" means the vCPU is not in the halted state (`!cpu->halted`); it says
  /// nothing about whether the VM runs.
  public var isHalted: Bool?

  /// Creates a value, deriving ``isHalted`` from `text`.
  public init(thread: ThreadID, text: String) {
    self.thread = thread
    self.text = text
    if text.contains("[halted") {
      isHalted = true
    } else if text.contains("[running") {
      isHalted = false
    } else {
      isHalted = nil
    }
  }
}
