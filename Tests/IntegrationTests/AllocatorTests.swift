import Foundation
import Inspector
import Testing

/// Issue 7: the buddy allocator's records in both modes, from the real guest.
@Suite(.serialized) struct AllocatorTests {
  @Test(arguments: ["locked", "lockfree"])
  func churnSelfCheckAndAccountingAddUp(mode: String) async throws {
    // alloc.churn_s=6: churn for six seconds, then a final self-check and quiet, so the
    // lock-free mode's per-order free counts (refreshed at checkpoints) add up at the stop.
    try await BootedGuest.with(smp: 4, append: "alloc=\(mode) alloc.churn_s=6") { guest in
      let first = try await guest.waitFor("allocator churn", timeout: .seconds(60)) {
        ($0.allocator?.orders.reduce(0) { $0 + $1.allocs } ?? 0) > 100 && ($0.allocator?.churnChecks ?? 0) > 0
      }
      let alloc = try #require(first.allocator)
      #expect(alloc.mode == mode)
      #expect(alloc.churnFailures == 0)
      #expect(alloc.orders.count >= 11, "orders 4 KiB ... 4 MiB")
      #expect(alloc.orders.first?.blockBytes == 4096)
      // Once the churn has stopped (allocations no longer move) the accounting adds up exactly.
      var previousTotal: UInt64 = 0
      let quiet = try await guest.waitFor("the churn to stop", timeout: .seconds(90), interval: 500) { snap in
        guard let a = snap.allocator else { return false }
        let total = a.orders.reduce(0) { $0 + $1.allocs }
        defer { previousTotal = total }
        return total == previousTotal && a.heapAllocs == a.heapFrees
      }
      #expect(quiet.allocator?.lcpuAllocs.count == 4)
      #expect(quiet.allocator?.lcpuAllocs.allSatisfy { $0 > 0 } == true, "every lcpu allocated")
      #expect(quiet.allocator?.churnFailures == 0)
      try await guest.target.pause()
      let stopped = try #require(try await guest.target.stoppedSnapshot().allocator)
      // Live counters: free pages + every block in use = managed memory, in both modes.
      let used = stopped.orders.reduce(UInt64(0)) { $0 + $1.usedBlocks * $1.blockBytes }
      #expect(stopped.pagesFree * stopped.pageBytes + used == stopped.pagesManaged * stopped.pageBytes)
      if mode == "locked" {
        // Per-order free lists are exact in locked mode (lock-free refreshes them at checkpoints).
        let accounted = stopped.orders.reduce(UInt64(0)) {
          $0 + ($1.freeBlocks + $1.usedBlocks) * $1.blockBytes
        }
        #expect(accounted == stopped.pagesManaged * stopped.pageBytes)
      }
    }
  }
}
