// Inspect: the writer of the inspection ABI (smptop_abi.h). The root is filled once on the
// BSP, after the lcpus are known and the clocks calibrated; `magic` is stored last, so a
// reader that sees the magic sees a complete root. Afterwards only boot_stage,
// lcpus_online, features and shutdown_code change.

#if SMP_GUEST
  import KernelSupport

  /// The inspection-ABI root and its table directory.
  enum Inspect {
    /// The root descriptor (ELF symbol `smptop_root`).
    static var root: UnsafeMutablePointer<smptop_root> { abi_root() }

    /// Completes the root and publishes it by writing the magic.
    static func publish() {
      let r = root
      r.pointee.version = SMPTOP_ABI_VERSION
      r.pointee.size = UInt32(MemoryLayout<smptop_root>.size)
      copyBuildID()
      r.pointee.boot_tsc = boot_entry_tsc()
      r.pointee.tsc_per_ms = Timer.tscPerMs
      r.pointee.lapic_per_ms = Timer.lapicPerMs
      r.pointee.tick_us = Timer.tickMicroseconds
      r.pointee.lcpus_present = UInt64(LCPU.count)
      r.pointee.kernel_start = kernel_start_addr()
      r.pointee.kernel_end = kernel_end_addr()
      r.pointee.text_start = text_start_addr()
      r.pointee.text_end = text_end_addr()
      r.pointee.isr_return = isr_return_addr()
      if LAPIC.x2apic { addFeature(SMPTOP_FEATURE_X2APIC.rawValue) }
      let table = abi_root_table(UInt32(SMPTOP_TABLE_LCPU.rawValue))
      table.pointee.addr = UInt64(UInt(bitPattern: abi_lcpu_record(0)))
      table.pointee.count = LCPU.count
      table.pointee.stride = abi_lcpu_stride()
      r.pointee.table_count = 1
      Buddy.registerTables()  // ALLOC, ALLOC_ORDER
      SyncTables.register()  // LOCK, THREAD, TIMERQ, WORKLOAD
      Trace.registerTable()  // TRACE
      Profile.registerTable()  // PROFILE (prof_hz=)
      compiler_barrier()
      atomic_store_u64(&r.pointee.magic, SMPTOP_ABI_MAGIC)
      Console.detail(
        "inspect: smptop_root at \(hex: UInt(bitPattern: r)), lcpu table at \(hex: table.pointee.addr) (\(table.pointee.count) x \(table.pointee.stride) bytes)"
      )
    }

    /// Copies the descriptor of the GNU build-id note (kept in .rodata by kernel.ld).
    static func copyBuildID() {
      let start = build_id_note_start()
      let end = build_id_note_end()
      guard end > start, end - start >= 16,
        let note = PhysicalMemory(start, length: end - start)
      else { return }
      let nameSize = Int(note.u32(0))
      let descSize = Int(note.u32(4))
      guard note.u32(8) == 3, nameSize == 4, note.matches("GNU", at: 12) else { return }
      let count = min(descSize, Int(SMPTOP_BUILD_ID_BYTES))
      let out = abi_root_build_id()
      for i in 0..<count { out[i] = note.u8(16 + i) }
      root.pointee.build_id_len = UInt64(count)
    }

    /// Moves the boot to `stage`.
    static func setStage(_ stage: smptop_boot_stage) {
      atomic_store_u64(&root.pointee.boot_stage, UInt64(stage.rawValue))
    }

    /// Sets a feature bit.
    static func addFeature(_ bit: UInt32) {
      root.pointee.features |= UInt64(bit)
    }

    /// Points table `kind` at `count` records of `stride` bytes (count last, so a reader never
    /// sees records that are not written yet) and extends table_count to cover it.
    static func registerTable(_ kind: smptop_table_kind, addr: UInt64, count: UInt32, stride: UInt32) {
      let k = kind.rawValue
      let table = abi_root_table(k)
      table.pointee.count = 0
      compiler_barrier()
      table.pointee.addr = addr
      table.pointee.stride = stride
      compiler_barrier()
      table.pointee.count = count
      if root.pointee.table_count < k + 1 { root.pointee.table_count = k + 1 }
    }

    /// Counts one more lcpu that reached IDLE.
    static func lcpuOnline() {
      _ = atomic_add_u64(&root.pointee.lcpus_online, 1)
    }
  }
#endif
