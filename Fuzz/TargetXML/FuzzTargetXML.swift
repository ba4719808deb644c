/// libFuzzer entry: a gdbstub's target description. The input is the main document, a NUL,
/// then the document every `xi:include` returns (so includes, their cycles and depth are fuzzed).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard !bytes.isEmpty else { return 0 }
  let body = bytes.dropFirst()
  let split = body.firstIndex(of: 0) ?? body.endIndex
  let main = Array(body[body.startIndex..<split])
  let included = split < body.endIndex ? Array(body[(split + 1)...]) : []
  if let description = try? TargetDescription.parse(xml: main, include: { _ in included }) {
    _ = description.registers.count
  }
  return 0
}
