import Dashboard
import Foundation
import Testing

/// The box that hands the sampler's newest snapshot to the UI thread.
@Suite struct LatestTests {
  @Test func readersSeeEveryPublishAsANewGeneration() {
    let box = Latest(0)
    #expect(box.read().generation == 0)
    box.publish(7)
    box.update { $0 += 1 }
    let (value, generation) = box.read()
    #expect(value == 8)
    #expect(generation == 2)
  }

  @Test func concurrentPublishersNeverLoseAGeneration() async {
    let box = Latest(0)
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<4 {
        group.addTask {
          for _ in 0..<1000 { box.update { $0 += 1 } }
        }
      }
    }
    #expect(box.read().value == 4000)
    #expect(box.read().generation == 4000)
  }
}
