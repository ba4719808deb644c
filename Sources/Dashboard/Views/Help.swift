/// The key table, in the order the help overlay lists it.
public let keyTable: [(keys: String, action: String)] = [
  ("F1 ? h", "show or hide this help"),
  ("F10 q Ctrl-C", "quit"),
  ("Tab S-Tab 1-7", "switch pane"),
  ("Up Down j k", "select a row (scroll in the detail view)"),
  ("PgUp PgDn Home End", "page up/down, first, last"),
  ("Enter", "open the selected lcpu, lock (holder, waiters) or thread"),
  ("Left Right", "previous/next lcpu in the detail view"),
  ("T", "threads: where every thread is; Enter opens one"),
  ("Esc", "go back: help, lock or thread view, detail, filter"),
  ("F6 > <  I", "sort by next/previous column, invert"),
  ("/ F4", "filter rows (Enter keeps it, Esc undoes)"),
  ("space F5", "pause or resume the VM"),
  ("s F7  n", "step the lcpu one instruction (n: one source line)"),
  ("c F8", "continue the VM"),
  ("+ -", "refresh less or more often"),
  ("6: + - space t", "timeline: zoom, Left/Right scroll, freeze, trace on/off"),
  ("7: l f + -", "profile: lines/functions, icicle, window, Left/Right lcpu"),
  ("F2", "next colour scheme"),
  ("Ctrl-L", "repaint the screen"),
]

/// What the markers and columns mean.
let legend: [String] = [
  "~ record changed while read (inconsistent)   ! record unreadable",
  "RIP (last tick): sampled by the guest's timer tick; (stopped): exact",
  "DUE IN: next LAPIC timer deadline from the newest tick; late: already passed",
  "read: snapshot read; QMP: QEMU queries; pause: how long the VM stood still",
]

/// The legend line for the locks pane's static ISR findings, shown when there are any.
let staticFindingsLegend =
  "MISUSE: N = counted at run time; S:irq, S:sleep = isrcheck found an interrupt path to it"

/// Draws the help overlay: a box with the key table and the legend (plus `extraLegend`) over the body.
func drawHelp(into g: inout Grid, area: Rect, glyphs: Glyphs, extraLegend: [String] = []) {
  let legend = legend + extraLegend
  let keyWidth = keyTable.map { displayWidth($0.keys) }.max() ?? 10
  let width = min(area.width, 96)
  let height = min(area.height, keyTable.count + legend.count + 3)
  guard width >= 20, height >= 3 else { return }
  let box = Rect(
    x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width: width, height: height
  )
  g.fill(box)
  g.box(box, glyphs: glyphs, title: "smptop keys (any key closes)")
  let inner = box.inset(1)
  var y = inner.y
  for (keys, action) in keyTable where y < inner.maxY {
    g.field(keys, x: inner.x + 1, y: y, width: keyWidth, style: .functionKey)
    g.put(action, x: inner.x + keyWidth + 3, y: y, maxWidth: inner.width - keyWidth - 3)
    y += 1
  }
  y += 1
  for line in legend where y < inner.maxY {
    g.field(line, x: inner.x + 1, y: y, width: inner.width - 2, style: .dim, ellipsis: glyphs.ellipsis)
    y += 1
  }
}
