import Glibc

/// Why an ELF file, a System.map or a lookup in them failed.
public struct ELFError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The kind of failure.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    enum Storage: Hashable, Sendable {
      case io, notELF, unsupported, truncated, malformed, addressNotInFile, notFound
    }
    let storage: Storage

    /// The file could not be opened or read (`errno` says why).
    public static let io = Code(storage: .io)
    /// The bytes do not start with the ELF magic (or a System.map line is unreadable).
    public static let notELF = Code(storage: .notELF)
    /// A valid ELF this reader does not handle (32-bit, big-endian).
    public static let unsupported = Code(storage: .unsupported)
    /// A header or table extends past the end of the file.
    public static let truncated = Code(storage: .truncated)
    /// Inconsistent contents: bad entry sizes, indexes out of range, unterminated strings.
    public static let malformed = Code(storage: .malformed)
    /// No section or segment of the file holds bytes for the requested address range.
    public static let addressNotInFile = Code(storage: .addressNotInFile)
    /// A named section or symbol does not exist.
    public static let notFound = Code(storage: .notFound)

    public var description: String {
      switch storage {
      case .io: "io"
      case .notELF: "notELF"
      case .unsupported: "unsupported"
      case .truncated: "truncated"
      case .malformed: "malformed"
      case .addressNotInFile: "addressNotInFile"
      case .notFound: "notFound"
      }
    }
  }

  /// The kind of failure.
  public var code: Code
  /// A sentence saying what is wrong and where.
  public var message: String
  /// The system error number, for I/O failures.
  public var errno: Int32?

  /// Creates an error.
  public init(_ code: Code, _ message: String, errno: Int32? = nil) {
    self.code = code
    self.message = message
    self.errno = errno
  }

  public var description: String {
    if let errno { return "\(message) (\(String(cString: strerror(errno))))" }
    return message
  }
}
