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

  static func lcpuTable(_ snap: Snapshot, rates: SnapshotRates?, symbolize: (UInt64) -> String?) -> [String] {
    let clock = snap.clock
    var rows = [
      pad("LCPU", 4) + " " + pad("APIC", 4) + " " + pad("STATE", 10, left: true) + " " + pad("BUSY%", 6) + " "
        + pad(rates == nil ? "TIMER" : "TIMER/s", 8) + " " + pad("IPI rx", 7) + " " + pad("IPI tx", 7) + " "
        + pad("TICKS", 8) + " "
        + pad("NEXT", 9) + "  RIP (last tick)"
    ]
    for l in snap.lcpus {
      let rate = rates?.lcpus.first { $0.index == l.index }
      let busy: String
      if let p = rate?.busyPercent {
        busy = String(format: "%.0f", p)
      } else if l.cyclesBusy + l.cyclesIdle > 0 {
        busy = String(format: "%.0f", 100 * Double(l.cyclesBusy) / Double(l.cyclesBusy + l.cyclesIdle))
      } else {
        busy = "-"
      }
      let timer = rate.map { String(format: "%.0f", $0.timerIRQsPerSecond) } ?? String(l.irqTimer)
      var next = "-"
      if let delta = clock.until(l.nextDeadlineTSC) {
        next = delta <= 0 ? "due" : String(format: "%.1fms", delta * 1000)
      }
      let marker =
        switch l.consistency {
        case .consistent: ""
        case .inconsistent: " (torn)"
        case .unreadable(let why): " (unreadable: \(why))"
        }
      let rip =
        l.lastTickRIP == 0 ? "-" : (symbolize(l.lastTickRIP) ?? "0x" + String(l.lastTickRIP, radix: 16))
      rows.append(
        pad(String(l.index), 4) + " " + pad(String(l.apicID), 4) + " " + pad(l.stateLabel, 10, left: true)
          + " "
          + pad(busy, 6) + " " + pad(timer, 8) + " " + pad(String(l.ipiReceived), 7) + " "
          + pad(String(l.ipiSent), 7) + " " + pad(String(l.ticks), 8) + " " + pad(next, 9) + "  " + rip
          + marker)
      if let p = l.panic {
        rows.append(
          "     panic \(p.vectorName) error 0x\(String(p.errorCode, radix: 16)) rip \(symbolize(p.rip) ?? hex(p.rip))"
            + (p.vector == 14 ? " cr2 \(hex(p.cr2))" : ""))
        for frame in p.backtrace { rows.append("       \(hex(frame)) \(symbolize(frame &- 1) ?? "?")") }
      }
    }
    return rows
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
      out.append(
        "TIMERS " + pad("LCPU", 4) + " " + pad("PEND", 5) + " " + pad("DUE IN", 11) + " " + pad("FIRED/s", 8)
          + " "
          + pad("FIRED", 7) + " " + pad("LATE MAX", 9) + " " + pad("LATE AVG", 8) + "  LATENESS")
      for r in TimerQueueRow.rows(snap, rates: rates) {
        let c = r.cells
        out.append(
          "      " + c.marker + pad(c.lcpu, 4) + " " + pad(c.pending, 5) + " " + pad(c.due, 11) + " "
            + pad(c.firedPerSecond, 8) + " " + pad(c.fired, 7) + " " + pad(c.lateMax, 9) + " "
            + pad(c.lateMean, 8)
            + "  " + c.lateness)
      }
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
      for o in a.orders where o.freeBlocks + o.usedBlocks + o.allocs > 0 {
        out.append(
          "  order \(pad(String(o.order), 2)) (\(pad(String(o.blockBytes / 1024), 5)) KiB): free \(pad(String(o.freeBlocks), 6)) used \(pad(String(o.usedBlocks), 6)) "
            + "allocs \(o.allocs) frees \(o.frees) splits \(o.splits) merges \(o.merges) failures \(o.failures) cas-retries \(o.casRetries)"
        )
      }
    }
    if !snap.virtqueues.isEmpty {
      out.append("")
      for d in snap.virtioDevices {
        out.append(
          "\(d.name) \(d.mac) pairs \(d.queuePairs) link \(d.linkUp ? "up" : "down") \(d.msix ? "MSI-X" : "polled")"
        )
      }
      out.append(
        "QUEUE role lcpu  size  free  avail  used  packets      bytes  errors drops  kicks   irqs  polls")
      for q in snap.virtqueues {
        out.append(
          "\(pad("\(q.device).\(q.index)", 5)) \(pad(q.role.rawValue, 4, left: true)) \(pad(String(q.lcpu), 4)) \(pad(String(q.size), 5)) \(pad(String(q.freeDescriptors), 5)) "
            + "\(pad(String(q.availIndex), 6)) \(pad(String(q.usedIndex), 5)) \(pad(String(q.packets), 8)) \(pad(String(q.bytes), 10)) \(pad(String(q.errors), 7)) \(pad(String(q.drops), 5)) "
            + "\(pad(String(q.kicks), 6)) \(pad(String(q.interrupts), 6)) \(pad(String(q.polls), 6))")
      }
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
