import Foundation
import Model

/// One virtqueue as the virtio pane shows it: the shared row model plus what only the pane needs.
struct QueueRow {
  /// The row every output renders.
  var row: VirtqueueRow
  /// The row's identity in the table.
  var id: Int
  /// The consistency marker drawn in the queue column's first cell.
  var marker: Unicode.Scalar
  /// How the marker is drawn.
  var markerStyle: Style
  /// Lower-cased text the filter matches against.
  var search: String
  /// The queue's record.
  var record: VirtqRecord { row.record }
  /// The interval's rates.
  var rates: VirtqRates? { row.rates }
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
  VirtqueueRow.qmpDevices(guest, qmp)
}

/// Builds the queue rows.
func queueRows(_ snapshot: Snapshot, rates: SnapshotRates?, glyphs: Glyphs) -> [QueueRow] {
  VirtqueueRow.rows(snapshot, rates: rates, style: cellStyle(glyphs)).map { r in
    let (m, ms) = consistencyMarker(r.record.consistency)
    return QueueRow(
      row: r, id: Int(truncatingIfNeeded: UInt64(r.record.device) << 16 | UInt64(r.record.index)), marker: m,
      markerStyle: ms, search: "\(r.cells.queue) \(r.cells.role) cpu\(r.cells.lcpu)".lowercased())
  }
}

/// The columns of the queue table: the row model's cells.
func queueColumns(glyphs: Glyphs) -> [Column<QueueRow>] {
  return [
    .flexible(
      "QUEUE", minimum: 7, preferred: 8, maximum: 20, weight: 1, priority: 0, bonus: (1, 6), key: .queue
    ) {
      g, r, x, y, w in
      g[x, y] = Cell(r.marker, r.markerStyle)
      textCell(&g, r.row.cells.queue, x: x + 1, y: y, width: w - 1, glyphs: glyphs, style: .value)
    },
    .fixed("ROLE", 4, priority: 0, align: .left) { g, r, x, y, w in
      textCell(
        &g, r.row.cells.role, x: x, y: y, width: w, glyphs: glyphs,
        style: r.record.role == .unknown ? .warn : .normal)
    },
    .fixed("CPU", 3, priority: 0) { g, r, x, y, w in
      g.field(r.row.cells.lcpu, x: x, y: y, width: w, align: .right)
    },
    .flexible(
      "FILL", minimum: 9, preferred: 11, maximum: 24, weight: 1, priority: 0, key: .fill, align: .left
    ) {
      g, r, x, y, w in
      let size = r.record.size
      let used = r.row.used
      // A full transmit ring stalls the sender; a receive ring is healthy full of posted buffers
      // and starved when empty (the whole meter turns red, as there is no bar to colour).
      let stalled = size > 0 && r.record.role == .tx && used == size
      let starved = size > 0 && r.record.role == .rx && used == 0
      g.meter(
        x: x, y: y, width: w, fraction: size == 0 ? nil : Double(used) / Double(size), text: r.row.cells.fill,
        glyphs: glyphs, fillStyle: stalled ? .error : .meterBusy)
      if starved { g.restyle(y: y, from: x, to: x + w, .error) }
    },
    .fixed("PKT/s", 6, priority: 0, key: .packets) { g, r, x, y, w in
      cellNumber(r.row.cells.packetsPerSecond, r.rates?.packetsPerSecond, &g, x, y, w)
    },
    .fixed("B/s", 6, priority: 0, key: .bytes) { g, r, x, y, w in
      cellNumber(r.row.cells.bytesPerSecond, r.rates?.bytesPerSecond, &g, x, y, w)
    },
    .fixed("ERR", 4, priority: 0, key: .errors) { g, r, x, y, w in
      cellNumber(r.row.cells.errors, Double(r.record.errors), &g, x, y, w, style: .error)
    },
    .fixed("DROP", 4, priority: 0) { g, r, x, y, w in
      cellNumber(r.row.cells.drops, Double(r.record.drops), &g, x, y, w, style: .warn)
    },
    .fixed("KICK/s", 6, priority: 2) { g, r, x, y, w in
      cellNumber(r.row.cells.kicksPerSecond, r.rates?.kicksPerSecond, &g, x, y, w)
    },
    .fixed("IRQ/s", 6, priority: 2) { g, r, x, y, w in
      guard r.row.msix else {
        return g.field(r.row.cells.interruptsPerSecond, x: x, y: y, width: w, style: .dim, align: .right)
      }
      cellNumber(r.row.cells.interruptsPerSecond, r.rates?.interruptsPerSecond, &g, x, y, w)
    },
    .fixed("DRV AVL/USD", 11, priority: 1) { g, r, x, y, w in
      g.field(r.row.cells.driverIndices, x: x, y: y, width: w, align: .right)
    },
    .fixed("DEV AVL/USD", 11, priority: 1) { g, r, x, y, w in
      let style: Style = r.row.device == nil ? .dim : (r.row.deviceBehind ? .warn : .normal)
      g.field(r.row.cells.deviceIndices, x: x, y: y, width: w, style: style, align: .right)
    },
    .fixed("INUSE", 5, priority: 3) { g, r, x, y, w in
      cellNumber(r.row.cells.inUse, r.row.device.map { Double($0.inUse) }, &g, x, y, w)
    },
    .fixed("LASTUSD", 7, priority: 4) { g, r, x, y, w in
      g.field(r.row.cells.lastUsed, x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("NOTIFY", 6, priority: 4, align: .left) { g, r, x, y, w in
      textCell(&g, r.row.cells.notify, x: x, y: y, width: w, glyphs: glyphs, style: .dim)
    },
    .fixed("PACKETS", 7, priority: 3) { g, r, x, y, w in
      cellNumber(r.row.cells.packets, Double(r.record.packets), &g, x, y, w)
    },
    .fixed("BYTES", 6, priority: 3) { g, r, x, y, w in
      g.field(r.row.cells.bytes, x: x, y: y, width: w, style: .dim, align: .right)
    },
    .fixed("KICKS", 6, priority: 5) { g, r, x, y, w in
      cellNumber(r.row.cells.kicks, Double(r.record.kicks), &g, x, y, w)
    },
    .fixed("IRQS", 6, priority: 5) { g, r, x, y, w in
      cellNumber(r.row.cells.interrupts, Double(r.record.interrupts), &g, x, y, w)
    },
    .fixed("POLLS", 6, priority: 5) { g, r, x, y, w in
      cellNumber(r.row.cells.polls, Double(r.record.polls), &g, x, y, w)
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
  let all = queueRows(snapshot, rates: data.rates, glyphs: glyphs)
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
