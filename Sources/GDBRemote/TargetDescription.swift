/// One register as the target description declares it.
public struct RegisterDescription: Sendable, Equatable {
  /// The register's name (`rip`, `eflags`, `xmm0`).
  public var name: String
  /// The size in bits.
  public var bitSize: Int
  /// The number used by `p`/`P` and that fixes its place in the `g` packet.
  public var number: Int
  /// The declared type (`int64`, `code_ptr`, `x64_eflags`, `vec128`, …).
  public var type: String
  /// The declared group (`float`, `vector`, …), if any.
  public var group: String?
  /// The name of the `<feature>` that declares it.
  public var feature: String?
  /// The byte offset of the register's value within a `g` reply.
  public var offset: Int

  /// The size in bytes (bit size rounded up).
  public var byteSize: Int { (bitSize + 7) / 8 }

  /// Creates a register description.
  public init(
    name: String, bitSize: Int, number: Int, type: String, group: String? = nil,
    feature: String? = nil, offset: Int = 0
  ) {
    self.name = name
    self.bitSize = bitSize
    self.number = number
    self.type = type
    self.group = group
    self.feature = feature
    self.offset = offset
  }
}

/// The target description: architecture and registers, from `target.xml`.
///
/// Fetched with `qXfer:features:read` and parsed (including `xi:include`d files such as
/// QEMU's `i386-64bit.xml`), so register layouts are never guessed from a table.
public struct TargetDescription: Sendable, Equatable {
  /// The `<architecture>` text (`i386:x86-64`), if any.
  public var architecture: String?
  /// Registers in declaration order, which for gdb is also ascending number order.
  public var registers: [RegisterDescription]
  /// The names of the features, in order.
  public var features: [String]

  /// Creates a description from registers; offsets are recomputed from the numbers.
  public init(architecture: String?, registers: [RegisterDescription], features: [String] = []) {
    self.architecture = architecture
    self.features = features
    // The `g` packet holds registers in number order, each bitSize/8 bytes.
    var sorted = registers.enumerated().sorted {
      ($0.element.number, $0.offset) < ($1.element.number, $1.offset)
    }
    var offset = 0
    for index in sorted.indices {
      sorted[index].element.offset = offset
      offset += sorted[index].element.byteSize
    }
    var withOffsets = registers
    for (original, element) in sorted { withOffsets[original] = element }
    self.registers = withOffsets
  }

  /// The number of bytes all registers take in a `g` reply.
  public var registerBytes: Int { registers.reduce(0) { $0 + $1.byteSize } }

  /// The register called `name`, if declared.
  public func register(named name: String) -> RegisterDescription? {
    registers.first { $0.name == name }
  }

  /// The register with number `number`, if declared.
  public func register(number: Int) -> RegisterDescription? {
    registers.first { $0.number == number }
  }

  /// Parses a target description document.
  ///
  /// - Parameters:
  ///   - xml: The document (`target.xml`).
  ///   - name: Its file name, for error messages and include-cycle detection.
  ///   - include: Fetches an `xi:include`d file by its `href`.
  /// - Returns: The description with registers numbered and laid out as gdb does.
  public static func parse(
    xml: [UInt8], name: String = "target.xml",
    include: (String) throws(GDBRemoteError) -> [UInt8] = { href throws(GDBRemoteError) in
      throw GDBRemoteError(.invalidTargetDescription, "no loader for included file \(href)")
    }
  ) throws(GDBRemoteError) -> TargetDescription {
    var builder = Builder()
    try builder.read(xml: xml, name: name, include: include, depth: 0)
    guard !builder.registers.isEmpty else {
      throw GDBRemoteError(.invalidTargetDescription, "\(name) declares no registers")
    }
    return TargetDescription(
      architecture: builder.architecture, registers: builder.registers, features: builder.features)
  }

  private struct Builder {
    var architecture: String?
    var registers: [RegisterDescription] = []
    var features: [String] = []
    var nextNumber = 0
    var visiting: [String] = []

    mutating func read(
      xml: [UInt8], name: String, include: (String) throws(GDBRemoteError) -> [UInt8], depth: Int
    ) throws(GDBRemoteError) {
      guard depth < 8 else {
        throw GDBRemoteError(.invalidTargetDescription, "xi:include nested too deeply at \(name)")
      }
      guard !visiting.contains(name) else {
        throw GDBRemoteError(.invalidTargetDescription, "xi:include cycle through \(name)")
      }
      visiting.append(name)
      defer { visiting.removeLast() }

      let tokens: [XMLScanner.Token]
      do throws(XMLScanner.Failure) {
        tokens = try XMLScanner.tokenize(xml)
      } catch {
        throw GDBRemoteError(
          .invalidTargetDescription, "\(name): \(error.message) at byte \(error.offset)")
      }
      var currentFeature: String? = nil
      var inArchitecture = false
      for token in tokens {
        switch token {
        case .start(let element, let attributes, let selfClosing):
          switch element {
          case "architecture":
            inArchitecture = !selfClosing
          case "feature":
            currentFeature = attributes["name"]
            if let f = currentFeature { features.append(f) }
            if selfClosing { currentFeature = nil }
          case "xi:include", "include":
            guard let href = attributes["href"], !href.isEmpty else {
              throw GDBRemoteError(.invalidTargetDescription, "\(name): xi:include without href")
            }
            let saved = currentFeature
            let included = try include(href)
            try read(xml: included, name: href, include: include, depth: depth + 1)
            currentFeature = saved
          case "reg":
            try addRegister(attributes, feature: currentFeature, file: name)
          default:
            break
          }
        case .end(let element):
          if element == "architecture" { inArchitecture = false }
          if element == "feature" { currentFeature = nil }
        case .text(let text):
          if inArchitecture {
            architecture = text.trimmingWhitespace()
          }
        }
      }
    }

    mutating func addRegister(_ a: [String: String], feature: String?, file: String) throws(GDBRemoteError) {
      guard let name = a["name"], !name.isEmpty else {
        throw GDBRemoteError(.invalidTargetDescription, "\(file): <reg> without a name")
      }
      guard let bitsText = a["bitsize"], let bits = Int(bitsText), bits > 0, bits <= 8192 else {
        throw GDBRemoteError(.invalidTargetDescription, "\(file): register \(name) has a bad bitsize")
      }
      var number = nextNumber
      if let r = a["regnum"] {
        guard let n = Int(r), n >= 0, n < 1 << 20 else {
          throw GDBRemoteError(.invalidTargetDescription, "\(file): register \(name) has a bad regnum")
        }
        number = n
      }
      guard !registers.contains(where: { $0.number == number || $0.name == name }) else {
        throw GDBRemoteError(
          .invalidTargetDescription, "\(file): register \(name) (number \(number)) declared twice")
      }
      nextNumber = number + 1
      registers.append(
        RegisterDescription(
          name: name, bitSize: bits, number: number, type: a["type"] ?? "int",
          group: a["group"], feature: feature))
    }
  }
}

extension String {
  func trimmingWhitespace() -> String {
    let scalars = unicodeScalars
    guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
      let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
    else { return "" }
    return String(scalars[first...last])
  }
}
