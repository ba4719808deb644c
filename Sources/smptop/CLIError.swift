import ArgumentParser

/// An error the command line reports as one line and a distinct exit code.
struct CLIError: Error, CustomStringConvertible {
  /// Exit codes a script can act on.
  enum Code: Int32 {
    /// Bad usage or arguments.
    case usage = 2
    /// QEMU missing or failed to start.
    case qemu = 3
    /// Could not connect to the gdbstub or QMP socket.
    case connect = 4
    /// The guest's inspection ABI is missing or of another version.
    case abi = 5
    /// A symbol or the kernel ELF could not be found or read.
    case symbols = 6
    /// The guest build failed.
    case build = 7
    /// Guest memory could not be read.
    case memory = 8
    /// The guest panicked or exited with an error (run --headless).
    case guest = 9
  }

  var message: String
  var code: Code

  init(_ message: String, code: Code) {
    self.message = message
    self.code = code
  }

  var description: String { message }
}
