import Foundation

/// A JSON value as QMP sends and receives it: a `Sendable` value type, decoded and encoded
/// with Foundation's `JSONDecoder`/`JSONEncoder` (no hand-written parser).
///
/// Integers keep their full 64-bit precision (guest addresses, feature bitmasks): a number
/// without a fraction decodes as `.int`, or `.uint` when it exceeds `Int64.max`; anything
/// else becomes `.double`.
public enum JSONValue: Sendable, Hashable {
  case null
  case bool(Bool)
  case int(Int64)
  case uint(UInt64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])
}

extension JSONValue {
  /// The member `key` of an object, or nil (also for non-objects).
  public subscript(key: String) -> JSONValue? {
    if case .object(let members) = self { return members[key] }
    return nil
  }

  /// The element at `index` of an array, or nil when out of range or not an array.
  public subscript(index: Int) -> JSONValue? {
    if case .array(let elements) = self, elements.indices.contains(index) { return elements[index] }
    return nil
  }

  /// The members of an object, or nil.
  public var objectValue: [String: JSONValue]? {
    if case .object(let members) = self { return members }
    return nil
  }

  /// The elements of an array, or nil.
  public var arrayValue: [JSONValue]? {
    if case .array(let elements) = self { return elements }
    return nil
  }

  /// The string, or nil.
  public var stringValue: String? {
    if case .string(let value) = self { return value }
    return nil
  }

  /// The boolean, or nil.
  public var boolValue: Bool? {
    if case .bool(let value) = self { return value }
    return nil
  }

  /// The number as an `Int64` when it is an integer that fits, or nil.
  public var int64Value: Int64? {
    switch self {
    case .int(let value): return value
    case .uint(let value): return Int64(exactly: value)
    case .double(let value): return Int64(exactly: value)
    default: return nil
    }
  }

  /// The number as an `Int` when it is an integer that fits, or nil.
  public var intValue: Int? { int64Value.flatMap { Int(exactly: $0) } }

  /// The number as a `UInt64` when it is a non-negative integer that fits, or nil.
  public var uint64Value: UInt64? {
    switch self {
    case .int(let value): return UInt64(exactly: value)
    case .uint(let value): return value
    case .double(let value): return UInt64(exactly: value)
    default: return nil
    }
  }

  /// The number as a `Double`, or nil.
  public var doubleValue: Double? {
    switch self {
    case .int(let value): return Double(value)
    case .uint(let value): return Double(value)
    case .double(let value): return value
    default: return nil
    }
  }

  /// Whether this is `.null`.
  public var isNull: Bool { self == .null }
}

extension JSONValue: Codable {
  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Int64.self) {
      self = .int(value)
    } else if let value = try? container.decode(UInt64.self) {
      self = .uint(value)
    } else if let value = try? container.decode(Double.self) {
      self = .double(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([JSONValue].self) {
      self = .array(value)
    } else {
      self = .object(try container.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let value): try container.encode(value)
    case .int(let value): try container.encode(value)
    case .uint(let value): try container.encode(value)
    case .double(let value): try container.encode(value)
    case .string(let value): try container.encode(value)
    case .array(let value): try container.encode(value)
    case .object(let value): try container.encode(value)
    }
  }
}

extension JSONValue {
  /// Decodes one JSON text (RFC 8259) with `JSONDecoder`.
  public init(jsonText data: Data) throws {
    self = try JSONDecoder().decode(JSONValue.self, from: data)
  }

  /// The compact JSON text of this value (keys sorted, so output is deterministic).
  public func jsonText() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding a JSONValue cannot fail: every case maps to a JSON primitive or container,
    // except a non-finite double, which JSON cannot express; encode that as null.
    if let data = try? encoder.encode(self) { return data }
    return Data("null".utf8)
  }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
  ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral,
  ExpressibleByNilLiteral
{
  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int64) { self = .int(value) }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(floatLiteral value: Double) { self = .double(value) }
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }
  public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: CustomStringConvertible {
  public var description: String { String(decoding: jsonText(), as: UTF8.self) }
}
