/// Something wrong with a ring, reported instead of decoding garbage.
public struct TraceProblem: Error, Sendable, Equatable, Codable, CustomStringConvertible {
  /// The ring's lcpu (or table slot) it concerns.
  public var ring: UInt32
  /// What is wrong, for a person.
  public var message: String
  /// Which rings: "trace" or "profile" (not encoded).
  public var rings = "trace"

  enum CodingKeys: String, CodingKey {
    case ring, message
  }

  /// Creates a problem.
  public init(ring: UInt32, _ message: String) {
    self.ring = ring
    self.message = message
  }

  public var description: String { "\(rings) ring \(ring): \(message)" }
}
