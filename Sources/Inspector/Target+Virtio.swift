import QMP

// The virtio query: QEMU's device-side view of every virtio queue, through QMP.
extension Target {
  /// Every virtio device and queue as QEMU's device model sees them; nil without QMP.
  public func virtioState() async -> [VirtioDeviceState]? {
    guard let qmp, let devices = try? await qmp.queryVirtio() else { return nil }
    var result: [VirtioDeviceState] = []
    for device in devices {
      guard let status = try? await qmp.virtioStatus(path: device.path) else { continue }
      var queues: [VirtioQueueState] = []
      for index in 0..<min(max(status.numVQs, 0), 1024) {
        guard let q = try? await qmp.virtioQueueStatus(path: device.path, queue: index) else { continue }
        queues.append(
          VirtioQueueState(
            index: q.queueIndex, size: q.vringNum, lastAvailIndex: q.lastAvailIdx,
            shadowAvailIndex: q.shadowAvailIdx, usedIndex: q.usedIdx, inUse: q.inuse,
            descriptorTable: q.vringDesc, availRing: q.vringAvail, usedRing: q.vringUsed))
      }
      result.append(
        VirtioDeviceState(
          name: device.name, path: device.path, statuses: status.statuses,
          guestFeatures: status.guestFeatures.names, queues: queues))
    }
    return result
  }
}
