// VirtioNet: a multiqueue virtio-net driver over the modern PCI transport.
//
// Set-up (BSP, after the APs are online, interrupts off): find the first virtio-net
// function (1AF4:1041, or transitional 1AF4:1000 with subsystem 1), reset, negotiate
// VERSION_1 | MAC | STATUS | CTRL_VQ | MQ (nothing else: no checksum offload, no mergeable
// buffers, no EVENT_IDX), create min(max_virtqueue_pairs, lcpus, maxPairs) RX/TX pairs and
// the control queue, post every RX buffer, DRIVER_OK, then VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET.
//
// Ownership: pair k belongs to lcpu k (lcpu 0 if lcpu k is not online). With MSI-X (enough
// table entries for 2 + 2 * pairs) entry 2 + 2k (rx k) and 3 + 2k (tx k) go to lcpu k's
// LAPIC with the same CPU vectors on every lcpu (vectorRX/vectorTX: "my pair"), entry 0
// (config change) to the BSP; the control queue has no vector and is polled by the BSP
// during set-up. Without MSI-X each owner polls its pair from its timer tick, with device
// notifications suppressed (avail.flags = NO_INTERRUPT). Each owner also sends a
// gratuitous ARP once a second on its TX queue. Only the owner touches its pair after
// set-up, always with interrupts off: no locks.
//
// ABI: one smptop_virtio_dev record (VIRTIO_DEV table) and 2 * pairs + 1 smptop_virtq
// records (VIRTQ: rx0, tx0, rx1, tx1, ..., ctrl) in virtio_pool. Both tables are
// registered even without a device (count 0). Counters: packets/bytes count Ethernet
// frames without the 12-byte virtio-net header (RX when consumed, TX when queued; ctrl
// counts commands and their payload bytes); drops = TX frames with no free descriptor;
// errors = RX frames shorter than an Ethernet header or longer than the buffer, TX
// frames the device could not take, failed control commands.

#if SMP_GUEST
  import KernelSupport

  /// One RX/TX queue pair and its owning lcpu.
  final class NetPair {
    let index: UInt32
    let lcpu: UInt32
    let rx: Virtqueue
    let tx: Virtqueue
    var nextPeriodicTSC: UInt64 = 0

    init(index: UInt32, lcpu: UInt32, rx: Virtqueue, tx: Virtqueue) {
      self.index = index
      self.lcpu = lcpu
      self.rx = rx
      self.tx = tx
    }

    /// Returns completed TX descriptors to the free stack.
    func reclaimTX() {
      while let (id, _) = tx.nextUsed() { tx.freeDesc(id) }
      tx.publishIndices()
    }

    /// Queues one frame built by `build` into a TX buffer (returns its length, 0 = nothing).
    func transmit(_ build: (UnsafeMutablePointer<UInt8>) -> Int) {
      reclaimTX()
      guard let d = tx.allocDesc() else {
        abi_inc(&tx.record.pointee.drops)
        return
      }
      let buf = tx.buffer(d)
      for i in 0..<VirtioNet.headerBytes { buf[i] = 0 }
      let n = build(buf + VirtioNet.headerBytes)
      guard n > 0, n + VirtioNet.headerBytes <= Int(Virtqueue.bufferSize) else {
        if n != 0 { abi_inc(&tx.record.pointee.errors) }
        tx.freeDesc(d)
        return
      }
      tx.setDesc(d, length: UInt32(n + VirtioNet.headerBytes), flags: 0)
      tx.push(d)
      abi_inc(&tx.record.pointee.packets)
      abi_add(&tx.record.pointee.bytes, UInt64(n))
      tx.publish()
    }

    /// Consumes every received frame, hands it to the stack and re-posts its buffer.
    func serviceRX() {
      var count = 0
      while count < Int(rx.size) * 2, let (id, len) = rx.nextUsed() {
        count += 1
        let frameLength = Int(len) - VirtioNet.headerBytes
        if frameLength < 14 || Int(len) > Int(Virtqueue.bufferSize) {
          abi_inc(&rx.record.pointee.errors)
        } else {
          abi_inc(&rx.record.pointee.packets)
          abi_add(&rx.record.pointee.bytes, UInt64(frameLength))
          NetStack.receive(rx.buffer(id) + VirtioNet.headerBytes, frameLength, self)
        }
        rx.setDesc(id, length: UInt32(Virtqueue.bufferSize), flags: Virtqueue.descWrite)
        rx.push(id)
      }
      if count > 0 { rx.publish() } else { rx.publishIndices() }
    }
  }

  /// The virtio-net driver.
  enum VirtioNet {
    static let vectorRX: UInt64 = 0x50
    static let vectorTX: UInt64 = 0x51
    static let vectorConfig: UInt64 = 0x52
    static let headerBytes = 12
    /// Upper bound on queue pairs (virtio_pool holds buffers for this many).
    static let maxPairs: UInt32 = 8
    static let queueSize: UInt16 = 64
    static let maxQueues = Int(maxPairs) * 2 + 1

    enum Feature {
      static let mac: UInt64 = 1 << 5
      static let status: UInt64 = 1 << 16
      static let ctrlVQ: UInt64 = 1 << 17
      static let mq: UInt64 = 1 << 22
      static let version1: UInt64 = 1 << 32
    }

    nonisolated(unsafe) static var pairs: [NetPair] = []
    nonisolated(unsafe) static var ctrl: Virtqueue? = nil
    nonisolated(unsafe) static var transport: VirtioPCI? = nil
    nonisolated(unsafe) static var device: UnsafeMutablePointer<smptop_virtio_dev>? = nil
    nonisolated(unsafe) static var queueRecords: UnsafeMutablePointer<smptop_virtq>? = nil
    nonisolated(unsafe) static var msix = false
    nonisolated(unsafe) static var running = false
    /// The MAC address, byte 0 first.
    nonisolated(unsafe) static var mac: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) static var nextLinkCheckTSC: UInt64 = 0
    nonisolated(unsafe) static var reportedNeedsReset = false

    /// Registers the ABI tables and brings up the first virtio-net device, if any.
    static func start() {
      let devAddr = VirtioPool.allocate(UInt64(abi_virtio_dev_stride()), align: 64)
      let qAddr = VirtioPool.allocate(UInt64(abi_virtq_stride()) * UInt64(maxQueues), align: 64)
      device = UnsafeMutablePointer<smptop_virtio_dev>(bitPattern: UInt(devAddr))
      queueRecords = UnsafeMutablePointer<smptop_virtq>(bitPattern: UInt(qAddr))
      Inspect.registerTable(SMPTOP_TABLE_VIRTIO_DEV, addr: devAddr, count: 0, stride: abi_virtio_dev_stride())
      Inspect.registerTable(SMPTOP_TABLE_VIRTQ, addr: qAddr, count: 0, stride: abi_virtq_stride())

      var found: UInt32? = nil
      PCI.scan { bdf, vendor, dev in
        guard found == nil, vendor == 0x1AF4 else { return }
        if dev == 0x1041 || (dev == 0x1000 && PCI.read16(bdf, 0x2E) == 1) { found = bdf }
      }
      guard let bdf = found else {
        Console.log("virtio-net: no device")
        return
      }
      guard let t = VirtioPCI(bdf: bdf) else {
        Console.log("virtio-net: \(hex: bdf): no modern virtio capabilities")
        return
      }
      transport = t
      if !bringUp(t) {
        Console.log("virtio-net: set-up failed, status \(hex: t.status)")
        t.status = VirtioPCI.Status.failed
      }
    }

    /// The set-up sequence; false on any failure (the device is then left FAILED).
    static func bringUp(_ t: VirtioPCI) -> Bool {
      guard let dev = device, let records = queueRecords else { return false }
      t.enableBusMaster()
      t.status = 0
      var spins = 0
      while t.status != 0, spins < 1_000_000 { spins += 1; cpu_pause() }
      t.status = VirtioPCI.Status.acknowledge
      t.status = VirtioPCI.Status.acknowledge | VirtioPCI.Status.driver

      let offered = t.deviceFeatures()
      var wanted = offered & (Feature.version1 | Feature.mac | Feature.status | Feature.ctrlVQ | Feature.mq)
      if wanted & Feature.ctrlVQ == 0 { wanted &= ~Feature.mq }
      guard wanted & Feature.version1 != 0 else {
        Console.log("virtio-net: device does not offer VERSION_1")
        return false
      }
      t.setDriverFeatures(wanted)
      t.status = VirtioPCI.Status.acknowledge | VirtioPCI.Status.driver | VirtioPCI.Status.featuresOK
      guard t.status & VirtioPCI.Status.featuresOK != 0 else {
        Console.log("virtio-net: FEATURES_OK refused")
        return false
      }

      // Device configuration: MAC, link status, max pairs (generation-consistent).
      var maxDevicePairs: UInt16 = 1
      var link: UInt16 = 1
      while true {
        let gen = t.configGeneration
        if wanted & Feature.mac != 0 {
          mac = (
            t.deviceRead8(0), t.deviceRead8(1), t.deviceRead8(2), t.deviceRead8(3), t.deviceRead8(4),
            t.deviceRead8(5)
          )
        }
        if wanted & Feature.status != 0 { link = t.deviceRead16(6) }
        if wanted & Feature.mq != 0 { maxDevicePairs = t.deviceRead16(8) }
        if gen == t.configGeneration { break }
      }
      if maxDevicePairs == 0 || maxDevicePairs == 0xFFFF { maxDevicePairs = 1 }
      let pairCount = min(UInt32(maxDevicePairs), max(LCPU.count, 1), maxPairs)
      let numQueues = UInt32(t.read16(VirtioPCI.Common.numQueues))
      let ctrlIndex: UInt16? =
        wanted & Feature.ctrlVQ != 0
        ? UInt16(wanted & Feature.mq != 0 ? 2 * UInt32(maxDevicePairs) : 2) : nil
      guard 2 * pairCount <= numQueues else {
        Console.log("virtio-net: num_queues \(numQueues) < 2 x \(pairCount)")
        return false
      }

      msix = t.msixCap != 0 && t.msixSize >= 2 + 2 * pairCount
      if msix {
        t.msixEnableMasked()
        t.msixRoute(0, apicID: LCPU.area(0).pointee.apic_id, vector: vectorConfig)
        t.write16(VirtioPCI.Common.configMSIXVector, 0)
        if t.read16(VirtioPCI.Common.configMSIXVector) != 0 { msix = false }
      }

      var recordCount: UInt32 = 0
      func makeQueue(
        _ index: UInt16, role: smptop_virtq_role, lcpu: UInt32, vector: UInt16, limit: UInt16,
        bufferBytes: UInt64
      ) -> Virtqueue? {
        t.write16(VirtioPCI.Common.queueSelect, index)
        let maxSize = t.read16(VirtioPCI.Common.queueSize)
        guard maxSize != 0 else { return nil }
        var size: UInt16 = 1
        while size * 2 <= min(maxSize, limit) { size *= 2 }
        let rec = records + Int(recordCount)
        rec.pointee.device = 0
        rec.pointee.role = role.rawValue
        rec.pointee.lcpu = lcpu
        guard let q = Virtqueue(index: index, size: size, record: rec, bufferBytes: bufferBytes) else {
          Console.log("virtio-net: pool exhausted at queue \(index)")
          return nil
        }
        recordCount += 1
        t.write16(VirtioPCI.Common.queueSize, size)
        t.write64(VirtioPCI.Common.queueDesc, q.desc)
        t.write64(VirtioPCI.Common.queueDriver, q.avail)
        t.write64(VirtioPCI.Common.queueDevice, q.used)
        t.write16(VirtioPCI.Common.queueMSIXVector, vector)
        if t.read16(VirtioPCI.Common.queueMSIXVector) != vector { msix = false }
        q.notifyAddress = t.notifyAddress(t.read16(VirtioPCI.Common.queueNotifyOff))
        t.write16(VirtioPCI.Common.queueEnable, 1)
        return q
      }

      var made: [NetPair] = []
      for k in 0..<pairCount {
        let owner = k < LCPU.count && LCPU.isOnline(k) ? k : 0
        let rxVector = msix ? UInt16(2 + 2 * k) : VirtioPCI.noVector
        let txVector = msix ? UInt16(3 + 2 * k) : VirtioPCI.noVector
        guard
          let rx = makeQueue(
            UInt16(2 * k), role: SMPTOP_VIRTQ_RX, lcpu: owner, vector: rxVector,
            limit: queueSize, bufferBytes: Virtqueue.bufferSize),
          let tx = makeQueue(
            UInt16(2 * k + 1), role: SMPTOP_VIRTQ_TX, lcpu: owner, vector: txVector,
            limit: queueSize, bufferBytes: Virtqueue.bufferSize)
        else { return false }
        if msix {
          let apic = LCPU.area(owner).pointee.apic_id
          t.msixRoute(2 + 2 * k, apicID: apic, vector: vectorRX)
          t.msixRoute(3 + 2 * k, apicID: apic, vector: vectorTX)
        }
        // Post every RX buffer.
        while let d = rx.allocDesc() {
          rx.setDesc(d, length: UInt32(Virtqueue.bufferSize), flags: Virtqueue.descWrite)
          rx.push(d)
        }
        vio_wmb()
        vio_w16(rx.avail + 2, rx.availIdx)
        made.append(NetPair(index: k, lcpu: owner, rx: rx, tx: tx))
      }
      if let ci = ctrlIndex {
        ctrl = makeQueue(
          ci, role: SMPTOP_VIRTQ_CTRL, lcpu: 0, vector: VirtioPCI.noVector, limit: 16, bufferBytes: 64)
        if ctrl == nil { return false }
      }
      if !msix {
        for p in made {
          p.rx.setNotificationsOff(true)
          p.tx.setNotificationsOff(true)
        }
      } else {
        t.msixUnmaskFunction()
      }

      t.status = t.status | VirtioPCI.Status.driverOK
      for p in made { p.rx.publish() }

      var pairsInUse: UInt32 = 1
      if wanted & Feature.mq != 0, let c = ctrl {
        if setPairs(c, pairCount) {
          pairsInUse = pairCount
        } else {
          Console.log("virtio-net: VQ_PAIRS_SET(\(pairCount)) failed; using 1 pair")
        }
      }
      // Pairs beyond the ones the device accepted stay unused.
      pairs = []
      for p in made where p.index < pairsInUse { pairs.append(p) }

      abi_seq_begin(&dev.pointee.seq)
      withUnsafeMutableBytes(of: &dev.pointee.name) { b in
        let s: StaticString = "virtio-net"
        s.withUTF8Buffer { u in for i in 0..<min(u.count, b.count - 1) { b[i] = u[i] } }
      }
      dev.pointee.pci_bdf = t.bdf
      dev.pointee.device_id = 1
      dev.pointee.features = wanted
      dev.pointee.queue_pairs = pairsInUse
      dev.pointee.queues = recordCount
      withUnsafeMutableBytes(of: &dev.pointee.mac) { b in
        b[0] = mac.0; b[1] = mac.1; b[2] = mac.2; b[3] = mac.3; b[4] = mac.4; b[5] = mac.5
      }
      dev.pointee.link_up = UInt32(link & 1)
      dev.pointee.msix = msix ? 1 : 0
      dev.pointee.first_queue = 0
      abi_seq_end(&dev.pointee.seq)
      for i in 0..<Int(recordCount) { (records + i).pointee.seq = 0 }
      made.forEach {
        $0.rx.publishIndices(); $0.tx.publishIndices()
      }
      ctrl?.publishIndices()
      Inspect.registerTable(
        SMPTOP_TABLE_VIRTIO_DEV, addr: UInt64(UInt(bitPattern: dev)), count: 1,
        stride: abi_virtio_dev_stride())
      Inspect.registerTable(
        SMPTOP_TABLE_VIRTQ, addr: UInt64(UInt(bitPattern: records)), count: recordCount,
        stride: abi_virtq_stride())

      compiler_barrier()
      for p in made { p.rx.ready = true; p.tx.ready = true }
      running = true
      Console.log(
        "virtio-net: \(hex: t.bdf) mac \(hex: mac.0):\(hex: mac.1):\(hex: mac.2):\(hex: mac.3):\(hex: mac.4):\(hex: mac.5) features \(hex: wanted) pairs \(pairsInUse)/\(maxDevicePairs) queues \(recordCount) \(msix ? "msi-x" : "polled") link \(link & 1) ip \(NetStack.ip >> 24).\((NetStack.ip >> 16) & 0xFF).\((NetStack.ip >> 8) & 0xFF).\(NetStack.ip & 0xFF) udp echo port \(NetStack.echoPort)"
      )
      return true
    }

    /// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET on the control queue (polled); whether the device acked.
    static func setPairs(_ c: Virtqueue, _ count: UInt32) -> Bool {
      guard let h = c.allocDesc(), let d = c.allocDesc(), let a = c.allocDesc() else { return false }
      let hb = c.buffer(h), db = c.buffer(d), ab = c.buffer(a)
      hb[0] = 4  // VIRTIO_NET_CTRL_MQ
      hb[1] = 0  // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET
      db[0] = UInt8(truncatingIfNeeded: count)
      db[1] = UInt8(truncatingIfNeeded: count >> 8)
      ab[0] = 0xFF
      c.setDesc(h, length: 2, flags: Virtqueue.descNext, next: d)
      c.setDesc(d, length: 2, flags: Virtqueue.descNext, next: a)
      c.setDesc(a, length: 1, flags: Virtqueue.descWrite)
      c.push(h)
      c.publish()
      abi_inc(&c.record.pointee.packets)
      abi_add(&c.record.pointee.bytes, 4)
      let deadline = rdtsc() &+ 100 &* Timer.tscPerMs
      var result: (id: UInt16, length: UInt32)? = nil
      while result == nil, rdtsc() < deadline {
        abi_inc(&c.record.pointee.polls)
        result = c.nextUsed()
        if result == nil { cpu_pause() }
      }
      c.freeDesc(a); c.freeDesc(d); c.freeDesc(h)
      c.publishIndices()
      let ok = result != nil && ab[0] == 0
      if !ok { abi_inc(&c.record.pointee.errors) }
      return ok
    }

    /// MSI-X handler for vectorRX/vectorTX/vectorConfig (EOI by the caller).
    static func interrupt(_ vector: UInt64) {
      guard running else { return }
      if vector == vectorConfig {
        updateLink()
        return
      }
      let me = LCPU.currentIndex
      for p in pairs where p.lcpu == me && p.rx.ready {
        if Trace.on(SMPTOP_TRACE_VIRTIO) {
          let q = vector == vectorRX ? p.rx.record : p.tx.record
          Trace.emitIRQsOff(SMPTOP_TRACE_VIRTIO_IRQ, object: abi_addr(q), arg: vector)
        }
        if vector == vectorRX {
          abi_inc(&p.rx.record.pointee.interrupts)
          p.serviceRX()
        } else {
          abi_inc(&p.tx.record.pointee.interrupts)
          p.reclaimTX()
        }
      }
    }

    /// Timer hook on every lcpu: polls its pairs without MSI-X, sends its periodic frame.
    static func tick(now: UInt64) {
      guard running else { return }
      let me = LCPU.currentIndex
      for p in pairs where p.lcpu == me && p.rx.ready {
        if !msix {
          abi_inc(&p.rx.record.pointee.polls)
          abi_inc(&p.tx.record.pointee.polls)
          p.serviceRX()
          p.reclaimTX()
        } else if p.rx.deviceUsed != p.rx.lastUsed {
          p.serviceRX()  // an interrupt that came before `running` (or was lost): not a poll
        }
        if now >= p.nextPeriodicTSC {
          if p.nextPeriodicTSC != 0 { NetStack.sendGratuitousARP(p) }
          p.nextPeriodicTSC = now &+ 1000 &* Timer.tscPerMs
        }
      }
      if me == 0 && now >= nextLinkCheckTSC {
        nextLinkCheckTSC = now &+ 1000 &* Timer.tscPerMs
        updateLink()
      }
    }

    /// Re-reads the link status into the device record (BSP); reports a device that stopped
    /// itself (NEEDS_RESET after a ring error, which QEMU also logs on its stderr).
    static func updateLink() {
      guard let t = transport, let dev = device else { return }
      if !reportedNeedsReset && t.status & VirtioPCI.Status.needsReset != 0 {
        reportedNeedsReset = true
        if let c = ctrl { abi_inc(&c.record.pointee.errors) }
        Console.log("virtio-net: device status \(hex: t.status): NEEDS_RESET, the NIC has stopped")
      }
      guard dev.pointee.features & Feature.status != 0 else { return }
      let up = UInt32(t.deviceRead16(6) & 1)
      if up != dev.pointee.link_up {
        abi_seq_begin(&dev.pointee.seq)
        dev.pointee.link_up = up
        abi_seq_end(&dev.pointee.seq)
      }
    }
  }
#endif
