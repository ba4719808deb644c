// Virtqueue: one split virtqueue (virtio 1.0 §2.6) with its own packet buffers, and the
// static pool both come from. Descriptor i always points at buffer i (bufferSize bytes),
// so a used element's id names its buffer. RX queues keep every descriptor posted
// (device-writable); TX queues keep a stack of free descriptors and reclaim completions.
// EVENT_IDX is not negotiated: the driver kicks unless used.flags says NO_NOTIFY, and
// suppresses interrupts with avail.flags = NO_INTERRUPT when the queue is polled.
//
// Concurrency: a queue is touched only by its owning lcpu, with interrupts off (its
// MSI-X handler, its timer tick), after the BSP set it up before DRIVER_OK. No lock.
// Its smptop_virtq record is written only by that lcpu; indices under the record's seq.

#if SMP_GUEST
  import KernelSupport

  /// Bump allocation from virtio_pool (rings, buffers, ABI records); never freed.
  enum VirtioPool {
    nonisolated(unsafe) static var used: UInt64 = 0

    /// `bytes` zeroed bytes aligned to `align`, or 0 when the pool is exhausted.
    static func allocate(_ bytes: UInt64, align: UInt64 = 4096) -> UInt64 {
      let start = (used + align - 1) & ~(align - 1)
      guard start + bytes <= virtio_pool_size() else { return 0 }
      used = start + bytes
      return virtio_pool_base() + start
    }
  }

  /// One split virtqueue.
  final class Virtqueue {
    static let descNext: UInt16 = 1
    static let descWrite: UInt16 = 2
    static let bufferSize: UInt64 = 2048

    let index: UInt16
    let size: UInt16
    let desc: UInt64
    let avail: UInt64
    let used: UInt64
    let buffers: UInt64
    let bufferBytes: UInt64
    let record: UnsafeMutablePointer<smptop_virtq>
    var notifyAddress: UInt64 = 0
    /// Next avail index to publish, and the consumed position in the used ring.
    var availIdx: UInt16 = 0
    var lastUsed: UInt16 = 0
    /// Free descriptors (TX/ctrl): a stack of indices.
    var freeStack: UnsafeMutablePointer<UInt16>
    var freeCount: UInt16 = 0
    /// Set by the BSP once the device runs; the owner ignores the queue before.
    var ready = false

    /// Allocates a queue of `size` entries (a power of two ≤ 256) from the pool; nil if it is
    /// exhausted.
    init?(index: UInt16, size: UInt16, record: UnsafeMutablePointer<smptop_virtq>, bufferBytes: UInt64) {
      let d = VirtioPool.allocate(4096)
      let a = VirtioPool.allocate(4096)
      let u = VirtioPool.allocate(4096)
      let b = VirtioPool.allocate(UInt64(size) * bufferBytes)
      let s = VirtioPool.allocate(UInt64(size) * 2, align: 8)
      guard d != 0, a != 0, u != 0, b != 0, s != 0,
        let stack = UnsafeMutablePointer<UInt16>(bitPattern: UInt(s))
      else { return nil }
      self.index = index
      self.size = size
      desc = d
      avail = a
      used = u
      buffers = b
      self.bufferBytes = bufferBytes
      freeStack = stack
      self.record = record
      for i in 0..<size {
        let e = d + UInt64(i) * 16
        vio_w64(e, b + UInt64(i) * bufferBytes)
        vio_w32(e + 8, UInt32(truncatingIfNeeded: bufferBytes))
        vio_w16(e + 12, 0)
        vio_w16(e + 14, 0)
        stack[Int(i)] = size - 1 - i
      }
      freeCount = size
      record.pointee.index = UInt32(index)
      record.pointee.size = UInt32(size)
      record.pointee.free_descs = UInt32(size)
      record.pointee.desc_addr = d
      record.pointee.avail_addr = a
      record.pointee.used_addr = u
    }

    /// Buffer of descriptor `i`.
    func buffer(_ i: UInt16) -> UnsafeMutablePointer<UInt8> {
      UnsafeMutablePointer<UInt8>(bitPattern: UInt(buffers + UInt64(i) * bufferBytes))!
    }

    /// Sets descriptor `i`'s length, flags and next.
    func setDesc(_ i: UInt16, length: UInt32, flags: UInt16, next: UInt16 = 0) {
      let e = desc + UInt64(i) * 16
      vio_w32(e + 8, length)
      vio_w16(e + 12, flags)
      vio_w16(e + 14, next)
    }

    /// Puts chain head `head` in the avail ring (published by `publish`).
    func push(_ head: UInt16) {
      vio_w16(avail + 4 + UInt64(availIdx & (size - 1)) * 2, head)
      availIdx &+= 1
    }

    /// Publishes avail.idx; kicks the device unless it asked not to. Returns whether it kicked.
    @discardableResult
    func publish() -> Bool {
      vio_wmb()
      vio_w16(avail + 2, availIdx)
      vio_mb()
      var kicked = false
      if vio_r16(used) & 1 == 0 {
        vio_w16(notifyAddress, index)
        abi_inc(&record.pointee.kicks)
        kicked = true
        if Trace.on(SMPTOP_TRACE_VIRTIO) {
          Trace.emit(SMPTOP_TRACE_VIRTIO_KICK, object: abi_addr(record), arg: UInt64(availIdx))
        }
      }
      publishIndices()
      return kicked
    }

    /// The device's used.idx.
    var deviceUsed: UInt16 { vio_r16(used + 2) }

    /// Takes the next used element, or nil: (descriptor id, length written).
    func nextUsed() -> (id: UInt16, length: UInt32)? {
      guard lastUsed != deviceUsed else { return nil }
      vio_wmb()
      let e = used + 4 + UInt64(lastUsed & (size - 1)) * 8
      let id = UInt16(truncatingIfNeeded: vio_r32(e))
      let len = vio_r32(e + 4)
      lastUsed &+= 1
      return (id, len)
    }

    /// Pops a free descriptor (TX/ctrl).
    func allocDesc() -> UInt16? {
      guard freeCount > 0 else { return nil }
      freeCount -= 1
      return freeStack[Int(freeCount)]
    }

    /// Returns a descriptor to the free stack.
    func freeDesc(_ i: UInt16) {
      guard freeCount < size else { return }
      freeStack[Int(freeCount)] = i
      freeCount += 1
    }

    /// Suppresses (or allows) used-buffer notifications.
    func setNotificationsOff(_ off: Bool) {
      vio_w16(avail, off ? 1 : 0)
      record.pointee.notifications_off = off ? 1 : 0
    }

    /// Copies the driver's indices into the record under its seq.
    func publishIndices() {
      let r = record
      abi_seq_begin(&r.pointee.seq)
      r.pointee.free_descs = UInt32(freeCount)
      r.pointee.avail_idx = UInt32(availIdx)
      r.pointee.used_idx = UInt32(deviceUsed)
      r.pointee.last_used = UInt32(lastUsed)
      abi_seq_end(&r.pointee.seq)
    }
  }
#endif
