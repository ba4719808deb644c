import CNcurses
import Dashboard
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Why the terminal could not be used.
public struct TerminalError: Error, Sendable, Equatable, CustomStringConvertible {
  /// What went wrong.
  public enum Code: Sendable, Equatable {
    /// stdin or stdout is not a terminal (a pipe, a file): use a batch mode instead.
    case notATerminal
    /// ncurses does not know `$TERM`.
    case unknownTerminal
    /// Another `Screen` is already open in this process.
    case alreadyActive
    /// A system call failed.
    case system
  }

  /// What went wrong.
  public var code: Code
  /// A sentence for the user.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The message.
  public var description: String { message }
}

/// Whether to use colours.
public enum ColorChoice: Sendable, Equatable {
  /// Colours unless `NO_COLOR` is set (and non-empty) or the terminal has none.
  case auto
  /// Monochrome (`--no-color`).
  case never
}

/// True while a `Screen` is open: ncurses has one global screen, so there is one `Screen` at a time.
private let screenActive = Atomic<Bool>(false)

/// Registers, once, an exit hook that ends curses if the program calls `exit()` with a `Screen` open.
private let exitHook: Void = {
  atexit {
    if screenActive.load(ordering: .acquiring) { endwin() }
  }
}()

/// An ncurses session on the process's terminal: grids out, keys in, and the terminal always restored.
///
/// Not `Sendable`: use it from the thread that created it. `close()` (or deinit) ends curses; the
/// signal handlers installed by `init` restore the terminal on SIGINT/SIGTERM/SIGHUP (the run loop
/// stops within one tick) and before a crash signal reaches the previous handler, and an `atexit`
/// hook ends curses if something calls `exit()` while it is open.
public final class Screen {
  /// What the locale can show: ASCII under LANG=C.
  public let charset: Charset
  /// True when the terminal has colours and the user did not turn them off.
  public let colors: Bool
  private let defaultColors: Bool
  private var screen: OpaquePointer?
  private var output: UnsafeMutablePointer<FILE>?
  private var input: UnsafeMutablePointer<FILE>?
  private var palette: Palette
  private var shown: Grid?
  private var closed = false

  /// Starts curses on stdin/stdout.
  ///
  /// - Parameters:
  ///   - color: `.never` for `--no-color`; `.auto` also honours `NO_COLOR`.
  ///   - asciiOnly: draw with ASCII even in a UTF-8 locale.
  /// - Throws: `TerminalError` when stdin/stdout is not a terminal or `$TERM` is unknown; the terminal
  ///   is left as it was.
  public init(color: ColorChoice = .auto, asciiOnly: Bool = false) throws(TerminalError) {
    guard isatty(0) == 1, isatty(1) == 1 else {
      throw TerminalError(.notATerminal, "stdin and stdout must be a terminal for the dashboard")
    }
    guard
      screenActive.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    else { throw TerminalError(.alreadyActive, "the dashboard is already running in this process") }

    // The locale decides whether wide characters work; it must be set before curses starts.
    setlocale(LC_ALL, "")
    let codeset = nc_codeset().map { String(cString: $0) } ?? ""
    charset = asciiOnly || codeset != "UTF-8" ? .ascii : .unicode

    // newterm, unlike initscr, returns NULL for an unknown TERM instead of exiting the process.
    // Private FILEs on dup'ed descriptors, so closing them leaves fds 0 and 1 alone.
    let outFD = dup(1)
    let inFD = dup(0)
    guard outFD >= 0, inFD >= 0, let out = fdopen(outFD, "w"), let inp = fdopen(inFD, "r") else {
      if outFD >= 0 { Glibc.close(outFD) }
      if inFD >= 0 { Glibc.close(inFD) }
      screenActive.store(false, ordering: .releasing)
      throw TerminalError(.system, "could not open the terminal: \(String(cString: strerror(errno)))")
    }
    installSignalHandlers()
    _ = exitHook
    guard let scr = newterm(nil, out, inp) else {
      removeSignalHandlers()
      fclose(out)
      fclose(inp)
      screenActive.store(false, ordering: .releasing)
      let term = getenv("TERM").map { String(cString: $0) } ?? "(unset)"
      throw TerminalError(.unknownTerminal, "unknown terminal type '\(term)' (TERM)")
    }
    screen = scr
    output = out
    input = inp
    set_term(scr)
    raw()  // Ctrl-C arrives as a key, so quitting always goes through the clean path
    noecho()
    nonl()
    let win = nc_stdscr()
    keypad(win, true)
    intrflush(win, false)
    curs_set(0)
    set_escdelay(25)

    let noColorEnv = getenv("NO_COLOR").map { $0.pointee != 0 } ?? false
    var useColors = false
    var useDefault = false
    if color == .auto, !noColorEnv, has_colors() {
      start_color()
      useColors = true
      useDefault = use_default_colors() == OK
    }
    colors = useColors
    defaultColors = useDefault
    palette = Palette.install(
      useColors ? .standard : .monochrome, colors: useColors, defaultColors: useDefault)
  }

  deinit { close() }

  /// The terminal's size in cells.
  public var size: (width: Int, height: Int) {
    var y: Int32 = 0
    var x: Int32 = 0
    nc_getmaxyx(nc_stdscr(), &y, &x)
    return (Int(max(0, x)), Int(max(0, y)))
  }

  /// Uses a colour scheme from now on (monochrome when the terminal has no colours).
  public func apply(_ scheme: ColorSchemeName) {
    guard !closed else { return }
    palette = Palette.install(colors ? scheme : .monochrome, colors: colors, defaultColors: defaultColors)
    shown = nil
  }

  /// Shows a grid: only cells that changed since the last call are sent, all of them when `full`.
  public func present(_ grid: Grid, full: Bool = false) {
    guard !closed else { return }
    let win = nc_stdscr()
    let previous = (full || shown?.width != grid.width || shown?.height != grid.height) ? nil : shown
    if previous == nil {
      werase(win)
      if full { clearok(win, true) }
    }
    var cc = cchar_t()
    let ascii = charset == .ascii
    for y in 0..<grid.height {
      var forceNext = false
      for x in 0..<grid.width {
        let cell = grid[x, y]
        let old = previous?[x, y]
        let changed = forceNext || old != cell
        // A double-width character that appears or disappears changes its right neighbour too.
        forceNext = changed && (grid[x + 1, y].isContinuation || previous?[x + 1, y].isContinuation == true)
        guard changed, !cell.isContinuation else { continue }
        var value = cell.scalar.value
        if ascii && (value > 0x7E || value < 0x20) { value = 0x3F }  // '?'
        let style = Int(cell.style.rawValue)
        var wide: (wchar_t, wchar_t) = (wchar_t(bitPattern: value), 0)
        withUnsafePointer(to: &wide) { p in
          p.withMemoryRebound(to: wchar_t.self, capacity: 2) { w in
            _ = setcchar(&cc, w, palette.attributes[style], palette.pairs[style], nil)
          }
        }
        // The bottom-right cell returns ERR (the cursor cannot advance) but is drawn.
        _ = mvwadd_wch(win, Int32(y), Int32(x), &cc)
      }
    }
    wnoutrefresh(win)
    doupdate()
    shown = grid
  }

  /// Waits up to `timeoutMilliseconds` for a key; nil on timeout, for keys without a name, or after a signal.
  public func readKey(timeoutMilliseconds: Int) -> Key? {
    guard !closed else { return nil }
    let win = nc_stdscr()
    wtimeout(win, Int32(clamping: max(0, timeoutMilliseconds)))
    var code: wint_t = 0
    let status = wget_wch(win, &code)
    guard status != ERR else { return nil }
    let key = decodeKey(status: status, code: UInt32(code))
    if key == .resize { shown = nil }
    return key
  }

  /// Forces the next `present` to repaint every cell.
  public func invalidate() { shown = nil }

  /// The signal that asked the program to stop (SIGINT, SIGTERM, SIGHUP), if one arrived.
  public var stopRequestedBySignal: Int32? {
    let s = stopSignal.load(ordering: .relaxed)
    return s == 0 ? nil : s
  }

  /// Ends curses and restores the terminal and signal handlers. Safe to call more than once.
  public func close() {
    guard !closed else { return }
    closed = true
    endwin()
    if let screen { delscreen(screen) }
    if let output { fclose(output) }
    if let input { fclose(input) }
    screen = nil
    output = nil
    input = nil
    removeSignalHandlers()
    screenActive.store(false, ordering: .releasing)
  }
}
