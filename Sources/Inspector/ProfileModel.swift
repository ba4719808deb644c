extension ProfileModel {
  /// Adds one drain's samples and loss and drops what fell out of the window.
  public mutating func add(_ batch: ProfileBatch, tscPerMs: UInt64) {
    add(samples: batch.samples, lost: batch.lost, tscPerMs: tscPerMs)
  }
}
