// Console: the COM1 serial port shared by every lcpu. A line is built on the stack
// (`LogLine`, no heap) and written whole under a spinlock with interrupts off, prefixed
// with the time since kernel entry: "[    0.512] lcpu 3 online".

#if SMP_GUEST
  import KernelSupport

  /// The serial console (COM1, polled).
  enum Console {
    /// COM1's I/O base.
    static let port: UInt16 = 0x3F8

    /// Serialises whole lines between lcpus.
    nonisolated(unsafe) static let lock = SpinLock(klock_console_ptr())

    /// Set by the `quiet` command-line key: `detail` lines are dropped.
    nonisolated(unsafe) static var quiet = false

    /// Programs COM1 for 115200 8N1 with the FIFOs on.
    static func initialize() {
      outb(port + 1, 0x00)  // no interrupts
      outb(port + 3, 0x80)  // DLAB
      outb(port + 0, 0x01)  // divisor 1 = 115200
      outb(port + 1, 0x00)
      outb(port + 3, 0x03)  // 8N1
      outb(port + 2, 0xC7)  // FIFOs on, cleared
      outb(port + 4, 0x03)  // DTR, RTS
    }

    /// Writes one byte, waiting for the transmitter.
    static func put(_ byte: UInt8) {
      while inb(port + 5) & 0x20 == 0 { cpu_pause() }
      outb(port, byte)
    }

    /// Prints a line with a timestamp; safe on any lcpu, in any context but the panic path.
    static func log(_ line: LogLine) {
      _ = lock.withLock { write(line) }
    }

    /// Prints a line unless the console is quiet.
    static func detail(_ line: LogLine) {
      if !quiet { log(line) }
    }

    /// Prints a line from the panic path: takes the lock, breaking it first if this lcpu
    /// was interrupted while holding it (it will never release it now).
    static func emergency(_ line: LogLine) {
      lock.breakIfHeldByCurrentLCPU()
      _ = lock.withLock { write(line) }
    }

    /// Writes the timestamp, the line and a newline; the caller holds the lock.
    private static func write(_ line: LogLine) {
      var stamp = LogLine()
      let us = Timer.microsecondsSinceBoot()
      stamp.append("[")
      stamp.appendDecimal(us / 1_000_000, width: 5)
      stamp.append(".")
      stamp.appendDecimal(us / 1_000 % 1_000, width: 3, pad: UInt8(ascii: "0"))
      stamp.append("] ")
      stamp.forEachByte(put)
      line.forEachByte(put)
      put(UInt8(ascii: "\n"))
    }
  }

  /// One console line built on the stack from a string literal with interpolations:
  /// integers print in decimal, `\(hex: x)` in hex, `\(cstring: p)` a NUL-terminated string.
  struct LogLine: ExpressibleByStringInterpolation {
    /// Longest line; the rest is cut.
    static let capacity = 200

    private var bytes = InlineArray<200, UInt8>(repeating: 0)
    private var count = 0

    /// An empty line.
    init() {}

    /// A line that is just a literal.
    init(stringLiteral value: StaticString) { append(value) }

    /// A line assembled from an interpolated literal.
    init(stringInterpolation: Interpolation) { self = stringInterpolation.line }

    /// Calls `body` with every byte of the line in order.
    func forEachByte(_ body: (UInt8) -> Void) {
      for i in 0..<count { body(bytes[i]) }
    }

    /// Appends one byte (dropped once the line is full).
    mutating func append(byte: UInt8) {
      guard count < Self.capacity else { return }
      bytes[count] = byte
      count += 1
    }

    /// Appends a static string.
    mutating func append(_ s: StaticString) {
      s.withUTF8Buffer { buffer in
        for b in buffer { append(byte: b) }
      }
    }

    /// Appends a NUL-terminated C string (at most 256 bytes of it).
    mutating func append(cstring p: UnsafePointer<CChar>) {
      var i = 0
      while i < 256, p[i] != 0 {
        append(byte: UInt8(bitPattern: p[i]))
        i += 1
      }
    }

    /// Appends `v` in decimal, right-aligned to `width` with `pad`.
    mutating func appendDecimal(_ v: UInt64, width: Int = 0, pad: UInt8 = UInt8(ascii: " ")) {
      var digits = InlineArray<20, UInt8>(repeating: 0)
      var n = 0
      var rest = v
      repeat {
        digits[n] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
        rest /= 10
        n += 1
      } while rest != 0
      var w = n
      while w < width {
        append(byte: pad)
        w += 1
      }
      while n > 0 {
        n -= 1
        append(byte: digits[n])
      }
    }

    /// Appends `v` in hexadecimal with a 0x prefix.
    mutating func appendHex(_ v: UInt64) {
      append("0x")
      var shift = 60
      while shift > 0, (v >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
      while shift >= 0 {
        let nibble = UInt8(truncatingIfNeeded: (v >> UInt64(shift)) & 0xF)
        append(byte: nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ nibble &- 10)
        shift -= 4
      }
    }

    /// Builds a `LogLine` piece by piece for string interpolation.
    struct Interpolation: StringInterpolationProtocol {
      /// The line under construction.
      var line = LogLine()

      /// Starts an empty line.
      init(literalCapacity: Int, interpolationCount: Int) {}

      /// Appends a literal segment.
      mutating func appendLiteral(_ literal: StaticString) { line.append(literal) }

      /// Appends a static string.
      mutating func appendInterpolation(_ s: StaticString) { line.append(s) }

      /// Appends an integer in decimal.
      mutating func appendInterpolation<T: BinaryInteger>(_ v: T) {
        if v < 0 {
          line.append(byte: UInt8(ascii: "-"))
          line.appendDecimal(UInt64(truncatingIfNeeded: 0 - Int64(truncatingIfNeeded: v)))
        } else {
          line.appendDecimal(UInt64(truncatingIfNeeded: v))
        }
      }

      /// Appends an integer in decimal, right-aligned to `width`.
      mutating func appendInterpolation<T: BinaryInteger>(_ v: T, width: Int) {
        line.appendDecimal(UInt64(truncatingIfNeeded: v), width: width)
      }

      /// Appends an integer in hexadecimal.
      mutating func appendInterpolation<T: BinaryInteger>(hex v: T) {
        line.appendHex(UInt64(truncatingIfNeeded: v))
      }

      /// Appends a NUL-terminated C string.
      mutating func appendInterpolation(cstring p: UnsafePointer<CChar>) { line.append(cstring: p) }
    }
  }
#endif
