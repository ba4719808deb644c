/// When QEMU emitted an event (`{"timestamp": {"seconds": S, "microseconds": U}}`, host
/// wall-clock time since the Unix epoch).
public struct QMPTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var seconds: Int64
  public var microseconds: Int64

  public init(seconds: Int64, microseconds: Int64) {
    self.seconds = seconds
    self.microseconds = microseconds
  }

  /// Seconds since the epoch as a floating-point number.
  public var timeIntervalSince1970: Double { Double(seconds) + Double(microseconds) / 1e6 }

  public static func < (lhs: QMPTimestamp, rhs: QMPTimestamp) -> Bool {
    (lhs.seconds, lhs.microseconds) < (rhs.seconds, rhs.microseconds)
  }

  public var description: String {
    let micros = String(microseconds)
    return "\(seconds).\(String(repeating: "0", count: max(0, 6 - micros.count)))\(micros)"
  }
}

/// An asynchronous QMP event. Every event keeps its raw name, data and timestamp; the run-state
/// events smptop reacts to are also decoded into `kind`.
public struct QMPEvent: Sendable, Hashable, CustomStringConvertible {
  /// The decoded meaning of an event.
  public enum Kind: Sendable, Hashable {
    /// The VM stopped (QMP `stop`, gdbstub connect or `\x03`, a breakpoint, a step).
    case stop
    /// The VM resumed.
    case resume
    /// The VM is shutting down; `guest` is true when the guest asked for it.
    /// `reason` is QEMU's ShutdownCause, e.g. `host-qmp-quit`, `guest-shutdown`, `host-signal`.
    case shutdown(guest: Bool, reason: String)
    /// The VM was reset; `guest` is true when the guest asked for it.
    case reset(guest: Bool, reason: String)
    /// The guest reported a panic (pvpanic); `action` is `pause`, `poweroff` or `run`.
    case guestPanicked(action: String, info: JSONValue?)
    /// Any other event; see `name` and `data`.
    case other
  }

  /// The event name as QEMU sent it (`STOP`, `RESUME`, `SHUTDOWN`, ...).
  public let name: String
  /// The event's `data` member, when it has one.
  public let data: JSONValue?
  /// When QEMU emitted it.
  public let timestamp: QMPTimestamp
  /// The decoded meaning.
  public let kind: Kind

  /// Creates an event from its parts and decodes `kind` from the name and data.
  public init(name: String, data: JSONValue?, timestamp: QMPTimestamp) {
    self.name = name
    self.data = data
    self.timestamp = timestamp
    switch name {
    case "STOP": kind = .stop
    case "RESUME": kind = .resume
    case "SHUTDOWN":
      kind = .shutdown(
        guest: data?["guest"]?.boolValue ?? false, reason: data?["reason"]?.stringValue ?? "unknown")
    case "RESET":
      kind = .reset(
        guest: data?["guest"]?.boolValue ?? false, reason: data?["reason"]?.stringValue ?? "unknown")
    case "GUEST_PANICKED":
      kind = .guestPanicked(action: data?["action"]?.stringValue ?? "unknown", info: data?["info"])
    default: kind = .other
    }
  }

  /// Decodes `{"event": NAME, "data": {...}, "timestamp": {...}}`.
  init(message: [String: JSONValue]) throws(QMPError) {
    guard let name = message["event"]?.stringValue else {
      throw QMPError(
        .protocolViolation, "an event without a string \"event\" name: \(JSONValue.object(message))")
    }
    let stamp = message["timestamp"]
    self.init(
      name: name, data: message["data"],
      timestamp: QMPTimestamp(
        seconds: stamp?["seconds"]?.int64Value ?? 0, microseconds: stamp?["microseconds"]?.int64Value ?? 0))
  }

  public var description: String {
    if let data { return "\(timestamp) \(name) \(data)" }
    return "\(timestamp) \(name)"
  }
}
