import Model

/// One vCPU of a guest without the ABI (generic mode), from the gdbstub's registers.
struct VCPURow {
  var id: Int
  var vcpu: VCPUState
  var rip: UInt64?
  var ripText: String
  var search: String
}

/// Builds generic-mode rows from the snapshot's vCPU states.
func vcpuRows(_ snapshot: Snapshot, symbolize: Symbolizer) -> [VCPURow] {
  (snapshot.vcpus ?? []).map { v in
    let rip = v.value(of: "rip")
    let text = rip.map { v.symbol ?? symbolize($0) ?? Format.address($0) } ?? "-"
    return VCPURow(
      id: v.index, vcpu: v, rip: rip, ripText: text,
      search: "cpu\(v.index) \(v.halted ? "hlt" : "running") \(text)".lowercased())
  }
}

/// Filtered and sorted generic-mode rows.
func arrange(_ rows: [VCPURow], filter: String, sort: PaneState) -> [VCPURow] {
  let needle = filter.lowercased()
  var out = needle.isEmpty ? rows : rows.filter { $0.search.contains(needle) }
  out.sort { a, b in
    let less: Bool
    switch sort.sortKey {
    case .state where a.vcpu.halted != b.vcpu.halted: less = !a.vcpu.halted
    case .rip where a.ripText != b.ripText: less = a.ripText < b.ripText
    default: return sort.descending && sort.sortKey == .index ? a.id > b.id : a.id < b.id
    }
    return sort.descending ? !less : less
  }
  return out
}

/// The columns of the generic-mode table.
func vcpuColumns(glyphs: Glyphs) -> [Column<VCPURow>] {
  func register(_ name: String, _ title: String, priority: Int, digits: Int = 16) -> Column<VCPURow> {
    .fixed(title, digits, priority: priority) { g, r, x, y, w in
      guard let v = r.vcpu.value(of: name) else {
        return g.field("-", x: x, y: y, width: w, style: .dim, align: .right)
      }
      g.field(Format.hex(v, digits: digits), x: x, y: y, width: w, style: .address, align: .right)
    }
  }
  return [
    .fixed("CPU", 4, priority: 0, key: .index) { g, r, x, y, w in
      g.field(String(r.id), x: x, y: y, width: w - 1, style: .value, align: .right)
    },
    .fixed("STATE", 7, priority: 0, key: .state, align: .left) { g, r, x, y, w in
      g.field(r.vcpu.halted ? "hlt" : "running", x: x, y: y, width: w, style: r.vcpu.halted ? .dim : .ok)
    },
    register("rip", "RIP", priority: 0),
    register("rsp", "RSP", priority: 2),
    register("eflags", "RFLAGS", priority: 3, digits: 8),
    register("cr3", "CR3", priority: 4),
    register("cs", "CS", priority: 5, digits: 4),
    .flexible("SYMBOL", minimum: 10, preferred: 24, maximum: Int.max / 4, weight: 1, priority: 1, key: .rip) {
      g, r, x, y, w in
      g.field(
        r.ripText, x: x, y: y, width: w, style: r.rip == nil ? .dim : .symbol, ellipsis: glyphs.ellipsis)
    },
  ]
}
