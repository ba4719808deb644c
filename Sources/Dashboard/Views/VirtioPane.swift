import Inspector

/// One virtqueue as the virtio pane shows it, with QEMU's device-side view when QMP gave one.
struct QueueRow {
  var id: Int
  var record: VirtqRecord
  var rates: VirtqRates?
  var name: String
  var msix: Bool
  var device: VirtioQueueState?
  var marker: Unicode.Scalar
  var markerStyle: Style
  var search: String
}

/// Feature bits of virtio-net worth naming, in bit order.
let virtioFeatureNames: [(bit: UInt64, name: String)] = [
  (0, "csum"), (1, "guest-csum"), (3, "mtu"), (5, "mac"), (7, "tso4"), (11, "host-tso4"), (15, "mrg-rxbuf"),
  (16, "status"), (17, "ctrl-vq"), (22, "mq"), (28, "indirect"), (29, "event-idx"), (32, "v1"),
  (34, "packed"),
]

/// "csum,mac,mq,v1".
func virtioFeatureText(_ features: UInt64) -> String {
  let names = virtioFeatureNames.filter { features & (1 << $0.bit) != 0 }.map(\.name)
  return names.isEmpty ? "none" : names.joined(separator: ",")
}

/// A virtio device status bit as QMP names it, in the short form: QEMU 7.2 says
/// "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready", which reads "driver-ok".
func virtioStatusName(_ status: String) -> String {
  let prefix = "VIRTIO_CONFIG_S_"
  guard status.hasPrefix(prefix) else { return status }
  let flag = status.dropFirst(prefix.count).prefix { $0 != ":" }
  return String(flag).lowercased().replacingOccurrences(of: "_", with: "-")
}

/// QMP's device for each guest device: the same name, else the same position.
func matchQMPDevices(_ guest: [VirtioDeviceRecord], _ qmp: [VirtioDeviceState]?) -> [VirtioDeviceState?] {
  guard let qmp else { return guest.map { _ in nil } }
  return guest.enumerated().map { i, d in
    qmp.first { $0.name == d.name } ?? (i < qmp.count ? qmp[i] : nil)
  }
}

/// Builds the queue rows.
func queueRows(_ snapshot: Snapshot, rates: SnapshotRates?) -> [QueueRow] {
  var rateByKey: [UInt64: VirtqRates] = [:]
  for r in rates?.virtqueues ?? [] { rateByKey[UInt64(r.device) << 32 | UInt64(r.index)] = r }
  let qmp = matchQMPDevices(snapshot.virtioDevices, snapshot.virtio)
  return snapshot.virtqueues.map { q in
    let d = Int(q.device)
    let dev = d < snapshot.virtioDevices.count ? snapshot.virtioDevices[d] : nil
    let name = (dev?.name ?? "dev\(q.device)") + "." + String(q.index)
    let (m, ms) = consistencyMarker(q.consistency)
    let deviceQueue = d < qmp.count ? qmp[d]?.queues.first { $0.index == Int(q.index) } : nil
    return QueueRow(
      id: Int(truncatingIfNeeded: UInt64(q.device) << 16 | UInt64(q.index)), record: q,
      rates: rateByKey[UInt64(q.device) << 32 | UInt64(q.index)], name: name, msix: dev?.msix ?? false,
      device: deviceQueue, marker: m, markerStyle: ms,
      search: "\(name) \(q.role.rawValue) cpu\(q.lcpu)".lowercased())
  }
}

/// The columns of the queue table.
func queueColumns(glyphs: Glyphs) -> [Column<QueueRow>] {
  func pair(_ a: Int?, _ b: Int?) -> String {
    guard let a, let b else { return "-" }
    return "\(a)/\(b)"
  }
  return [
    .flexible(
      "QUEUE", minimum: 7, preferred: 8, maximum: 20, weight: 1, priority: 0, bonus: (1, 6), key: .queue
    ) {
      g, r, x, y, w in
      g[x, y] = Cell(r.marker, r.markerStyle)
      textCell(&g, r.name, x: x + 1, y: y, width: w - 1, glyphs: glyphs, style: .value)
    },
    .fixed("ROLE", 4, priority: 0, align: .left) { g, r, x, y, w in
      textCell(
        &g, r.record.role.rawValue, x: x, y: y, width: w, glyphs: glyphs,
        style: r.record.role == .unknown ? .warn : .normal)
    },
    .fixed("CPU", 3, priority: 0) { g, r, x, y, w in
      g.field(String(r.record.lcpu), x: x, y: y, width: w, align: .right)
    },
    .flexible(
      "FILL", minimum: 9, preferred: 11, maximum: 24, weight: 1, priority: 0, key: .fill, align: .left
    ) {
      g, r, x, y, w in
      let size = r.record.size
      let used = size >= r.record.freeDescriptors ? size - r.record.freeDescriptors : 0
      // A full transmit ring stalls the sender; a receive ring is healthy full of posted buffers
      // and starved when empty (the whole meter turns red, as there is no bar to colour).
      let stalled = size > 0 && r.record.role == .tx && used == size
      let starved = size > 0 && r.record.role == .rx && used == 0
      g.meter(
        x: x, y: y, width: w, fraction: size == 0 ? nil : Double(used) / Double(size),
        text: "\(used)/\(size)",
        glyphs: glyphs, fillStyle: stalled ? .error : .meterBusy)
      if starved { g.restyle(y: y, from: x, to: x + w, .error) }
    },
    .fixed("PKT/s", 6, priority: 0, key: .packets) { g, r, x, y, w in
      numberCell(&g, r.rates?.packetsPerSecond, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("B/s", 6, priority: 0, key: .bytes) { g, r, x, y, w in
      guard let b = r.rates?.bytesPerSecond else {
        return g.field(glyphs.unknown, x: x, y: y, width: w, style: .dim, align: .right)
      }
      g.field(
        Format.bytes(UInt64(max(0, min(b, 9e18)))), x: x, y: y, width: w, style: b == 0 ? .dim : .normal,
        align: .right)
    },
    .fixed("ERR", 4, priority: 0, key: .errors) { g, r, x, y, w in
      numberCell(&g, Double(r.record.errors), x: x, y: y, width: w, glyphs: glyphs, style: .error)
    },
    .fixed("DROP", 4, priority: 0) { g, r, x, y, w in
      numberCell(&g, Double(r.record.drops), x: x, y: y, width: w, glyphs: glyphs, style: .warn)
    },
    .fixed("KICK/s", 6, priority: 2) { g, r, x, y, w in
      numberCell(&g, r.rates?.kicksPerSecond, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("IRQ/s", 6, priority: 2) { g, r, x, y, w in
      guard r.msix else { return g.field("polled", x: x, y: y, width: w, style: .dim, align: .right) }
      numberCell(&g, r.rates?.interruptsPerSecond, x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("DRV AVL/USD", 11, priority: 1) { g, r, x, y, w in
      g.field(pair(Int(r.record.availIndex), Int(r.record.usedIndex)), x: x, y: y, width: w, align: .right)
    },
    .fixed("DEV AVL/USD", 11, priority: 1) { g, r, x, y, w in
      guard let d = r.device else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
      let behind = d.lastAvailIndex.map { $0 != Int(r.record.availIndex) } ?? false
      g.field(
        pair(d.lastAvailIndex, d.usedIndex), x: x, y: y, width: w, style: behind ? .warn : .normal,
        align: .right)
    },
    .fixed("INUSE", 5, priority: 3) { g, r, x, y, w in
      guard let d = r.device else { return g.field("-", x: x, y: y, width: w, style: .dim, align: .right) }
      numberCell(&g, Double(d.inUse), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("LASTUSD", 7, priority: 4) { g, r, x, y, w in
      g.field(String(r.record.lastUsed), x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("NOTIFY", 6, priority: 4, align: .left) { g, r, x, y, w in
      textCell(
        &g, r.record.notificationsOff ? "off" : "on", x: x, y: y, width: w, glyphs: glyphs, style: .dim)
    },
    .fixed("PACKETS", 7, priority: 3) { g, r, x, y, w in
      numberCell(&g, Double(r.record.packets), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("BYTES", 6, priority: 3) { g, r, x, y, w in
      g.field(Format.bytes(r.record.bytes), x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("KICKS", 6, priority: 5) { g, r, x, y, w in
      numberCell(&g, Double(r.record.kicks), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("IRQS", 6, priority: 5) { g, r, x, y, w in
      numberCell(&g, Double(r.record.interrupts), x: x, y: y, width: w, glyphs: glyphs)
    },
    .fixed("POLLS", 6, priority: 5) { g, r, x, y, w in
      numberCell(&g, Double(r.record.polls), x: x, y: y, width: w, glyphs: glyphs)
    },
  ]
}

/// The virtio pane: one line per device, then every queue.
func drawVirtioPane(
  into g: inout Grid, state: DashboardState, data: DashboardData, snapshot: Snapshot, body: Rect,
  layout: ViewLayout
) -> ViewLayout {
  var layout = layout
  let glyphs = state.charset.glyphs
  if snapshot.virtioDevices.isEmpty && snapshot.virtqueues.isEmpty {
    g.put(
      "no virtio devices published by this guest", x: body.x + 1, y: body.y, style: .dim,
      maxWidth: body.width - 2)
    if let qmp = snapshot.virtio, !qmp.isEmpty {
      g.put(
        "QEMU reports \(qmp.count) virtio device\(qmp.count == 1 ? "" : "s"): "
          + qmp.map(\.name).joined(separator: ", "), x: body.x + 1, y: body.y + 1, style: .dim,
        maxWidth: body.width - 2)
    }
    layout.rowIDs = []
    return layout
  }
  let qmp = matchQMPDevices(snapshot.virtioDevices, snapshot.virtio)
  let maxDeviceLines = max(1, body.height / 3)
  var n = 0
  for (i, d) in snapshot.virtioDevices.enumerated() where n < maxDeviceLines {
    var s = Segments()
    let (m, ms) = consistencyMarker(d.consistency)
    if m != " " { s.add(String(m), ms) }
    s.add(d.name, .value)
    s.add(d.mac, .normal, separated: true)
    s.add(d.linkUp ? "link up" : "LINK DOWN", d.linkUp ? .ok : .error, separated: true)
    s.add(d.msix ? "MSI-X" : "polled", .normal, separated: true)
    s.add("\(d.queuePairs) pair\(d.queuePairs == 1 ? "" : "s")", .normal, separated: true)
    s.add(virtioFeatureText(d.features), .normal, priority: 2, separated: true, label: "features ")
    if let q = qmp[i] {
      let status = q.statuses.last.map(virtioStatusName) ?? "?"
      s.add(
        q.name + " " + status, status == "driver-ok" ? .dim : .warn, priority: 3, separated: true,
        label: "qemu ")
    } else if snapshot.virtio == nil {
      s.add("no QMP view", .dim, priority: 4, separated: true)
    }
    s.draw(into: &g, x: body.x, y: body.y + n, width: body.width, glyphs: glyphs)
    n += 1
  }
  if snapshot.virtioDevices.count > n {
    g.put("+\(snapshot.virtioDevices.count - n) more devices", x: body.x, y: body.y + n, style: .dim)
    n += 1
  }
  let (_, tableArea) = splitRows(body, top: n + 1)
  let all = queueRows(snapshot, rates: data.rates)
  let rows = arrangeRows(
    all, filter: state.filter, sort: state.current, search: \.search, id: \.id,
    values: { r, key in
      switch key {
      case .queue: return [.number(Double(r.record.device)), .number(Double(r.record.index))]
      case .fill:
        let used = r.record.size >= r.record.freeDescriptors ? r.record.size - r.record.freeDescriptors : 0
        return [.number(r.record.size == 0 ? 0 : Double(used) / Double(r.record.size))]
      case .packets: return [r.rates.map { .number($0.packetsPerSecond) }]
      case .bytes: return [r.rates.map { .number($0.bytesPerSecond) }]
      case .errors: return [.number(Double(r.record.errors)), .number(Double(r.record.drops))]
      default: return []
      }
    })
  drawPaneTable(
    into: &g, state: state, rect: tableArea, columns: queueColumns(glyphs: glyphs), rows: rows, id: \.id,
    layout: &layout)
  if all.isEmpty {
    drawEmptyLine(into: &g, "the guest published no virtqueues", rect: tableArea)
  } else if rows.isEmpty {
    drawEmptyLine(into: &g, noMatch("queue", state.filter), rect: tableArea)
  }
  return layout
}
