import GPUNet
import TestSupport
import XCTest

/// `NaiveReference` itself against hand-computed values and exact
/// identities, so that the reference every device is measured against is
/// not merely trusted. All values here are small integers or dyadic
/// fractions, exact in float64, so comparisons are exact unless a
/// transcendental function is involved (then 1e-12).
final class NaiveReferenceTests: XCTestCase {
    /// [[1,2],[3,4]] and [[5,6],[7,8]] under each transpose, α and β.
    func testGEMMOnTwoByTwo() {
        let a: [Double] = [1, 2, 3, 4]
        let b: [Double] = [5, 6, 7, 8]
        let c: [Double] = [1, 1, 1, 1]
        func product(_ ta: Bool, _ tb: Bool, alpha: Float = 1, beta: Float = 0) -> [Double] {
            NaiveReference.gemm(
                GEMMShape(m: 2, n: 2, k: 2, transposeA: ta, transposeB: tb, alpha: alpha, beta: beta),
                a: a, b: b, c: c)
        }
        XCTAssertEqual(product(false, false), [19, 22, 43, 50])
        XCTAssertEqual(product(true, false), [26, 30, 38, 44])  // Aᵀ = [[1,3],[2,4]]
        XCTAssertEqual(product(false, true), [17, 23, 39, 53])  // Bᵀ = [[5,7],[6,8]]
        XCTAssertEqual(product(true, true), [23, 31, 34, 46])  // AᵀBᵀ = (BA)ᵀ
        XCTAssertEqual(product(false, false, alpha: 2, beta: 0.5), [38.5, 44.5, 86.5, 100.5])
        // A non-square case: (1×3)·(3×2).
        XCTAssertEqual(
            NaiveReference.gemm(GEMMShape(m: 1, n: 2, k: 3), a: [1.0, 2, 3], b: [1.0, 0, 0, 1, 1, 1], c: [0.0, 0]),
            [4, 5])
    }

    /// A 3×3 image [1…9] under a 2×2 kernel: the four patches, by hand.
    func testIm2colOnThreeByThree() {
        let s = ConvShape(batch: 1, inChannels: 1, outChannels: 1, height: 3, width: 3, kernelHeight: 2, kernelWidth: 2)
        let columns = NaiveReference.im2col(s, input: (1...9).map(Double.init))
        XCTAssertEqual(
            columns,
            [
                1, 2, 4, 5,  // (i,j) = (0,0)
                2, 3, 5, 6,  // (0,1)
                4, 5, 7, 8,  // (1,0)
                5, 6, 8, 9,
            ])  // (1,1)
        // col2im of all ones counts how many patches read each pixel.
        XCTAssertEqual(
            NaiveReference.col2im(s, columns: [Double](repeating: 1, count: 16)), [1, 2, 1, 2, 4, 2, 1, 2, 1])
    }

    /// col2im is the adjoint of im2col: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩.
    func testCol2imIsTheAdjointOfIm2col() {
        let s = ConvShape(batch: 2, inChannels: 3, outChannels: 1, height: 5, width: 6, kernelHeight: 3, kernelWidth: 2)
        let x = randomFloats(s.inputCount, seed: 1).map(Double.init)
        let y = randomFloats(s.patchSize * s.patchCount, seed: 2).map(Double.init)
        let left = zip(NaiveReference.im2col(s, input: x), y).reduce(0) { $0 + $1.0 * $1.1 }
        let right = zip(x, NaiveReference.col2im(s, columns: y)).reduce(0) { $0 + $1.0 * $1.1 }
        XCTAssertEqual(left, right, accuracy: 1e-12)
    }

    /// A delta kernel (1 at (i₀,j₀)) shifts: output[y,x] = input[y+i₀, x+j₀];
    /// its backward-data places gradOutput at that offset in a zero image.
    func testConvWithDeltaKernelIsAShift() {
        let s = ConvShape(batch: 1, inChannels: 1, outChannels: 1, height: 4, width: 5)
        let input = (0..<20).map(Double.init)
        for (i0, j0) in [(0, 0), (1, 2), (2, 1)] {
            var kernel = [Double](repeating: 0, count: 9)
            kernel[i0 * 3 + j0] = 1
            let output = NaiveReference.conv2dForward(s, input: input, weight: kernel)
            let shifted = (0..<2).flatMap { y in (0..<3).map { x in input[(y + i0) * 5 + x + j0] } }
            XCTAssertEqual(output, shifted, "delta at (\(i0),\(j0))")

            let gradOutput = (1...6).map(Double.init)
            var placed = [Double](repeating: 0, count: 20)
            for y in 0..<2 { for x in 0..<3 { placed[(y + i0) * 5 + x + j0] = gradOutput[y * 3 + x] } }
            XCTAssertEqual(NaiveReference.conv2dBackwardData(s, gradOutput: gradOutput, weight: kernel), placed)
        }
    }

    /// Channels sum; outputs are independent; gradWeight of ones·ones counts terms.
    func testConvSumsChannelsAndCountsTerms() {
        // Two input channels, kernel ones on channel 0 and 2·ones on channel 1, 3×3 input, 3×3 kernel: one output.
        let s = ConvShape(batch: 1, inChannels: 2, outChannels: 1, height: 3, width: 3)
        let input = (1...9).map(Double.init) + [Double](repeating: 1, count: 9)
        let weight = [Double](repeating: 1, count: 9) + [Double](repeating: 2, count: 9)
        XCTAssertEqual(NaiveReference.conv2dForward(s, input: input, weight: weight), [45 + 18])
        // Batch 3, 6×7 input: each weight gradient sums B·oH·oW = 3·4·5 = 60 products of ones.
        let t = ConvShape(batch: 3, inChannels: 2, outChannels: 4, height: 6, width: 7)
        let ones = NaiveReference.conv2dBackwardWeight(
            t, input: [Double](repeating: 1, count: t.inputCount),
            gradOutput: [Double](repeating: 1, count: t.outputCount))
        XCTAssertEqual(ones, [Double](repeating: 60, count: t.weightCount))
    }

    /// The direct convolution equals weight · im2col columns (two independent routes).
    func testDirectConvEqualsGEMMOverColumns() {
        let s = ConvShape(batch: 2, inChannels: 3, outChannels: 4, height: 6, width: 5, kernelHeight: 2, kernelWidth: 3)
        let input = randomFloats(s.inputCount, seed: 3).map(Double.init)
        let weight = randomFloats(s.weightCount, seed: 4).map(Double.init)
        let columns = NaiveReference.im2col(s, input: input)
        let product = NaiveReference.gemm(
            GEMMShape(m: s.outChannels, n: s.patchCount, k: s.patchSize), a: weight, b: columns,
            c: [Double](repeating: 0, count: s.outChannels * s.patchCount))
        // product is (O, B·P); the convolution is (B, O, P).
        let patches = s.outHeight * s.outWidth
        let reordered = (0..<s.batch).flatMap { b in
            (0..<s.outChannels).flatMap { o in (0..<patches).map { p in product[o * s.patchCount + b * patches + p] } }
        }
        XCTAssertLessThanOrEqual(
            maxAbsoluteDifference(NaiveReference.conv2dForward(s, input: input, weight: weight), reordered), 1e-12)
    }

    /// Max-pool on a 3×5 plane (floor mode drops the last row and column),
    /// with a tie that must go to the first element in row-major order.
    func testMaxPoolByHand() {
        let s = PoolShape(batch: 1, channels: 1, height: 3, width: 5)
        let input: [Double] = [
            1, 7, 3, 3, 9,
            4, 2, 3, 3, 9,
            9, 9, 9, 9, 9,
        ]
        let (output, argmax) = NaiveReference.maxPool2Forward(s, input: input)
        XCTAssertEqual(output, [7, 3])
        XCTAssertEqual(argmax, [1, 2])  // the 3 at (0,2) wins the four-way tie
        XCTAssertEqual(
            NaiveReference.maxPool2Backward(s, gradOutput: [0.5, -2], argmax: argmax),
            [0, 0.5, -2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    func testReluAndLinearByHand() {
        XCTAssertEqual(NaiveReference.reluForward([-1.0, 0, 2.5]), [0, 0, 2.5])
        XCTAssertTrue(NaiveReference.reluForward([Double.nan])[0].isNaN)
        XCTAssertEqual(NaiveReference.reluBackward(output: [0.0, 0, 2.5], gradOutput: [3.0, 4, 5]), [0, 0, 5])
        // input (2×3), weight (2×3), bias (2).
        let s = LinearShape(batch: 2, inFeatures: 3, outFeatures: 2)
        let input: [Double] = [1, 2, 3, 0, 1, 0]
        let weight: [Double] = [1, 0, -1, 2, 1, 0]
        let bias: [Double] = [10, 20]
        XCTAssertEqual(NaiveReference.linearForward(s, input: input, weight: weight, bias: bias), [8, 24, 10, 21])
        let g = NaiveReference.linearBackward(s, input: input, weight: weight, gradOutput: [1, 0, 0, 1])
        XCTAssertEqual(g.gradInput, [1, 0, -1, 2, 1, 0])
        XCTAssertEqual(g.gradWeight, [1, 2, 3, 0, 1, 0])
        XCTAssertEqual(g.gradBias, [1, 1])
    }

    /// Two equal logits: loss ln 2, gradient ±½, and the tie counts as class 0.
    func testSoftmaxCrossEntropyByHand() {
        let r = NaiveReference.softmaxCrossEntropy(batch: 1, classes: 2, logits: [3.0, 3.0], labels: [0])
        XCTAssertEqual(r.loss[0], log(2), accuracy: 1e-12)
        XCTAssertEqual(r.correct, [1])
        XCTAssertEqual(r.gradLogits, [-0.5, 0.5])
        // Batch 2: the gradient is divided by the batch; label 1 on a tie is wrong.
        let two = NaiveReference.softmaxCrossEntropy(batch: 2, classes: 2, logits: [0.0, 0, 1000, 0], labels: [1, 0])
        XCTAssertEqual(two.correct, [0, 1])
        XCTAssertEqual(two.loss[1], 0, accuracy: 1e-12)  // saturated, no overflow
        XCTAssertEqual(two.gradLogits, [0.25, -0.25, 0, 0])
        XCTAssertEqual(two.perSample, [log(2), 0] + [0, 1])
    }

    func testOptimiserStepsByHand() {
        // v = 0.9·2 + 0.5 = 2.3; p = 1 − 0.1·2.3 = 0.77.
        let sgd = NaiveReference.sgdMomentumStep(
            parameter: [1.0], gradient: [0.5], velocity: [2.0], learningRate: 0.1, momentum: 0.9)
        XCTAssertEqual(sgd.velocity[0], 2.3, accuracy: 1e-12)
        XCTAssertEqual(sgd.parameter[0], 0.77, accuracy: 1e-12)
        // With λ = 0.1 and Nesterov: d = 0.5 + 0.1·1 = 0.6; v = 0.9·2 + 0.6 = 2.4;
        // step = d + 0.9·v = 0.6 + 2.16 = 2.76; p = 1 − 0.1·2.76 = 0.724.
        let nesterov = NaiveReference.sgdMomentumStep(
            parameter: [1.0], gradient: [0.5], velocity: [2.0], learningRate: 0.1, momentum: 0.9, nesterov: true,
            weightDecay: 0.1)
        XCTAssertEqual(nesterov.velocity[0], 2.4, accuracy: 1e-12)
        XCTAssertEqual(nesterov.parameter[0], 0.724, accuracy: 1e-12)
        // First Adam step: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε).
        let step = AdamStep(learningRate: 0.01, step: 1)
        let adam = NaiveReference.adamStep(parameter: [1.0], gradient: [2.0], m: [0.0], v: [0.0], step: step)
        XCTAssertEqual(adam.m[0], 0.2, accuracy: 1e-7)
        XCTAssertEqual(adam.v[0], 0.004, accuracy: 1e-7)  // β₂ is the float 0.999
        XCTAssertEqual(adam.parameter[0], 1 - 0.01, accuracy: 1e-6)
    }
}
