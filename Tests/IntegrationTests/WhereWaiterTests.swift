import ELFSymbols
import Foundation
import Inspector
import QEMULaunch
import Testing

/// Where lock waiters wait, read live from the real guest's contended default workload and
/// checked against binutils on the same ELF: the site is the first frame outside the lock and
/// scheduler code, a line in a function that calls into the lock.
@Suite(.serialized) struct WhereWaiterTests {
  /// Whether binutils places a frame in the guest's lock, wait or scheduler code (or a C
  /// header, or assembly without a file).
  static func isLockCode(_ line: WhereLineTests.Line) -> Bool {
    // As smptop does: a compiler-generated frame (line 0) has no source line of its own.
    guard let file = line.file, file != "<compiler-generated>" else { return true }
    return WaiterSites.lockCodeFiles.contains(file) || file.hasSuffix(".h")
  }

  @Test func aWaitersSiteIsALineInAFunctionThatCallsTheLock() async throws {
    try await BootedGuest.with(smp: 4) { guest in
      let elf = try ELFFile(path: guest.kernel)
      // site → (its lookup address, smptop's location, the lookup address of the frame inside it)
      var sites: [UInt64: (lookup: UInt64, location: CodeLocation, inner: UInt64?, lock: String)] = [:]
      var waiters = 0
      for _ in 0..<100 where sites.count < 6 {
        var snap = try guest.target.liveSnapshot()
        await guest.target.addBacktraces(to: &snap)
        for lock in snap.locks {
          for w in lock.waiters {
            guard let id = w.thread, id != 0 else { continue }
            waiters += 1
            guard let site = w.site, let location = w.location, sites[site] == nil else { continue }
            let bt = try #require(
              snap.threads.first { $0.id == id }?.backtrace, "waiter \(id) has a backtrace")
            let index = try #require(
              bt.frames.firstIndex { $0.address == site }, "the site is one of its frames")
            #expect(bt.frames[...index].allSatisfy { $0.trusted }, "frames up to the site are trusted")
            sites[site] = (
              bt.frames[index].lookupAddress, location, index > 0 ? bt.frames[index - 1].lookupAddress : nil,
              lock.name
            )
          }
        }
        try await Task.sleep(for: .milliseconds(40))
      }
      #expect(sites.count >= 3, "\(sites.count) distinct waiter sites among \(waiters) waiters seen")
      let lookups = Array(Set(sites.values.flatMap { [$0.lookup] + ($0.inner.map { [$0] } ?? []) }))
      let truth = try WhereLineTests.addr2line(guest.kernel, lookups)
      var directCalls = 0
      for (site, s) in sites {
        let context = "\(s.lock): site 0x\(String(site, radix: 16)) \(s.location.text)"
        let chain = try #require(truth[s.lookup], "addr2line answered\n\(context)")
        // binutils' chain at the same address, lock code passed over the same way: the first
        // frame left is the same file and line.
        let expected = try #require(
          chain.first { !Self.isLockCode($0) }, "outside lock code: \(chain)\n\(context)")
        #expect(
          "\(expected.file ?? "?"):\(expected.line)" == s.location.shortFileLine,
          "smptop \(s.location.text) vs addr2line \(chain)\n\(context)")
        // The frame inside it (the one the walk passed over) is lock or scheduler code.
        if let inner = s.inner, let innerChain = truth[inner] {
          #expect(
            innerChain.contains { Self.isLockCode($0) }, "the frame before the site \(innerChain)\n\(context)"
          )
        }
        // The instruction before the return address calls into the lock code.
        guard s.lookup == site - 1 else { continue }
        let bytes = try elf.bytes(atVirtualAddress: site - 5, count: 5)
        guard bytes.count == 5, bytes[0] == 0xE8 else { continue }  // an indirect call
        let rel = Int32(
          bitPattern: UInt32(bytes[1]) | UInt32(bytes[2]) << 8 | UInt32(bytes[3]) << 16 | UInt32(bytes[4])
            << 24)
        let callee = UInt64(bitPattern: Int64(bitPattern: site) &+ Int64(rel))
        let calleeLines = try WhereLineTests.addr2line(guest.kernel, [callee])[callee] ?? []
        #expect(
          calleeLines.contains { Self.isLockCode($0) },
          "the call before the site goes to lock code: \(calleeLines)\n\(context)")
        directCalls += 1
      }
      #expect(directCalls >= 1, "at least one site right after a direct call (\(directCalls))")
    }
  }
}
