// libFuzzer target: every input is a script for the scripted QEMU 7.2 stub (which faults
// to inject where, which calls to make, how to fragment the stream), run against the real
// client on a virtual clock. A result that belongs to another request, a request run
// twice, or a call that does not end within its bound stops the fuzzer.

/// Runs one script taken from the fuzz input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let run = ScriptRun.run(choices: ScriptChoices(bytes: bytes), rates: FaultRates(), callCount: 10)
  if !run.violations.isEmpty {
    fatalError("reply ownership violated: \(run.violations)")
  }
  return 0
}
