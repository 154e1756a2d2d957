import Analysis
import Models
import NetIO
import TestSupport
import XCTest

/// The data-aware factors (``ConvFactorization/init(weight:shape:rank:secondMoment:outputScale:context:)``)
/// and the patch second moments they are built from (``LayerInputMoment``).
final class DataAwareFactorizationTests: XCTestCase, SmallResNetFixture {
    /// 400 patches of 18 values (2 channels, 3×3) with very unequal variances,
    /// a 6×18 weight and an output scale with negative and zero entries.
    func fixture() -> (w: [Float], matrix: Matrix, patches: [[Double]], moment: Matrix, scale: [Double]) {
        let w = randomFloats(6 * 18, seed: 71)
        let matrix = Matrix(rows: 6, columns: 18, float32: w)
        var random = SeededRandom(seed: 72)
        let spread = (0..<18).map { 0.05 + 3 * Double($0 % 5) }
        let patches = (0..<400).map { _ in (0..<18).map { Double(random.uniform(1)) * spread[$0] } }
        var moment = Matrix(rows: 18, columns: 18)
        for p in patches { for i in 0..<18 { for j in 0..<18 { moment[i, j] += p[i] * p[j] / 400 } } }
        // BatchNorm's γ may be negative, or 0 (the channel then reaches nothing).
        let scale = [0.3, -0.7, 1.1, 0, 1.9, -2.3]
        return (w, matrix, patches, moment, scale)
    }

    /// mean over the patches of ‖diag(s)·(W − Ŵ)·p‖², naive loops, Ŵ = second·first.
    func outputError(_ w: Matrix, _ product: Matrix, _ patches: [[Double]], _ s: [Double]) -> Double {
        var total = 0.0
        for p in patches {
            for o in 0..<w.rows {
                var e = 0.0
                for j in 0..<w.columns { e += (w[o, j] - product[o, j]) * p[j] }
                total += s[o] * s[o] * e * e
            }
        }
        return total / Double(patches.count)
    }

    func product(_ f: ConvFactorization, rows: Int, columns: Int) -> Matrix {
        var m = Matrix(rows: rows, columns: columns)
        for o in 0..<rows {
            for j in 0..<columns {
                m[o, j] = (0..<f.rank).reduce(0) {
                    $0 + Double(f.second[o * f.rank + $1]) * Double(f.first[$1 * columns + j])
                }
            }
        }
        return m
    }

    /// Rule: the data-aware factors' output error on the patches, by naive
    /// loops, equals Σ_{i>r} σᵢ²(diag(s)·W·C^{1/2}) (Eckart–Young; σ from a
    /// fresh SVD), is never above the plain SVD factors' error at the same
    /// rank, and no random rank-r perturbation of Ŵ does better: relative
    /// 1e-5 (the factors are float32).
    func testFactorsMinimiseTheOutputErrorOnThePatches() throws {
        let (w, matrix, patches, moment, s) = fixture()
        var scaled = matrix
        for o in 0..<6 { for j in 0..<18 { scaled[o, j] *= s[o] } }
        let root = try SymmetricEigenDecomposition(moment, context: "C").squareRoot
        let sigma = try SingularValueDecomposition(scaled * root, context: "M·C^½").singularValues
        let total = sigma.reduce(0) { $0 + $1 * $1 }
        for rank in [1, 3, 5] {
            let f = try ConvFactorization(
                weight: w, shape: [6, 2, 3, 3], rank: rank, secondMoment: moment, outputScale: s, context: "w")
            let error = outputError(matrix, product(f, rows: 6, columns: 18), patches, s)
            let expected = sigma.dropFirst(rank).reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(error, expected, accuracy: 1e-5 * total, "rank \(rank)")
            XCTAssertEqual(f.droppedEnergy, expected / total, accuracy: 1e-9, "rank \(rank)")
            let plain = try ConvFactorization(weight: w, shape: [6, 2, 3, 3], rank: rank, context: "w")
            let plainError = outputError(matrix, product(plain, rows: 6, columns: 18), patches, s)
            XCTAssertLessThan(error, plainError, "rank \(rank): the SVD's factors fit these patches better")
            // Ŵ + εuvᵀ-style moves inside rank r: replace the factors by perturbed ones.
            var random = SeededRandom(seed: UInt64(rank))
            for _ in 0..<10 {
                var first = f.first
                for i in first.indices { first[i] += 0.01 * random.uniform(1) }
                var moved = Matrix(rows: 6, columns: 18)
                for o in 0..<6 {
                    for j in 0..<18 {
                        moved[o, j] = (0..<rank).reduce(0) {
                            $0 + Double(f.second[o * rank + $1]) * Double(first[$1 * 18 + j])
                        }
                    }
                }
                XCTAssertGreaterThanOrEqual(
                    outputError(matrix, moved, patches, s), error * (1 - 1e-6), "rank \(rank)")
            }
        }
    }

    /// Row i of `first` and column i of `second` carry the same norm (float32 rounding).
    func testFactorsAreBalanced() throws {
        let (w, _, _, moment, s) = fixture()
        let f = try ConvFactorization(
            weight: w, shape: [6, 2, 3, 3], rank: 4, secondMoment: moment, outputScale: s, context: "w")
        for i in 0..<4 {
            let row = (0..<18).reduce(0.0) { $0 + Double(f.first[i * 18 + $1] * f.first[i * 18 + $1]) }
            let column = (0..<6).reduce(0.0) { $0 + Double(f.second[$1 * 4 + i] * f.second[$1 * 4 + i]) }
            XCTAssertEqual(row.squareRoot(), column.squareRoot(), accuracy: 1e-5 * row.squareRoot(), "component \(i)")
        }
    }

    /// The small ResNet-8 (12×12 inputs) with sample weights, folded, and 7 images.
    func smallResNet() throws -> (FoldedNetwork, NaiveNetwork, [String: [Float]], [Float]) {
        let (description, naive, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        var random = SeededRandom(seed: 9)
        return (network, naive, floats, (0..<(7 * 144)).map { _ in random.uniform(2) })
    }

    /// Every patch of layer `index`'s input over the images, naive loops over
    /// NaiveNetwork's float64 activations.
    func naivePatches(
        _ network: FoldedNetwork, _ naive: NaiveNetwork, _ floats: [String: [Float]], _ images: [Float],
        layer index: Int
    )
        -> [[Double]]
    {
        let count = images.count / 144
        let reference = naive.run(
            images: images.map(Double.init), labels: [Int32](repeating: 0, count: count), batch: count,
            parameters: floats.mapValues { $0.map(Double.init) }, training: false)
        let layer = network.layers[index]
        guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else { return [] }
        let input = layer.inputRow.map { reference.layerOutputs[$0] } ?? images.map(Double.init)
        let k = spec.kernelSize
        var patches: [[Double]] = []
        for b in 0..<count {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var p = [Double](repeating: 0, count: spec.inChannels * k * k)
                    for ch in 0..<spec.inChannels {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let y = oy * spec.stride + ky - spec.padding
                                let x = ox * spec.stride + kx - spec.padding
                                guard y >= 0, y < h, x >= 0, x < w else { continue }
                                p[(ch * k + ky) * k + kx] = input[((b * spec.inChannels + ch) * h + y) * w + x]
                            }
                        }
                    }
                    patches.append(p)
                }
            }
        }
        return patches
    }

    /// Rule: each conv layer's C = Σp·pᵀ/N over its input patches (its
    /// stride and padding) equals naive loops over NaiveNetwork's float64
    /// activations, within 1e-9 of C's largest entry; 7 images in pieces of
    /// 3 on 2 threads (a partial piece).
    func testLayerInputMomentsMatchNaivePatches() throws {
        let (network, naive, floats, images) = try smallResNet()
        let convs = Set(network.layers.indices.filter { network.layers[$0].kind != .linear })
        let moments = LayerInputMoment.measure(network, layers: convs, images: images, count: 7, batch: 3, threads: 2)
        XCTAssertEqual(Set(moments.keys), convs)
        for index in convs.sorted() {
            let patches = naivePatches(network, naive, floats, images, layer: index)
            let d = patches[0].count
            var c = [Double](repeating: 0, count: d * d)
            for p in patches { for i in 0..<d { for j in 0..<d { c[i * d + j] += p[i] * p[j] } } }
            let n = patches.count
            let m = try XCTUnwrap(moments[index])
            XCTAssertEqual(m.patches, n, network.layers[index].name)
            let largest = c.map { abs($0) / Double(n) }.max()!
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(m.moment.values, c.map { $0 / Double(n) }), 1e-9 * largest,
                network.layers[index].name)
        }
    }

    /// Rule: phase 9's per-layer data-aware rows are the mean ‖(W̃ − Ŵ_k)p‖²
    /// over the layer's patches, each recomputed here by naive loops from
    /// Ŵ_k = U_kU_kᵀW̃ (relative 1e-9 of E‖W̃p‖²); its checks pass; layers
    /// with more outputs than patch values are listed as skipped.
    func testNetworkDataAwareRowsAreTheErrorOnThePatches() throws {
        let (network, naive, floats, images) = try smallResNet()
        let phase = try NetworkDataAware.run(network, images: images, count: 7, source: "7 images", threads: 2)
        XCTAssertEqual(phase.skipped.map(\.phase), ["conv1", "layer2.0.downsample.0", "layer3.0.downsample.0"])
        XCTAssertEqual(phase.layers.count, 6)
        XCTAssertTrue(phase.checks.allSatisfy(\.passed), "\(phase.checks.filter { !$0.passed })")
        let layer = try XCTUnwrap(phase.layers.first { $0.layer == "layer2.0.conv1" })
        let index = try XCTUnwrap(network.layers.firstIndex { $0.name == "layer2.0.conv1" })
        let patches = naivePatches(network, naive, floats, images, layer: index)
        let w = network.layers[index].folded
        var moment = Matrix(rows: w.columns, columns: w.columns)
        for p in patches {
            for i in 0..<w.columns { for j in 0..<w.columns { moment[i, j] += p[i] * p[j] / Double(patches.count) } }
        }
        let basis = try DataAwareProjection(weight: w, secondMoment: moment, layer: "l").basis
        let energy =
            patches.reduce(0.0) { sum, p in
                sum
                    + (0..<w.rows).reduce(0.0) { s, o in
                        let a = (0..<w.columns).reduce(0.0) { $0 + w[o, $1] * p[$1] }
                        return s + a * a
                    }
            } / Double(patches.count)
        for k in [1, 5, 16, 31] {
            let projected = basis.leadingColumns(k) * (basis.leadingColumns(k).transposed * w)
            var error = 0.0
            for p in patches {
                for o in 0..<w.rows {
                    let e = (0..<w.columns).reduce(0.0) { $0 + (w[o, $1] - projected[o, $1]) * p[$1] }
                    error += e * e
                }
            }
            error /= Double(patches.count)
            XCTAssertEqual(layer.rows[k - 1].measuredError, error, accuracy: 1e-9 * energy, "k \(k)")
        }
    }
}
