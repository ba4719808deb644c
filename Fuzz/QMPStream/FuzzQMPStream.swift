import Foundation

/// libFuzzer entry: QEMU's QMP byte stream, split into messages at fuzzer-chosen chunk
/// boundaries, each message decoded as JSON and then as every reply and event smptop reads.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard let first = bytes.first else { return 0 }
  // The first byte picks the chunk size, so the splitter sees messages cut anywhere.
  let chunk = Int(first % 64) + 1
  var splitter = JSONStreamSplitter(maximumMessageSize: 1 << 16)
  var offset = 1
  while offset < bytes.count {
    let end = min(bytes.count, offset + chunk)
    guard let messages = try? splitter.append(bytes[offset..<end]) else { return 0 }
    for message in messages { decode(message) }
    offset = end
  }
  return 0
}

/// Decodes one message every way the client would.
func decode(_ message: Data) {
  guard let value = try? JSONValue(jsonText: message) else { return }
  _ = value.jsonText()
  _ = try? QMPGreeting(value["QMP"] ?? value)
  _ = try? QMPStatus(value["return"] ?? value)
  _ = try? QMPCPUInfo(value)
  _ = try? VirtioDeviceInfo(value)
  _ = try? VirtioStatus(value)
  _ = try? VirtioQueueStatus(value)
  _ = VirtioFeatures(value)
  if case .object(let object) = value { _ = try? QMPEvent(message: object) }
  if case .array(let elements) = value["return"] ?? .null {
    for element in elements {
      _ = try? QMPCPUInfo(element)
      _ = try? VirtioDeviceInfo(element)
    }
  }
}
