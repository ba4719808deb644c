// Paging: boot.S identity-maps 0-4 GiB (virtual == physical everywhere the kernel looks;
// the host reads guest-physical memory at the same addresses). This file only takes
// pages away: the null page and one guard page below every kernel and IST stack, so a
// null dereference faults and a stack overflow becomes a reported #DF, not corruption.

#if SMP_GUEST
  import KernelSupport

  /// Changes to the boot page tables.
  enum Paging {
    /// Unmaps a 4 KiB page in the small-page region (the first 8 MiB).
    static func unmap(_ address: UInt64) {
      guard address < small_pages_limit else { return }
      let entry = boot_page_table() + Int(address / UInt64(PAGE_SIZE))
      entry.pointee &= ~1
      cpu_invlpg(address)
    }

    /// Unmaps the null page and the guard pages of every lcpu's stacks. Runs on the BSP
    /// before the APs start, so no other TLB needs flushing.
    static func protectStacks() {
      unmap(0)
      for i in UInt32(0)..<UInt32(LCPU_MAX) {
        let base = lcpu_stacks_base(i)
        unmap(base)  // below the kernel stack
        unmap(base + kernel_stack_top_offset)  // below the IST stacks
      }
    }
  }
#endif
