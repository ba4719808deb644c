import InspectABI
import Inspector
import Testing

/// The trace classes live in Model, which has no dependencies, so they spell the bits of
/// `enum smptop_trace_class` as numbers: they must be the header's.
@Suite struct TraceClassBitsTests {
  @Test func theClassesAreTheHeadersBits() {
    let pairs: [(TraceClasses, UInt32)] = [
      (.locks, SMPTOP_TRACE_LOCKS.rawValue), (.irq, SMPTOP_TRACE_IRQ.rawValue),
      (.sched, SMPTOP_TRACE_SCHED.rawValue), (.timer, SMPTOP_TRACE_TIMER.rawValue),
      (.virtio, SMPTOP_TRACE_VIRTIO.rawValue), (.alloc, SMPTOP_TRACE_ALLOC.rawValue),
    ]
    for (set, bit) in pairs { #expect(set.rawValue == UInt64(bit), "\(set.spelled)") }
    #expect(TraceClasses.all.rawValue == pairs.reduce(0) { $0 | UInt64($1.1) })
    // Negative control: two different classes do not share a bit.
    #expect(TraceClasses.locks.rawValue != UInt64(SMPTOP_TRACE_IRQ.rawValue))
  }
}
