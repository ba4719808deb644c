import CNcurses
import Dashboard

/// Turns what `wget_wch` returned into a dashboard key; nil for keys the dashboard has no name for.
func decodeKey(status: Int32, code: UInt32) -> Key? {
  if status == KEY_CODE_YES {
    let k = Int32(bitPattern: code)
    switch k {
    case KEY_UP: return .up
    case KEY_DOWN: return .down
    case KEY_LEFT: return .left
    case KEY_RIGHT: return .right
    case KEY_PPAGE: return .pageUp
    case KEY_NPAGE: return .pageDown
    case KEY_HOME, KEY_A1: return .home
    case KEY_END, KEY_C1: return .end
    case KEY_ENTER: return .enter
    case KEY_BACKSPACE, KEY_DC: return .backspace
    case KEY_BTAB: return .backTab
    case KEY_RESIZE: return .resize
    default:
      let f = k - nc_KEY_F(0)
      if f >= 1 && f <= 12 { return .function(Int(f)) }
      return nil
    }
  }
  switch code {
  case 9: return .tab
  case 10, 13: return .enter
  case 27: return .escape
  case 8, 127: return .backspace
  case 0: return nil
  case 1...26: return .control(Character(Unicode.Scalar(UInt8(code) + 96)))
  case 28...31: return nil
  default:
    guard let scalar = Unicode.Scalar(code) else { return nil }
    return .character(Character(scalar))
  }
}
