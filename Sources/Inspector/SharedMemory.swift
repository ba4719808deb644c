import Foundation
import InspectABI

#if canImport(Glibc)
  import Glibc
#endif

/// How guest-physical addresses map onto the RAM backing file of a pc or q35 machine.
///
/// QEMU splits RAM at `lowmem`: file[0, lowmem) appears at GPA 0 and file[lowmem, size)
/// at GPA 4 GiB (hw/i386/pc.c, pc_piix.c, pc_q35.c in QEMU 7.2).
public struct RAMLayout: Sendable, Equatable {
  /// Bytes of RAM below 4 GiB.
  public var lowMemory: UInt64
  /// Total RAM bytes (the file size).
  public var size: UInt64

  /// The layout QEMU 7.2 uses for `machine` ("pc" or "q35") with `size` bytes of RAM.
  public init(machine: String, size: UInt64) {
    let gib: UInt64 = 1 << 30
    let low: UInt64
    if machine.hasPrefix("q35") {
      low = size >= 0xB000_0000 ? 0x8000_0000 : size
    } else {
      // pc (i440fx): gigabyte-aligned split at 3 GiB from 3.5 GiB of RAM, else 0xe0000000.
      if size >= 0xE000_0000 { low = 3 * gib } else { low = size }
    }
    self.lowMemory = min(low, size)
    self.size = size
  }

  /// An explicit layout.
  public init(lowMemory: UInt64, size: UInt64) {
    self.lowMemory = min(lowMemory, size)
    self.size = size
  }

  /// The file offset of guest-physical `address`, if `count` bytes from it are all RAM.
  public func fileOffset(of address: UInt64, count: Int) -> UInt64? {
    let count = UInt64(clamping: count)
    let four: UInt64 = 1 << 32
    if address < lowMemory {
      return count <= lowMemory - address ? address : nil
    }
    guard address >= four else { return nil }
    let high = address - four
    let highSize = size - lowMemory
    guard high <= highSize, count <= highSize - high else { return nil }
    return lowMemory + high
  }
}

/// Guest RAM read live from QEMU's `memory-backend-file,share=on` file, mapped read-only.
///
/// The guest writes while we read, so the reads are ordered for the seqlock check
/// (smptop_seqlock.h): every word read is a load-acquire, and an acquire fence stands before
/// and after every range copied. A sequence word, a record and the word again therefore read
/// in that order on any host, also a weakly ordered one (arm64).
public final class SharedMemory: GuestMemory {
  public let kind = MemorySourceKind.sharedRAM
  public let isLive = true
  /// The address-to-offset layout in use.
  public let layout: RAMLayout
  private let base: UnsafeRawPointer
  private let length: Int

  /// Maps `path` read-only. `machine` selects the pc or q35 split above 4 GiB.
  public init(path: String, machine: String = "pc") throws(GuestMemoryError) {
    let probe = MemoryRange(address: 0, count: 0)
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw GuestMemoryError(
        .sourceFailed, probe, "cannot open memory file \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_size > 0 else {
      throw GuestMemoryError(.sourceFailed, probe, "memory file \(path) is empty or unreadable")
    }
    let length = Int(info.st_size)
    guard let mapped = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
      throw GuestMemoryError(.sourceFailed, probe, "cannot map \(path): \(String(cString: strerror(errno)))")
    }
    self.base = UnsafeRawPointer(mapped)
    self.length = length
    self.layout = RAMLayout(machine: machine, size: UInt64(length))
  }

  deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

  public func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    let results = ranges.map { range -> Result<[UInt8], GuestMemoryError> in
      guard range.count >= 0, let offset = layout.fileOffset(of: range.address, count: range.count),
        offset + UInt64(range.count) <= UInt64(length)
      else {
        return .failure(GuestMemoryError(.outOfRange, range, "outside guest RAM (\(length) bytes)"))
      }
      smptop_seq_fence()  // earlier loads (a sequence word, an earlier range) stay before this copy
      return .success(Array(UnsafeRawBufferPointer(start: base + Int(offset), count: range.count)))
    }
    smptop_seq_fence()  // this copy's loads stay before any later read
    return results
  }

  /// Loads each word straight from the mapping (load-acquire): one allocation for all of them.
  public func words(_ addresses: [UInt64]) -> [UInt64?] {
    smptop_seq_fence()  // records copied before stay before these loads
    return addresses.map { address in
      guard let offset = layout.fileOffset(of: address, count: 8), offset + 8 <= UInt64(length) else {
        return nil
      }
      return smptop_seq_load(base + Int(offset))
    }
  }

  /// Copies every range, packed in order, into `buffer`: one acquire fence before the first
  /// copy and one after the last, so words loaded before stay before every copied byte and
  /// words loaded after stay after them.
  public func copy(_ ranges: [MemoryRange], into buffer: UnsafeMutableRawBufferPointer) -> [(
    index: Int, error: GuestMemoryError
  )] {
    var failures: [(index: Int, error: GuestMemoryError)] = []
    var at = 0
    smptop_seq_fence()
    for (i, range) in ranges.enumerated() {
      let count = max(range.count, 0)
      defer { at += count }
      guard let offset = layout.fileOffset(of: range.address, count: count),
        offset + UInt64(count) <= UInt64(length), at + count <= buffer.count, let target = buffer.baseAddress
      else {
        failures.append((i, GuestMemoryError(.outOfRange, range, "outside guest RAM (\(length) bytes)")))
        continue
      }
      memcpy(target + at, base + Int(offset), count)
    }
    smptop_seq_fence()
    return failures
  }

  /// Loads each word straight from the mapping (load-acquire) into `values`, allocating only
  /// when their number changes.
  public func words(_ addresses: [UInt64], into values: inout [UInt64]) {
    if values.count != addresses.count { values = [UInt64](repeating: 0, count: addresses.count) }
    smptop_seq_fence()
    values.withUnsafeMutableBufferPointer { out in
      for (i, address) in addresses.enumerated() {
        guard let offset = layout.fileOffset(of: address, count: 8), offset + 8 <= UInt64(length) else {
          out[i] = unreadableWord
          continue
        }
        out[i] = smptop_seq_load(base + Int(offset))
      }
    }
  }

  /// Copies `count` bytes at `address` into `buffer` without allocating, between two acquire
  /// fences like `read`.
  public func copy(_ address: UInt64, count: Int, into buffer: UnsafeMutableRawPointer) -> Bool {
    guard count >= 0, let offset = layout.fileOffset(of: address, count: count),
      offset + UInt64(count) <= UInt64(length)
    else { return false }
    smptop_seq_fence()
    memcpy(buffer, base + Int(offset), count)
    smptop_seq_fence()
    return true
  }
}

/// The shared RAM file read while the VM is stopped: the same bytes as ``SharedMemory``, but
/// frozen, so a snapshot is exactly consistent without sequence checks and a record caught
/// mid-update (its sequence word odd) is marked inconsistent at once.
public final class StoppedSharedMemory: GuestMemory {
  public let kind = MemorySourceKind.sharedRAM
  public let isLive = false
  /// The mapping read.
  public let shared: SharedMemory

  /// A frozen view of `shared`; read it only while every vCPU is stopped.
  public init(_ shared: SharedMemory) {
    self.shared = shared
  }

  public func read(_ ranges: [MemoryRange]) -> [Result<[UInt8], GuestMemoryError>] {
    shared.read(ranges)
  }

  public func words(_ addresses: [UInt64]) -> [UInt64?] {
    shared.words(addresses)
  }

  public func copy(_ ranges: [MemoryRange], into buffer: UnsafeMutableRawBufferPointer) -> [(
    index: Int, error: GuestMemoryError
  )] {
    shared.copy(ranges, into: buffer)
  }

  public func words(_ addresses: [UInt64], into values: inout [UInt64]) {
    shared.words(addresses, into: &values)
  }
}
