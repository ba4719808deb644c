/// libFuzzer entry: bytes from a gdbstub fed to the RSP packet decoder in fuzzer-chosen chunks,
/// every decoded payload then parsed as a stop reply.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard let first = bytes.first else { return 0 }
  let chunk = Int(first % 32) + 1
  var decoder = PacketDecoder(maximumPacketSize: 4096)
  var offset = 1
  while offset < bytes.count {
    let end = min(bytes.count, offset + chunk)
    for event in decoder.feed(Array(bytes[offset..<end])) {
      if case .packet(let packet) = event {
        if let reply = StopReply(parsing: packet.payload) {
          _ = reply.signal
          _ = reply.watchAddress
          _ = reply.isExit
          _ = reply.description
        }
      }
    }
    offset = end
  }
  // The whole input as one payload, too: stop replies straight from the fuzzer.
  if let reply = StopReply(parsing: bytes.dropFirst()) { _ = reply.signal }
  return 0
}
