// VirtioPCI: the virtio 1.0 PCI transport ("modern" interface). The vendor capabilities
// (id 0x09) locate the common configuration, notify, ISR and device-specific regions in
// the BARs; MSI-X (id 0x11) gives one table entry per vector. The BARs sit above 3 GiB,
// which boot.S maps uncached (PCD|PWT). Field widths in the common configuration must be
// exactly those of the spec: QEMU switches on offset and size.

#if SMP_GUEST
  import KernelSupport

  /// One virtio PCI function and its register regions.
  struct VirtioPCI {
    /// Common configuration offsets.
    enum Common {
      static let deviceFeatureSelect: UInt64 = 0
      static let deviceFeature: UInt64 = 4
      static let driverFeatureSelect: UInt64 = 8
      static let driverFeature: UInt64 = 12
      static let configMSIXVector: UInt64 = 16
      static let numQueues: UInt64 = 18
      static let deviceStatus: UInt64 = 20
      static let configGeneration: UInt64 = 21
      static let queueSelect: UInt64 = 22
      static let queueSize: UInt64 = 24
      static let queueMSIXVector: UInt64 = 26
      static let queueEnable: UInt64 = 28
      static let queueNotifyOff: UInt64 = 30
      static let queueDesc: UInt64 = 32
      static let queueDriver: UInt64 = 40
      static let queueDevice: UInt64 = 48
    }

    /// Device status bits.
    enum Status {
      static let acknowledge: UInt8 = 1
      static let driver: UInt8 = 2
      static let driverOK: UInt8 = 4
      static let featuresOK: UInt8 = 8
      static let needsReset: UInt8 = 0x40
      static let failed: UInt8 = 0x80
    }

    /// MSI-X "no vector".
    static let noVector: UInt16 = 0xFFFF

    let bdf: UInt32
    var common: UInt64 = 0
    var notify: UInt64 = 0
    var notifyMultiplier: UInt32 = 0
    var isr: UInt64 = 0
    var device: UInt64 = 0
    /// MSI-X capability offset in config space (0 = none), table address and size.
    var msixCap: UInt32 = 0
    var msixTable: UInt64 = 0
    var msixSize: UInt32 = 0

    /// Reads the capabilities of `bdf`; nil without the four modern regions.
    init?(bdf: UInt32) {
      self.bdf = bdf
      var c: UInt64 = 0, n: UInt64 = 0, mult: UInt32 = 0, i: UInt64 = 0, d: UInt64 = 0
      var mcap: UInt32 = 0
      PCI.forEachCapability(bdf) { off, id in
        if id == 0x11 { mcap = off; return }
        guard id == 0x09 else { return }
        let type = PCI.read8(bdf, off + 3)
        let bar = UInt32(PCI.read8(bdf, off + 4))
        let offset = UInt64(PCI.read32(bdf, off + 8))
        let base = PCI.barAddress(bdf, bar)
        guard base != 0 else { return }
        switch type {
        case 1: if c == 0 { c = base + offset }
        case 2:
          if n == 0 {
            n = base + offset
            mult = PCI.read32(bdf, off + 16)
          }
        case 3: if i == 0 { i = base + offset }
        case 4: if d == 0 { d = base + offset }
        default: break
        }
      }
      guard c != 0, n != 0, i != 0 else { return nil }
      common = c
      notify = n
      notifyMultiplier = mult
      isr = i
      device = d
      if mcap != 0 {
        let control = PCI.read16(bdf, mcap + 2)
        let table = PCI.read32(bdf, mcap + 4)
        let base = PCI.barAddress(bdf, table & 7)
        if base != 0 {
          msixCap = mcap
          msixSize = UInt32(control & 0x7FF) + 1
          msixTable = base + UInt64(table & ~7)
        }
      }
    }

    /// Turns on memory decoding and bus mastering (MSI-X messages need bus mastering).
    func enableBusMaster() {
      PCI.write16(bdf, 0x04, PCI.read16(bdf, 0x04) | 0x6)
    }

    func read8(_ off: UInt64) -> UInt8 { vio_r8(common + off) }
    func read16(_ off: UInt64) -> UInt16 { vio_r16(common + off) }
    func read32(_ off: UInt64) -> UInt32 { vio_r32(common + off) }
    func write8(_ off: UInt64, _ v: UInt8) { vio_w8(common + off, v) }
    func write16(_ off: UInt64, _ v: UInt16) { vio_w16(common + off, v) }
    func write32(_ off: UInt64, _ v: UInt32) { vio_w32(common + off, v) }
    func write64(_ off: UInt64, _ v: UInt64) {
      vio_w32(common + off, UInt32(truncatingIfNeeded: v))
      vio_w32(common + off + 4, UInt32(truncatingIfNeeded: v >> 32))
    }

    var status: UInt8 {
      get { read8(Common.deviceStatus) }
      nonmutating set { write8(Common.deviceStatus, newValue) }
    }

    /// The 64 device feature bits.
    func deviceFeatures() -> UInt64 {
      write32(Common.deviceFeatureSelect, 0)
      let lo = UInt64(read32(Common.deviceFeature))
      write32(Common.deviceFeatureSelect, 1)
      let hi = UInt64(read32(Common.deviceFeature))
      return hi << 32 | lo
    }

    /// Writes the driver's feature bits.
    func setDriverFeatures(_ f: UInt64) {
      write32(Common.driverFeatureSelect, 0)
      write32(Common.driverFeature, UInt32(truncatingIfNeeded: f))
      write32(Common.driverFeatureSelect, 1)
      write32(Common.driverFeature, UInt32(truncatingIfNeeded: f >> 32))
    }

    /// Device configuration reads (retried across config_generation changes by the caller).
    func deviceRead8(_ off: UInt64) -> UInt8 { vio_r8(device + off) }
    func deviceRead16(_ off: UInt64) -> UInt16 { vio_r16(device + off) }
    var configGeneration: UInt8 { read8(Common.configGeneration) }

    /// Address to write to notify queue with notify offset `off`.
    func notifyAddress(_ off: UInt16) -> UInt64 { notify + UInt64(off) * UInt64(notifyMultiplier) }

    /// MSI-X: Enable + Function Mask.
    func msixEnableMasked() {
      let c = PCI.read16(bdf, msixCap + 2)
      PCI.write16(bdf, msixCap + 2, c | 0xC000)
    }

    /// MSI-X: clears Function Mask.
    func msixUnmaskFunction() {
      let c = PCI.read16(bdf, msixCap + 2)
      PCI.write16(bdf, msixCap + 2, (c | 0x8000) & ~0x4000)
    }

    /// Programs table entry `entry`: fixed delivery of `vector` to LAPIC `apicID`, unmasked.
    func msixRoute(_ entry: UInt32, apicID: UInt32, vector: UInt64) {
      let e = msixTable + UInt64(entry) * 16
      vio_w32(e + 0, 0xFEE0_0000 | (apicID & 0xFF) << 12)
      vio_w32(e + 4, 0)
      vio_w32(e + 8, UInt32(truncatingIfNeeded: vector & 0xFF))
      vio_w32(e + 12, 0)
    }
  }
#endif
