/// QEMU's version, from the greeting.
public struct QEMUVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var major: Int
  public var minor: Int
  public var micro: Int
  /// The distribution's package string, e.g. `Debian 1:7.2+dfsg-7+deb12u18+b3` (may be empty).
  public var package: String

  public init(major: Int, minor: Int, micro: Int, package: String = "") {
    self.major = major
    self.minor = minor
    self.micro = micro
    self.package = package
  }

  public static func < (lhs: QEMUVersion, rhs: QEMUVersion) -> Bool {
    (lhs.major, lhs.minor, lhs.micro) < (rhs.major, rhs.minor, rhs.micro)
  }

  public var description: String { "\(major).\(minor).\(micro)" }
}

/// The server's greeting: `{"QMP": {"version": {...}, "capabilities": ["oob"]}}`.
public struct QMPGreeting: Sendable, Hashable {
  public var version: QEMUVersion
  /// Capabilities the server offers (7.2: `["oob"]`).
  public var capabilities: [String]

  public init(version: QEMUVersion, capabilities: [String]) {
    self.version = version
    self.capabilities = capabilities
  }

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "QMP greeting")
    let version = try ReplyFields(fields.object["version"] ?? .null, context: "QMP greeting version")
    let qemu = try ReplyFields(version.object["qemu"] ?? .null, context: "QMP greeting version.qemu")
    self.version = QEMUVersion(
      major: try qemu.int("major"), minor: try qemu.int("minor"), micro: try qemu.int("micro"),
      package: version.optionalString("package") ?? "")
    capabilities = fields.stringArray("capabilities")
  }
}

/// The VM run state (`RunState` in `qapi/run-state.json`).
public enum QMPRunState: Sendable, Hashable, CustomStringConvertible {
  case debug, inmigrate, internalError, ioError, paused, postmigrate, prelaunch, finishMigrate
  case restoreVM, running, saveVM, shutdown, suspended, watchdog, guestPanicked, colo
  /// A state this client does not know, kept verbatim.
  case other(String)

  private static let table: [(QMPRunState, String)] = [
    (.debug, "debug"), (.inmigrate, "inmigrate"), (.internalError, "internal-error"),
    (.ioError, "io-error"), (.paused, "paused"), (.postmigrate, "postmigrate"),
    (.prelaunch, "prelaunch"), (.finishMigrate, "finish-migrate"), (.restoreVM, "restore-vm"),
    (.running, "running"), (.saveVM, "save-vm"), (.shutdown, "shutdown"),
    (.suspended, "suspended"), (.watchdog, "watchdog"), (.guestPanicked, "guest-panicked"),
    (.colo, "colo"),
  ]

  /// Decodes QEMU's spelling.
  public init(rawValue: String) {
    self = Self.table.first(where: { $0.1 == rawValue })?.0 ?? .other(rawValue)
  }

  /// QEMU's spelling.
  public var rawValue: String {
    if case .other(let value) = self { return value }
    return Self.table.first(where: { $0.0 == self })?.1 ?? "unknown"
  }

  public var description: String { rawValue }
}

/// The answer to `query-status`.
public struct QMPStatus: Sendable, Hashable {
  /// The run state.
  public var status: QMPRunState
  /// Whether the vCPUs are running.
  public var running: Bool
  /// The TCG `-singlestep` option (not gdb stepping).
  public var singlestep: Bool

  public init(status: QMPRunState, running: Bool, singlestep: Bool = false) {
    self.status = status
    self.running = running
    self.singlestep = singlestep
  }

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "query-status")
    status = QMPRunState(rawValue: try fields.string("status"))
    running = try fields.bool("running")
    singlestep = fields.optionalBool("singlestep") ?? false
  }
}

/// Where a vCPU sits in the topology (`CpuInstanceProperties`); each field is present only
/// when the machine has that level.
public struct QMPCPUProperties: Sendable, Hashable {
  public var nodeID: Int?
  public var socketID: Int?
  public var dieID: Int?
  public var clusterID: Int?
  public var coreID: Int?
  public var threadID: Int?

  public init(
    nodeID: Int? = nil, socketID: Int? = nil, dieID: Int? = nil, clusterID: Int? = nil,
    coreID: Int? = nil, threadID: Int? = nil
  ) {
    self.nodeID = nodeID
    self.socketID = socketID
    self.dieID = dieID
    self.clusterID = clusterID
    self.coreID = coreID
    self.threadID = threadID
  }

  init(_ value: JSONValue?) {
    let object = value?.objectValue ?? [:]
    nodeID = object["node-id"]?.intValue
    socketID = object["socket-id"]?.intValue
    dieID = object["die-id"]?.intValue
    clusterID = object["cluster-id"]?.intValue
    coreID = object["core-id"]?.intValue
    threadID = object["thread-id"]?.intValue
  }
}

/// One element of `query-cpus-fast`.
public struct QMPCPUInfo: Sendable, Hashable {
  /// QEMU's vCPU index (gdbstub thread id = index + 1).
  public var cpuIndex: Int
  /// The host thread id (TID) running this vCPU, for `/proc/<pid>/task/<tid>/stat`.
  public var threadID: Int
  /// The vCPU's QOM path.
  public var qomPath: String
  /// The target architecture, e.g. `x86_64`.
  public var target: String
  /// The topology position.
  public var props: QMPCPUProperties

  public init(cpuIndex: Int, threadID: Int, qomPath: String, target: String, props: QMPCPUProperties) {
    self.cpuIndex = cpuIndex
    self.threadID = threadID
    self.qomPath = qomPath
    self.target = target
    self.props = props
  }

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "query-cpus-fast element")
    cpuIndex = try fields.int("cpu-index")
    threadID = try fields.int("thread-id")
    qomPath = try fields.string("qom-path")
    target = fields.optionalString("target") ?? ""
    props = QMPCPUProperties(fields.object["props"])
  }
}

/// One element of `x-query-virtio`.
public struct VirtioDeviceInfo: Sendable, Hashable {
  /// The device name, e.g. `virtio-net`.
  public var name: String
  /// The QOM path to pass to the other x-query-virtio commands.
  public var path: String

  public init(name: String, path: String) {
    self.name = name
    self.path = path
  }

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "x-query-virtio element")
    name = try fields.string("name")
    path = try fields.string("path")
  }
}

/// Feature bits decoded by QEMU into strings (`VirtioDeviceFeatures`).
public struct VirtioFeatures: Sendable, Hashable {
  /// Transport features, e.g. `VIRTIO_F_VERSION_1: Device compliant for v1 spec (legacy)`.
  public var transports: [String]
  /// Device-specific features, e.g. `VIRTIO_NET_F_MQ: ...`.
  public var deviceFeatures: [String]
  /// Bits QEMU could not name.
  public var unknownDeviceFeatures: UInt64?

  public init(transports: [String] = [], deviceFeatures: [String] = [], unknownDeviceFeatures: UInt64? = nil)
  {
    self.transports = transports
    self.deviceFeatures = deviceFeatures
    self.unknownDeviceFeatures = unknownDeviceFeatures
  }

  init(_ value: JSONValue?) {
    let object = value?.objectValue ?? [:]
    transports = object["transports"]?.arrayValue?.compactMap(\.stringValue) ?? []
    deviceFeatures = object["dev-features"]?.arrayValue?.compactMap(\.stringValue) ?? []
    unknownDeviceFeatures = object["unknown-dev-features"]?.uint64Value
  }

  /// The feature names without QEMU's explanations (`VIRTIO_NET_F_MQ`).
  public var names: [String] {
    (transports + deviceFeatures).map { String($0.prefix(while: { $0 != ":" })) }
  }
}

/// The answer to `x-query-virtio-status` (`VirtioStatus`). The whole reply is kept in `raw`
/// for fields not decoded here.
public struct VirtioStatus: Sendable, Hashable {
  public var name: String
  public var deviceID: Int
  public var numVQs: Int
  /// Device status bits as names, e.g. `["VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready", ...]`.
  public var statuses: [String]
  public var isr: Int
  public var started: Bool
  public var broken: Bool
  public var vmRunning: Bool
  public var vhostStarted: Bool
  public var queueSelected: Int?
  public var deviceEndian: String?
  public var hostFeatures: VirtioFeatures
  public var guestFeatures: VirtioFeatures
  public var backendFeatures: VirtioFeatures
  /// The reply as received.
  public var raw: JSONValue

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "x-query-virtio-status")
    name = try fields.string("name")
    deviceID = try fields.int("device-id")
    numVQs = try fields.int("num-vqs")
    statuses = fields.object["status"]?["statuses"]?.arrayValue?.compactMap(\.stringValue) ?? []
    isr = fields.optionalInt("isr") ?? 0
    started = fields.optionalBool("started") ?? false
    broken = fields.optionalBool("broken") ?? false
    vmRunning = fields.optionalBool("vm-running") ?? false
    vhostStarted = fields.optionalBool("vhost-started") ?? false
    queueSelected = fields.optionalInt("queue-sel")
    deviceEndian = fields.optionalString("device-endian")
    hostFeatures = VirtioFeatures(fields.object["host-features"])
    guestFeatures = VirtioFeatures(fields.object["guest-features"])
    backendFeatures = VirtioFeatures(fields.object["backend-features"])
    raw = value
  }
}

/// The answer to `x-query-virtio-queue-status` (`VirtQueueStatus`): the device model's view of
/// one virtqueue.
public struct VirtioQueueStatus: Sendable, Hashable {
  public var name: String
  public var queueIndex: Int
  /// Descriptors taken by the device and not yet returned.
  public var inuse: Int
  /// Ring size (entries) negotiated with the driver, and the device default.
  public var vringNum: Int
  public var vringNumDefault: Int
  public var vringAlign: Int
  /// Guest-physical addresses of the descriptor table, available ring and used ring
  /// (0 until the driver sets the queue up).
  public var vringDesc: UInt64
  public var vringAvail: UInt64
  public var vringUsed: UInt64
  /// The next available-ring index the device will read; absent when vhost owns the queue
  /// and did not report it.
  public var lastAvailIdx: Int?
  /// The device's cached copy of the driver's avail->idx; absent while vhost runs.
  public var shadowAvailIdx: Int?
  /// The device's used->idx.
  public var usedIdx: Int
  /// The used index when the driver was last notified, and whether that value is valid.
  public var signalledUsed: Int
  public var signalledUsedValid: Bool

  public init(
    name: String, queueIndex: Int, inuse: Int, vringNum: Int, vringNumDefault: Int, vringAlign: Int,
    vringDesc: UInt64, vringAvail: UInt64, vringUsed: UInt64, lastAvailIdx: Int?, shadowAvailIdx: Int?,
    usedIdx: Int, signalledUsed: Int, signalledUsedValid: Bool
  ) {
    self.name = name
    self.queueIndex = queueIndex
    self.inuse = inuse
    self.vringNum = vringNum
    self.vringNumDefault = vringNumDefault
    self.vringAlign = vringAlign
    self.vringDesc = vringDesc
    self.vringAvail = vringAvail
    self.vringUsed = vringUsed
    self.lastAvailIdx = lastAvailIdx
    self.shadowAvailIdx = shadowAvailIdx
    self.usedIdx = usedIdx
    self.signalledUsed = signalledUsed
    self.signalledUsedValid = signalledUsedValid
  }

  init(_ value: JSONValue) throws(QMPError) {
    let fields = try ReplyFields(value, context: "x-query-virtio-queue-status")
    name = try fields.string("name")
    queueIndex = try fields.int("queue-index")
    inuse = try fields.int("inuse")
    vringNum = try fields.int("vring-num")
    vringNumDefault = fields.optionalInt("vring-num-default") ?? 0
    vringAlign = fields.optionalInt("vring-align") ?? 0
    vringDesc = try fields.uint64("vring-desc")
    vringAvail = try fields.uint64("vring-avail")
    vringUsed = try fields.uint64("vring-used")
    lastAvailIdx = fields.optionalInt("last-avail-idx")
    shadowAvailIdx = fields.optionalInt("shadow-avail-idx")
    usedIdx = try fields.int("used-idx")
    signalledUsed = try fields.int("signalled-used")
    signalledUsedValid = fields.optionalBool("signalled-used-valid") ?? false
  }
}
