import CNcurses
import Dashboard

/// How one style looks: colours (ncurses numbers, -1 = terminal default) and attributes.
struct Look {
  var foreground: Int16
  var background: Int16
  var bold = false
  var reverse = false
  var dim = false
  var underline = false
}

/// Maps each semantic style to a look, after htop's default and monochrome schemes.
func look(_ style: Style, scheme: ColorSchemeName) -> Look {
  let d: Int16 = -1
  let black = Int16(COLOR_BLACK)
  let red = Int16(COLOR_RED)
  let green = Int16(COLOR_GREEN)
  let yellow = Int16(COLOR_YELLOW)
  let cyan = Int16(COLOR_CYAN)
  switch scheme {
  case .standard:
    switch style {
    case .normal, .address, .symbol: return Look(foreground: d, background: d)
    case .dim: return Look(foreground: d, background: d, dim: true)
    case .title: return Look(foreground: cyan, background: d, bold: true)
    case .header: return Look(foreground: black, background: green)
    case .headerSorted: return Look(foreground: black, background: cyan)
    case .label: return Look(foreground: cyan, background: d)
    case .value: return Look(foreground: cyan, background: d, bold: true)
    case .ok: return Look(foreground: green, background: d)
    case .warn: return Look(foreground: yellow, background: d, bold: true)
    case .error: return Look(foreground: red, background: d, bold: true)
    case .selected: return Look(foreground: black, background: cyan)
    case .meterBusy: return Look(foreground: green, background: d)
    case .meterIdle: return Look(foreground: d, background: d, dim: true)
    case .border: return Look(foreground: d, background: d, bold: true)
    case .tabActive: return Look(foreground: black, background: green)
    case .tabInactive: return Look(foreground: cyan, background: d)
    case .functionKey: return Look(foreground: d, background: d)
    case .functionLabel: return Look(foreground: black, background: cyan)
    case .status: return Look(foreground: yellow, background: d, bold: true)
    case .filter: return Look(foreground: black, background: yellow)
    case .current: return Look(foreground: black, background: yellow)
    }
  case .monochrome:
    switch style {
    case .normal, .address, .symbol, .label, .ok, .functionKey, .tabInactive:
      return Look(foreground: d, background: d)
    case .dim, .meterIdle: return Look(foreground: d, background: d, dim: true)
    case .title, .value, .border, .meterBusy, .warn, .status:
      return Look(foreground: d, background: d, bold: true)
    case .error: return Look(foreground: d, background: d, bold: true, underline: true)
    case .header, .selected, .tabActive, .functionLabel:
      return Look(foreground: d, background: d, reverse: true)
    case .headerSorted, .current: return Look(foreground: d, background: d, bold: true, reverse: true)
    case .filter: return Look(foreground: d, background: d, underline: true)
    }
  }
}

/// The ncurses attributes and colour pair of every style, set up once per scheme change.
struct Palette {
  /// Indexed by `Style.rawValue`.
  var attributes: [attr_t]
  var pairs: [Int16]

  /// Defines one colour pair per style (pair n+1 for style n) and records the attributes.
  ///
  /// Without colour support (or with the monochrome scheme) every pair stays 0 and only attributes remain.
  static func install(_ scheme: ColorSchemeName, colors: Bool, defaultColors: Bool) -> Palette {
    var attributes: [attr_t] = []
    var pairs: [Int16] = []
    for style in Style.allCases {
      let l = look(style, scheme: scheme)
      var a = nc_A_NORMAL()
      if l.bold { a |= nc_A_BOLD() }
      if l.reverse { a |= nc_A_REVERSE() }
      if l.dim { a |= nc_A_DIM() }
      if l.underline { a |= nc_A_UNDERLINE() }
      var pair: Int16 = 0
      if colors && scheme != .monochrome && (l.foreground != -1 || l.background != -1) {
        pair = Int16(style.rawValue) + 1
        // Terminals without default colours get white on black instead of -1.
        let fg = l.foreground == -1 && !defaultColors ? Int16(COLOR_WHITE) : l.foreground
        let bg = l.background == -1 && !defaultColors ? Int16(COLOR_BLACK) : l.background
        init_pair(pair, fg, bg)
      }
      attributes.append(a)
      pairs.append(pair)
    }
    return Palette(attributes: attributes, pairs: pairs)
  }
}
