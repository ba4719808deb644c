/// Reads typed fields out of a reply object, failing with `.unexpectedReply` when a required
/// field is missing or has the wrong type. Unknown fields are ignored (QEMU adds fields over time).
struct ReplyFields {
  let object: [String: JSONValue]
  let context: String

  init(_ value: JSONValue, context: String) throws(QMPError) {
    guard let object = value.objectValue else {
      throw QMPError(.unexpectedReply, "\(context): expected a JSON object, got \(value)")
    }
    self.object = object
    self.context = context
  }

  private func missing(_ key: String, _ type: String) -> QMPError {
    if let value = object[key] {
      return QMPError(.unexpectedReply, "\(context): field \"\(key)\" should be \(type), got \(value)")
    }
    return QMPError(.unexpectedReply, "\(context): required field \"\(key)\" is missing")
  }

  func string(_ key: String) throws(QMPError) -> String {
    guard let value = object[key]?.stringValue else { throw missing(key, "a string") }
    return value
  }

  func bool(_ key: String) throws(QMPError) -> Bool {
    guard let value = object[key]?.boolValue else { throw missing(key, "a boolean") }
    return value
  }

  func int(_ key: String) throws(QMPError) -> Int {
    guard let value = object[key]?.intValue else { throw missing(key, "an integer") }
    return value
  }

  func uint64(_ key: String) throws(QMPError) -> UInt64 {
    guard let value = object[key]?.uint64Value else { throw missing(key, "an unsigned integer") }
    return value
  }

  func optionalString(_ key: String) -> String? { object[key]?.stringValue }
  func optionalBool(_ key: String) -> Bool? { object[key]?.boolValue }
  func optionalInt(_ key: String) -> Int? { object[key]?.intValue }
  func optionalUInt64(_ key: String) -> UInt64? { object[key]?.uint64Value }

  func stringArray(_ key: String) -> [String] {
    object[key]?.arrayValue?.compactMap(\.stringValue) ?? []
  }
}
