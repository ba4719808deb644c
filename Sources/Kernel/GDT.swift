// GDT: the segment table boot.S builds (null, 64-bit code, data, 32-bit code) ends in one
// 16-byte TSS descriptor per lcpu. Each lcpu fills its own TSS (kernel stack, and the IST
// stacks for #DF, NMI and #MC) and loads it with `ltr`.

#if SMP_GUEST
  import KernelSupport

  /// Per-lcpu task-state segments.
  enum GDT {
    /// Fills lcpu `i`'s TSS, writes its descriptor and loads it on the running CPU.
    static func loadTSS(lcpu i: UInt32) {
      let a = LCPU.area(i)
      let istBottom = a.pointee.ist_bottom
      let doubleFaultTop = istBottom + ist_df_stack_size
      let nmiTop = doubleFaultTop + ist_nmi_stack_size
      let machineCheckTop = nmiTop + ist_mc_stack_size
      // IST1 = Traps.istDoubleFault, IST2 = Traps.istNMI, IST3 = Traps.istMachineCheck
      lcpu_tss_init(a, a.pointee.stack_top, doubleFaultTop, nmiTop, machineCheckTop)

      let base = lcpu_tss_address(a)
      let limit: UInt64 = 104 - 1  // sizeof(struct tss64) - 1
      var low = limit & 0xFFFF
      low |= (base & 0xFF_FFFF) << 16
      low |= 0x89 << 40  // present, 64-bit TSS (available)
      low |= ((limit >> 16) & 0xF) << 48
      low |= ((base >> 24) & 0xFF) << 56
      let slot = gdt_tss_slot(i)
      slot[0] = low
      slot[1] = base >> 32
      cpu_ltr(UInt16(GDT_TSS_FIRST) + UInt16(truncatingIfNeeded: i) * 16)
    }
  }
#endif
