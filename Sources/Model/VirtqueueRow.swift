/// One virtqueue as every output shows it: the virtio pane and the text snapshot, with QEMU's
/// device-side view when QMP gave one.
public struct VirtqueueRow: Sendable, Identifiable {
  /// Device and queue index in one number (the row's identity).
  public var id: UInt64 { UInt64(record.device) << 32 | UInt64(record.index) }
  /// The record the row was made from.
  public var record: VirtqRecord
  /// The interval's rates, when two snapshots were compared.
  public var rates: VirtqRates?
  /// Whether its device interrupts through MSI-X (else the driver polls).
  public var msix: Bool
  /// QEMU's view of the queue (QMP), when asked for.
  public var device: VirtioQueueState?
  /// Descriptors in use.
  public var used: UInt32
  /// Whether the device lags the driver: its next avail index differs from the driver's.
  public var deviceBehind: Bool
  /// Formatted cells.
  public var cells: Cells

  /// The formatted cells of a virtqueue row.
  public struct Cells: Sendable, Equatable, Codable {
    /// "net0.1": the device's name and the queue's index.
    public var queue: String
    /// "rx", "tx", "ctrl", "unknown".
    public var role: String
    /// The lcpu that serves it.
    public var lcpu: String
    /// Descriptors in use of the ring's size: "12/256".
    public var fill: String
    /// Packets per second.
    public var packetsPerSecond: String
    /// Bytes per second.
    public var bytesPerSecond: String
    /// Errors since boot.
    public var errors: String
    /// Drops since boot.
    public var drops: String
    /// Kicks per second.
    public var kicksPerSecond: String
    /// Interrupts per second, "polled" without MSI-X.
    public var interruptsPerSecond: String
    /// The driver's avail and used indices: "120/118".
    public var driverIndices: String
    /// The device's next avail and used indices (QMP), "-" without QMP.
    public var deviceIndices: String
    /// Buffers the device holds (QMP), "-" without QMP.
    public var inUse: String
    /// The driver's last seen used index.
    public var lastUsed: String
    /// Notifications "on" or "off".
    public var notify: String
    /// Packets since boot.
    public var packets: String
    /// Bytes since boot.
    public var bytes: String
    /// Kicks since boot.
    public var kicks: String
    /// Interrupts since boot.
    public var interrupts: String
    /// Polls since boot.
    public var polls: String
    /// " " consistent, "~" changing while read, "!" unreadable.
    public var marker: String
  }

  /// QMP's device for each guest device: the same name, else the same position (nil without QMP's view).
  public static func qmpDevices(_ guest: [VirtioDeviceRecord], _ qmp: [VirtioDeviceState]?)
    -> [VirtioDeviceState?]
  {
    guard let qmp else { return guest.map { _ in nil } }
    return guest.enumerated().map { i, d in
      qmp.first { $0.name == d.name } ?? (i < qmp.count ? qmp[i] : nil)
    }
  }

  /// The rows of `snapshot`'s virtqueues, in record order.
  public static func rows(_ snapshot: Snapshot, rates: SnapshotRates?, style: CellStyle = .unicode)
    -> [VirtqueueRow]
  {
    var rateByKey: [UInt64: VirtqRates] = [:]
    for r in rates?.virtqueues ?? [] where rateByKey[UInt64(r.device) << 32 | UInt64(r.index)] == nil {
      rateByKey[UInt64(r.device) << 32 | UInt64(r.index)] = r
    }
    let qmp = qmpDevices(snapshot.virtioDevices, snapshot.virtio)
    return snapshot.virtqueues.map { q in
      let d = Int(q.device)
      let dev = d < snapshot.virtioDevices.count ? snapshot.virtioDevices[d] : nil
      let deviceQueue = d < qmp.count ? qmp[d]?.queues.first { $0.index == Int(q.index) } : nil
      return VirtqueueRow(
        q, deviceName: dev?.name ?? "dev\(q.device)", msix: dev?.msix ?? false, device: deviceQueue,
        rates: rateByKey[UInt64(q.device) << 32 | UInt64(q.index)], style: style)
    }
  }

  /// One row.
  ///
  /// - Parameters:
  ///   - deviceName: the guest's name for its device ("net0").
  ///   - device: QEMU's view of the queue, when QMP gave one.
  public init(
    _ q: VirtqRecord, deviceName: String, msix: Bool, device: VirtioQueueState?, rates rate: VirtqRates?,
    style: CellStyle
  ) {
    record = q
    rates = rate
    self.msix = msix
    self.device = device
    used = q.size >= q.freeDescriptors ? q.size - q.freeDescriptors : 0
    deviceBehind = device?.lastAvailIndex.map { $0 != Int(q.availIndex) } ?? false
    func count(_ n: UInt64) -> String { Format.human(Double(n)) }
    var deviceIndices = style.none
    if let device {
      deviceIndices =
        device.lastAvailIndex.map { "\($0)/\(device.usedIndex)" } ?? style.none
    }
    cells = Cells(
      queue: deviceName + "." + String(q.index), role: q.role.rawValue, lcpu: String(q.lcpu),
      fill: "\(used)/\(q.size)", packetsPerSecond: style.rate(rate?.packetsPerSecond),
      bytesPerSecond: rate.map { Format.bytes(UInt64(max(0, min($0.bytesPerSecond, 9e18)))) }
        ?? style.unknown,
      errors: count(q.errors), drops: count(q.drops), kicksPerSecond: style.rate(rate?.kicksPerSecond),
      interruptsPerSecond: msix ? style.rate(rate?.interruptsPerSecond) : "polled",
      driverIndices: "\(q.availIndex)/\(q.usedIndex)", deviceIndices: deviceIndices,
      inUse: device.map { count(UInt64(max(0, $0.inUse))) } ?? style.none, lastUsed: String(q.lastUsed),
      notify: q.notificationsOff ? "off" : "on", packets: count(q.packets), bytes: Format.bytes(q.bytes),
      kicks: count(q.kicks), interrupts: count(q.interrupts), polls: count(q.polls),
      marker: TextTable.marker(q.consistency))
  }

  /// The columns of the text table (the pane's titles).
  public static let columns: [TextColumn<Cells>] = [
    TextColumn(title: "QUEUE", width: 8, left: true) { $0.queue },
    TextColumn(title: "ROLE", width: 4, left: true) { $0.role },
    TextColumn(title: "CPU", width: 3, left: false) { $0.lcpu },
    TextColumn(title: "FILL", width: 9, left: true) { $0.fill },
    TextColumn(title: "PKT/s", width: 6, left: false) { $0.packetsPerSecond },
    TextColumn(title: "B/s", width: 6, left: false) { $0.bytesPerSecond },
    TextColumn(title: "ERR", width: 4, left: false) { $0.errors },
    TextColumn(title: "DROP", width: 4, left: false) { $0.drops },
    TextColumn(title: "KICK/s", width: 6, left: false) { $0.kicksPerSecond },
    TextColumn(title: "IRQ/s", width: 6, left: false) { $0.interruptsPerSecond },
    TextColumn(title: "DRV AVL/USD", width: 11, left: false) { $0.driverIndices },
    TextColumn(title: "DEV AVL/USD", width: 11, left: false) { $0.deviceIndices },
    TextColumn(title: "INUSE", width: 5, left: false) { $0.inUse },
    TextColumn(title: "LASTUSD", width: 7, left: false) { $0.lastUsed },
    TextColumn(title: "NOTIFY", width: 6, left: true) { $0.notify },
    TextColumn(title: "PACKETS", width: 7, left: false) { $0.packets },
    TextColumn(title: "BYTES", width: 6, left: false) { $0.bytes },
    TextColumn(title: "KICKS", width: 6, left: false) { $0.kicks },
    TextColumn(title: "IRQS", width: 6, left: false) { $0.interrupts },
    TextColumn(title: "POLLS", width: 6, left: false) { $0.polls },
  ]
}
