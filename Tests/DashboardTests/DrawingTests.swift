import Dashboard
import Testing

/// Grid primitives and number formatting: the pieces every view is made of.
@Suite struct DrawingTests {
  @Test func putClipsToTheGridAndToMaxWidth() {
    var g = Grid(width: 10, height: 2)
    #expect(g.put("hello world", x: 3, y: 0) == 7)
    #expect(g.put("abcdef", x: 0, y: 1, maxWidth: 4) == 4)
    #expect(g.text == "   hello w\nabcd")
    #expect(g.put("x", x: 0, y: 5) == 0, "rows outside the grid are ignored")
    #expect(g.put("xyz", x: -2, y: 1) == 3, "negative x clips the left part")
    #expect(g.text == "   hello w\nzbcd")
  }

  @Test func controlCharactersFromTheGuestBecomeQuestionMarks() {
    var g = Grid(width: 12, height: 1)
    g.put("a\u{1B}[2Jb\u{7}c", x: 0, y: 0)
    #expect(g.text == "a?[2Jb?c", "escape sequences must never reach the terminal")
  }

  @Test func wideCharactersTakeTwoCellsAndNeverStraddleTheEdge() {
    var g = Grid(width: 5, height: 2)
    #expect(g.put("日本x", x: 0, y: 0) == 5)
    #expect(g[1, 0].isContinuation)
    #expect(g.text.hasPrefix("日本x"))
    #expect(g.put("ab日", x: 0, y: 1, maxWidth: 3) == 3, "the wide char does not fit in the last cell")
    #expect(g[2, 1].scalar == " ")
    #expect(displayWidth("e\u{301}") == 1, "combining marks take no column")
  }

  @Test func fieldAlignsAndTruncatesWithAnEllipsis() {
    var g = Grid(width: 20, height: 3)
    g.field("42", x: 0, y: 0, width: 6, align: .right)
    g.field("kernel.Workload.spin", x: 0, y: 1, width: 10)
    g.field("mid", x: 0, y: 2, width: 9, align: .center)
    #expect(g.text == "    42\nkernel.Wo…\n   mid")
    #expect(truncateSymbol("kernel.Workload.spin(iterations:)+0x1a", to: 16) == "kernel.Wor…+0x1a")
    #expect(truncateSymbol("short+0x1", to: 16) == "short+0x1")
  }

  @Test func boxDrawsCornersEdgesAndTitle() {
    var g = Grid(width: 12, height: 3)
    g.box(g.bounds, glyphs: .ascii, title: "hi")
    #expect(g.text == "+- hi -----+\n|          |\n+----------+")
    var u = Grid(width: 4, height: 2)
    u.box(u.bounds, glyphs: .unicode)
    #expect(u.text == "┌──┐\n└──┘")
  }

  @Test func aFullBarKeepsABlankBeforeItsText() {
    var g = Grid(width: 10, height: 3)
    g.meter(x: 0, y: 0, width: 10, fraction: 1, text: "20/2", glyphs: .unicode)
    g.meter(x: 0, y: 1, width: 10, fraction: 0.9, text: "310/12", glyphs: .unicode)
    g.meter(x: 0, y: 2, width: 10, fraction: 1, text: "12345678", glyphs: .unicode)
    #expect(g.text == "[███ 20/2]\n[█ 310/12]\n[12345678]", "no blank when the text fills the bar")
  }

  @Test func meterOverlaysItsTextOnTheBarLikeHtop() {
    var g = Grid(width: 14, height: 4)
    g.meter(x: 0, y: 0, width: 14, fraction: 0.5, text: "50.0%", glyphs: .ascii)
    g.meter(x: 0, y: 1, width: 14, fraction: 1.7, text: "170%", glyphs: .ascii)
    g.meter(x: 0, y: 2, width: 14, fraction: nil, text: "--", glyphs: .ascii)
    g.meter(x: 0, y: 3, width: 14, fraction: 0.0625, text: "", glyphs: .unicode)
    #expect(
      g.text == "[|||||| 50.0%]\n[||||||| 170%]\n[          --]\n[▊           ]", "6/8 of the first cell")
    #expect(g[1, 0].style == .meterBusy)
    #expect(g[6, 0].style == .meterBusy)
    #expect(g[7, 0].style == .meterIdle)
    #expect(g[8, 0].style == .meterIdle, "text over the empty part takes the idle colour")
    #expect(g[11, 1].style == .meterBusy, "text over the filled part takes the bar colour")
    #expect(g[0, 0].style == .border)
  }

  @Test func textTrimsTrailingBlanksAndStyleTextLinesUpWithIt() {
    var g = Grid(width: 6, height: 2)
    g.put("ab", x: 0, y: 0, style: .warn)
    g.put("c", x: 4, y: 1, style: .error)
    #expect(g.text == "ab\n    c")
    #expect(g.styleText == "ww\n....E")
  }

  @Test func humanNumbersFitFiveColumns() {
    let cases: [(Double, String)] = [
      (0, "0"), (7, "7"), (2.5, "2.5"), (999, "999"), (999.6, "1.0k"), (1234, "1.2k"), (34_000, "34k"),
      (3_400_000, "3.4M"), (1e9, "1.0G"), (-1500, "-1.5k"), (.nan, "?"),
    ]
    for (value, text) in cases { #expect(Format.human(value) == text, "\(value)") }
    for v in stride(from: 0.0, to: 1e15, by: 7.7e11) { #expect(Format.human(v).count <= 5, "\(v)") }
  }

  @Test func bytesDurationsUptimeAndHex() {
    #expect(Format.bytes(512) == "512B")
    #expect(Format.bytes(3_500) == "3.4K")
    #expect(Format.bytes(128 << 20) == "128M")
    #expect(Format.duration(seconds: 850e-9) == "850ns")
    #expect(Format.duration(seconds: 1.2e-6) == "1.2µs")
    #expect(Format.duration(seconds: 12e-6) == "12µs")
    #expect(Format.duration(seconds: 150e-6, micro: "us") == "150us")
    #expect(Format.duration(seconds: 1.25e-3) == "1.25ms")
    #expect(Format.duration(seconds: -0.8e-3) == "-800µs")
    #expect(Format.duration(seconds: 3.4) == "3.40s")
    #expect(Format.duration(seconds: 303) == "5m03s")
    #expect(Format.duration(seconds: 3720) == "1h02m")
    #expect(Format.duration(seconds: 273_600) == "3d04h")
    #expect(Format.uptime(seconds: 754) == "00:12:34")
    #expect(Format.uptime(seconds: 93_784) == "1 day, 02:03:04")
    #expect(Format.hex(0x1a, digits: 4) == "001a")
    #expect(Format.fixed(2.345, decimals: 2) == "2.35" || Format.fixed(2.345, decimals: 2) == "2.34")
    #expect(Format.fixed(-0.04, decimals: 1) == "0.0", "no negative zero")
  }
}
