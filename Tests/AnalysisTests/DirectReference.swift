import Foundation
import NetIO
import TestSupport
import XCTest

/// TinyConvNet written out as plain loops (direct convolution, no im2col,
/// no BLAS), generic over the float type: float64 as the independent
/// reference of the tests, float32 as the "device" network under test.
struct DirectReference<T: BinaryFloatingPoint> {
    var conv1: [T]  // (8, 1, 3, 3)
    var conv2: [T]  // (16, 8, 3, 3)
    var fcWeight: [T]  // (10, 400)
    var fcBias: [T]

    init(_ w: TinyConvNetWeights) {
        conv1 = w.conv1.map { T($0) }
        conv2 = w.conv2.map { T($0) }
        fcWeight = w.fcWeight.map { T($0) }
        fcBias = w.fcBias.map { T($0) }
    }

    init(conv1: [T], conv2: [T], fcWeight: [T], fcBias: [T]) {
        self.conv1 = conv1
        self.conv2 = conv2
        self.fcWeight = fcWeight
        self.fcBias = fcBias
    }

    /// (O, n−2, n−2) = Σ_{c,i,j} w[o,c,i,j]·x[c, y+i, x+j].
    static func convolve(_ x: [T], channels: Int, side n: Int, weight w: [T], outChannels: Int) -> [T] {
        let o = n - 2
        var out = [T](repeating: 0, count: outChannels * o * o)
        for oc in 0..<outChannels {
            for y in 0..<o {
                for xx in 0..<o {
                    var s: T = 0
                    for c in 0..<channels {
                        for i in 0..<3 {
                            for j in 0..<3 {
                                s += w[((oc * channels + c) * 3 + i) * 3 + j] * x[(c * n + y + i) * n + xx + j]
                            }
                        }
                    }
                    out[(oc * o + y) * o + xx] = s
                }
            }
        }
        return out
    }

    /// ReLU then 2×2 max-pool (floor).
    static func reluPool(_ x: [T], channels: Int, side n: Int) -> [T] {
        let o = n / 2
        var out = [T](repeating: 0, count: channels * o * o)
        for c in 0..<channels {
            for y in 0..<o {
                for xx in 0..<o {
                    var m: T = 0  // ReLU: the max of the window and 0
                    for i in 0..<2 { for j in 0..<2 { m = max(m, x[(c * n + 2 * y + i) * n + 2 * xx + j]) } }
                    out[(c * o + y) * o + xx] = m
                }
            }
        }
        return out
    }

    struct Trace {
        var conv1Input: [T]
        var conv1: [T]
        var pooled1: [T]
        var conv2: [T]
        var pooled2: [T]
        var logits: [T]
    }

    /// The first maximum (row-major) of each 2×2 window of (C, n, n): flat y·n + x.
    static func poolArgmax(_ x: [T], channels: Int, side n: Int) -> [Int32] {
        let o = n / 2
        var out = [Int32]()
        for c in 0..<channels {
            for y in 0..<o {
                for xx in 0..<o {
                    var best = (2 * y) * n + 2 * xx
                    for (i, j) in [(0, 1), (1, 0), (1, 1)]
                    where x[c * n * n + (2 * y + i) * n + 2 * xx + j] > x[c * n * n + best] {
                        best = (2 * y + i) * n + 2 * xx + j
                    }
                    out.append(Int32(best))
                }
            }
        }
        return out
    }

    /// One image (784 values) through the network.
    func forward(_ image: [T]) -> Trace {
        let a1 = Self.convolve(image, channels: 1, side: 28, weight: conv1, outChannels: 8)
        let p1 = Self.reluPool(a1, channels: 8, side: 26)
        let a2 = Self.convolve(p1, channels: 8, side: 13, weight: conv2, outChannels: 16)
        let p2 = Self.reluPool(a2, channels: 16, side: 11)  // (16, 5, 5), flattened channel-major
        var logits = fcBias
        for o in 0..<10 { for f in 0..<400 { logits[o] += fcWeight[o * 400 + f] * p2[f] } }
        return Trace(conv1Input: image, conv1: a1, pooled1: p1, conv2: a2, pooled2: p2, logits: logits)
    }

    static func argmax(_ x: [T]) -> Int {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return best
    }
}

/// The fixture checkpoint: TinyConvNet weights in a JSON object keyed by
/// tensor name (see Fixtures/make_fixture.py).
enum Fixture {
    static func weights() throws -> TinyConvNetWeights {
        guard
            let url = Bundle.module.url(
                forResource: "tiny_convnet_fixture", withExtension: "json", subdirectory: "Fixtures")
        else {
            throw FixtureError(message: "Fixtures/tiny_convnet_fixture.json is missing from the test bundle")
        }
        let tensors = try JSONDecoder().decode([String: [Float]].self, from: Data(contentsOf: url))
        func tensor(_ name: String) throws -> [Float] {
            guard let t = tensors[name] else { throw FixtureError(message: "fixture lacks \(name)") }
            return t
        }
        return TinyConvNetWeights(
            conv1: try tensor("conv1.weight"), conv2: try tensor("conv2.weight"),
            fcWeight: try tensor("fc.weight"), fcBias: try tensor("fc.bias"))
    }

    /// MNIST's first `testCount` test images and first `trainCount` training
    /// images, from TestEnvironment.mnistDirectory (MNIST_DIR in CI).
    static func mnist(testCount: Int, trainCount: Int) throws -> (test: Dataset, train: Dataset) {
        guard let directory = TestEnvironment.mnistDirectory else {
            throw FixtureError(message: "MNIST not found: set MNIST_DIR to the folder with the four IDX .gz files")
        }
        let sets = try MNISTLoader.load(kind: .mnist, directory: directory, verifyChecksums: false)
        return (sets.test.prefix(testCount), sets.train.prefix(trainCount))
    }

    struct FixtureError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
