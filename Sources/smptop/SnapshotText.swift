import Foundation
import Inspector

/// Plain-text tables of a snapshot, for `smptop snapshot`, `run --headless` and `attach` without a terminal.
enum SnapshotText {
  /// The whole report: header, lcpus (or vCPUs in generic mode), virtio, problems.
  static func render(_ snap: Snapshot, rates: SnapshotRates? = nil, symbolize: (UInt64) -> String?) -> String
  {
    var out: [String] = [header(snap)]
    if snap.guest != nil {
      out += lcpuTable(snap, rates: rates, symbolize: symbolize)
      out += modelSections(snap, rates: rates, symbolize: symbolize)
    }
    if let vcpus = snap.vcpus { out += vcpuTable(vcpus) }
    if let virtio = snap.virtio, !virtio.isEmpty { out += virtioTable(virtio) }
    for problem in snap.problems { out.append("! \(problem)") }
    return out.joined(separator: "\n")
  }

  static func header(_ snap: Snapshot) -> String {
    var parts: [String] = []
    if let g = snap.guest {
      parts.append("guest abi v\(g.abiVersion) build \(g.buildID.prefix(12))")
      parts.append("\(g.lcpusOnline)/\(g.lcpusPresent) lcpus online")
      if let up = snap.uptimeSeconds { parts.append(String(format: "uptime %.1f s", up)) }
      if !g.commandLine.isEmpty { parts.append("cmdline \"\(g.commandLine)\"") }
    } else {
      parts.append("generic mode (no inspection ABI)")
    }
    parts.append("source \(snap.source.rawValue)")
    if let run = snap.runState { parts.append("vm \(run)") }
    parts.append("read \(duration(snap.costNanoseconds))")
    if snap.pauseNanoseconds > 0 { parts.append("pause \(duration(snap.pauseNanoseconds))") }
    return parts.joined(separator: ", ")
  }

  /// The lcpus pane's cells (``LCPURow``), each fault's backtrace under its lcpu.
  static func lcpuTable(_ snap: Snapshot, rates: SnapshotRates?, symbolize: (UInt64) -> String?) -> [String] {
    let rows = LCPURow.rows(snap, rates: rates, symbolize: symbolize)
    let ripTitle = snap.vcpus?.isEmpty == false ? "RIP (stopped)" : "RIP (last tick)"
    let lines = TextTable.lines(
      LCPURow.columns(ripTitle: ripTitle), rows: rows.map { ($0.cells.marker, $0.cells) })
    var out = [lines[0]]
    for (r, line) in zip(rows, lines.dropFirst()) {
      out.append(line)
      guard let p = r.record.panic else { continue }
      out.append(
        "     panic \(p.vectorName) error 0x\(String(p.errorCode, radix: 16)) rip \(symbolize(p.rip) ?? hex(p.rip))"
          + (p.vector == 14 ? " cr2 \(hex(p.cr2))" : ""))
      for frame in p.backtrace { out.append("       \(hex(frame)) \(symbolize(frame &- 1) ?? "?")") }
    }
    return out
  }

  /// Workload, locks, timers, allocator and virtqueues, when the guest publishes them.
  static func modelSections(_ snap: Snapshot, rates: SnapshotRates?, symbolize: (UInt64) -> String?)
    -> [String]
  {
    var out: [String] = []
    if let w = snap.workload {
      out.append("")
      let check =
        w.checkFailures == 0
        ? "self-check ok (\(w.checks) checks)" : "SELF-CHECK FAILED \(w.checkFailures)/\(w.checks)"
      let ops = rates?.workloadOpsPerSecond.map { String(format: "%.0f", $0) } ?? w.ops.map(String.init)
      out.append(
        "workload \(w.scenario): \(check); ops\(rates == nil ? "" : "/s") per lcpu: \(ops.joined(separator: " "))"
      )
    }
    if !snap.locks.isEmpty {
      out.append("")
      out += LockTable(snapshot: snap, rates: rates, top: 12, symbolize: symbolize).text.split(
        separator: "\n"
      ).map(String.init)
    }
    if !snap.threads.isEmpty {
      let counts = Dictionary(grouping: snap.threads, by: \.state).map {
        "\($0.value.count) \($0.key.rawValue)"
      }.sorted()
      out.append("threads: \(snap.threads.count) (\(counts.joined(separator: ", ")))")
      // The locks pane's thread list (ThreadRow), as a table.
      out += TextTable.lines(
        ThreadRow.columns, rows: ThreadRow.rows(snap).map { ($0.cells.marker, $0.cells) })
      // Where the waiting threads wait: their innermost source frames (backtraces, when taken).
      for t in snap.threads where t.blockedOn != 0 {
        guard let bt = t.backtrace else { continue }
        // The scheduler and interrupt plumbing every waiting thread shares is left out.
        let plumbing = ["Sched.schedule()", "Sched.interruptExit()", "isr_dispatch", "isr_common"]
        let chain = bt.frames.flatMap { f in f.location?.chain.filter { $0.line > 0 } ?? [] }
          .drop { plumbing.contains($0.function) }
        guard !chain.isEmpty else { continue }
        let trusted = bt.frames.allSatisfy(\.trusted) ? "" : " (untrusted)"
        out.append(
          "  \(t.id) \(t.name) \(t.state.rawValue): " + chain.prefix(3).map(\.text).joined(separator: " <- ")
            + trusted)
      }
    }
    if !snap.timerQueues.isEmpty {
      // The timers pane's cells (TimerQueueRow), as a table.
      out.append("")
      out += TextTable.lines(
        TimerQueueRow.columns,
        rows: TimerQueueRow.rows(snap, rates: rates).map { ($0.cells.marker, $0.cells) })
      // Where the owner of each queue's earliest timer waits for it (from its backtrace).
      let names = ThreadNames(snap)
      for q in snap.timerQueues {
        guard let t = q.timers.min(by: { $0.deadlineTSC < $1.deadlineTSC }), let place = t.ownerLocation
        else { continue }
        let due = snap.clock.until(t.deadlineTSC).map { Format.due(seconds: $0) } ?? "?"
        out.append("  cpu\(q.lcpu) next: \(names(t.ownerThread)) \(due) waits at \(place.text)")
      }
    }
    if let a = snap.allocator {
      out.append("")
      let check =
        a.churnFailures == 0 ? "churn check ok (\(a.churnChecks))" : "CHURN CHECK FAILED \(a.churnFailures)"
      out.append(
        "allocator \(a.mode): \(a.pagesFree)/\(a.pagesManaged) pages free, largest free order "
          + "\(a.largestFreeOrder.map(String.init) ?? "none"), \(check)")
      // The alloc pane's cells (AllocOrderRow), as a table; orders never used are left out.
      let rows = AllocOrderRow.rows(snap, rates: rates).filter {
        $0.record.freeBlocks + $0.record.usedBlocks + $0.record.allocs > 0
      }
      out += TextTable.lines(AllocOrderRow.columns, rows: rows.map { (" ", $0.cells) })
    }
    if !snap.virtqueues.isEmpty {
      out.append("")
      for d in snap.virtioDevices {
        out.append(
          "\(d.name) \(d.mac) pairs \(d.queuePairs) link \(d.linkUp ? "up" : "down") \(d.msix ? "MSI-X" : "polled")"
        )
      }
      // The virtio pane's cells (VirtqueueRow), as a table.
      out += TextTable.lines(
        VirtqueueRow.columns, rows: VirtqueueRow.rows(snap, rates: rates).map { ($0.cells.marker, $0.cells) })
    }
    return out
  }

  static func vcpuTable(_ vcpus: [VCPUState]) -> [String] {
    var rows = [
      pad("VCPU", 4) + " " + pad("STATE", 8, left: true) + " " + pad("RIP", 18, left: true) + " SYMBOL"
    ]
    for v in vcpus {
      rows.append(
        pad(String(v.index), 4) + " " + pad(v.halted ? "halted" : "running", 8, left: true) + " "
          + pad(v.value(of: "rip").map(hex) ?? "-", 18, left: true) + " " + (v.symbol ?? ""))
    }
    return rows
  }

  static func virtioTable(_ devices: [VirtioDeviceState]) -> [String] {
    var rows: [String] = []
    for d in devices {
      rows.append("virtio \(d.name) (\(d.path)) status \(d.statuses.joined(separator: ","))")
      for q in d.queues {
        rows.append(
          "  queue \(q.index): size \(q.size) last-avail \(q.lastAvailIndex.map(String.init) ?? "-") used \(q.usedIndex) in-use \(q.inUse)"
        )
      }
    }
    return rows
  }

  static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

  static func duration(_ ns: UInt64) -> String {
    if ns < 10_000 { return String(format: "%.1f µs", Double(ns) / 1e3) }
    if ns < 10_000_000 { return String(format: "%.0f µs", Double(ns) / 1e3) }
    return String(format: "%.1f ms", Double(ns) / 1e6)
  }

  static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    if s.count >= width { return s }
    let fill = String(repeating: " ", count: width - s.count)
    return left ? s + fill : fill + s
  }
}
