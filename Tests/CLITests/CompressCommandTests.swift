import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// `convsvd compress`: the factorised network that the device evaluates is
/// the dense network with each chosen weight W replaced by its rank-r
/// truncation, checked against the float64 interpreter (`NaiveNetwork`) of
/// both descriptions; the recorded energy is Eckart–Young's; bad requests
/// are usage errors that write nothing.
final class CompressCommandTests: XCTestCase {
    var mnist: String {
        get throws { try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set").path }
    }

    /// ResNet-8 after two steps, two layers factorised (a 3×3 body conv and
    /// the 1×1 stride-2 projection) on PoCL when present, else the host.
    /// Rules: mean losses over 100 test images against float64, 1e-4
    /// absolute (a forward output); dropped energy against
    /// ‖W − second·first‖²_F/‖W‖²_F in float64, 1e-5 (float32 factors).
    func testFactorisedResNet8MatchesTheTruncatedDenseNetwork() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trained = dir.appendingPathComponent("r8")
        let t = try CLI.run([
            "train", "--model", "resnet8", "--device", "host", "--data", try mnist, "--epochs", "1",
            "--train-limit", "256", "--test-limit", "100", "--out", trained.path,
        ])
        XCTAssertEqual(t.status, 0, t.output)
        let out = dir.appendingPathComponent("r8c")
        let device = try openCLTestDeviceInfos()[0].selector
        let c = try CLI.run([
            "compress", "--model", "resnet8", "--device", device, "--data", try mnist, "--checkpoint",
            trained.appendingPathComponent("checkpoint.safetensors").path, "--ranks",
            "layer1.0.conv1=3,layer2.0.downsample.0=2", "--test-limit", "100", "--repeats", "1", "--out", out.path,
        ])
        XCTAssertEqual(c.status, 0, c.output)
        XCTAssertTrue(c.stdout.contains("layer1.0.conv1"), c.stdout)

        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("compress.json")))
                as? [String: Any])
        let dense = try XCTUnwrap(report["dense"] as? [String: Any])
        let compressed = try XCTUnwrap(report["compressed"] as? [String: Any])
        XCTAssertEqual(dense["parameters"] as? Int, 77754)
        XCTAssertEqual(
            compressed["parameters"] as? Int, 77754 - 16 * 16 * 9 + 3 * (16 * 9 + 16) - 32 * 16 + 2 * (16 + 32))

        let test = try DatasetLoader.load(kind: .mnist, directory: URL(fileURLWithPath: try mnist)).test
        let images = test.normalizedImages(0..<100)
        let labels = test.labels.prefix(100).map { Int32($0) }
        func naiveLoss(_ description: NetworkDescription, _ checkpoint: URL) throws -> Double {
            let naive = try NaiveNetwork(description, input: (1, 28, 28), classes: 10)
            let file = try SafetensorsFile.read(from: checkpoint)
            var parameters: [String: [Double]] = [:]
            for p in naive.inputParameters { parameters[p.name] = try file.tensor(p.name).floats().map(Double.init) }
            return naive.run(
                images: images.map(Double.init), labels: labels, batch: 100, parameters: parameters, training: false
            ).meanLoss
        }
        let resnet8 = BuiltinModels.named("resnet8", inputChannels: 1, classes: 10)!
        let denseLoss = try naiveLoss(resnet8, trained.appendingPathComponent("checkpoint.safetensors"))
        let factorised = try ModelFile.load(out.appendingPathComponent("model.json"))
        let factorisedLoss = try naiveLoss(factorised, out.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertEqual(try XCTUnwrap(dense["meanLoss"] as? Double), denseLoss, accuracy: 1e-4)
        XCTAssertEqual(try XCTUnwrap(compressed["meanLoss"] as? Double), factorisedLoss, accuracy: 1e-4)
        // The factorisation changes the function: the check above could tell them apart.
        XCTAssertGreaterThan(abs(denseLoss - factorisedLoss), 1e-4)

        let original = try SafetensorsFile.read(from: trained.appendingPathComponent("checkpoint.safetensors"))
        let factors = try SafetensorsFile.read(from: out.appendingPathComponent("checkpoint.safetensors"))
        let layers = try XCTUnwrap(report["layers"] as? [[String: Any]])
        for (path, rank, columns) in [("layer1.0.conv1", 3, 16 * 9), ("layer2.0.downsample.0", 2, 16)] {
            let w = try original.tensor(path + ".weight").floats().map(Double.init)
            let first = try factors.tensor(path + ".0.weight").floats().map(Double.init)
            let second = try factors.tensor(path + ".1.weight").floats().map(Double.init)
            let out = w.count / columns
            var residual = 0.0
            for o in 0..<out {
                for j in 0..<columns {
                    let p = (0..<rank).reduce(0.0) { $0 + second[o * rank + $1] * first[$1 * columns + j] }
                    residual += (w[o * columns + j] - p) * (w[o * columns + j] - p)
                }
            }
            let energy = w.reduce(0) { $0 + $1 * $1 }
            let layer = try XCTUnwrap(layers.first { $0["path"] as? String == path })
            XCTAssertEqual(layer["rank"] as? Int, rank)
            XCTAssertEqual(1 - (try XCTUnwrap(layer["keptEnergy"] as? Double)), residual / energy, accuracy: 1e-5)
        }

        // The bound over the 100 test images: it holds, and no certified prediction changed.
        let bound = try XCTUnwrap(report["bound"] as? [String: Any])
        XCTAssertEqual(bound["images"] as? Int, 100)
        XCTAssertEqual(bound["violations"] as? Int, 0)
        XCTAssertEqual(bound["certifiedButChanged"] as? Int, 0)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(bound["medianRatio"] as? Double), 1)
        XCTAssertTrue(c.stdout.contains("0 violation(s)"), c.stdout)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: out.appendingPathComponent("figures/compression.png").path))

        // The data-aware factors at the same ranks (on the host): the device
        // runs them as NaiveNetwork does (same rule), they differ from the
        // SVD's, and the bound holds for them too.
        let aware = dir.appendingPathComponent("r8d")
        let d = try CLI.run([
            "compress", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint",
            trained.appendingPathComponent("checkpoint.safetensors").path, "--ranks",
            "layer1.0.conv1=3,layer2.0.downsample.0=2", "--data-aware", "--data-aware-images", "50", "--test-limit",
            "100", "--repeats", "1", "--out", aware.path,
        ])
        XCTAssertEqual(d.status, 0, d.output)
        XCTAssertTrue(d.stderr.contains("data-aware: input second moments of 9 conv layers over 50 training images"))
        let awareReport = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: aware.appendingPathComponent("compress.json")))
                as? [String: Any])
        XCTAssertTrue((awareReport["rule"] as? String ?? "").hasSuffix("data-aware (50 training images)"))
        let awareLoss = try naiveLoss(factorised, aware.appendingPathComponent("checkpoint.safetensors"))
        let awareCompressed = try XCTUnwrap(awareReport["compressed"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(awareCompressed["meanLoss"] as? Double), awareLoss, accuracy: 1e-4)
        XCTAssertGreaterThan(abs(awareLoss - factorisedLoss), 1e-6)
        let awareBound = try XCTUnwrap(awareReport["bound"] as? [String: Any])
        XCTAssertEqual(awareBound["violations"] as? Int, 0)
        for layer in try XCTUnwrap(awareReport["layers"] as? [[String: Any]]) where layer["rank"] is Int {
            XCTAssertLessThan(try XCTUnwrap(layer["factorError"] as? Double), 1e-5, "\(layer)")
        }
    }

    func testBadRequestsAreUsageErrorsAndWriteNothing() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("never")
        for (arguments, fragment) in [
            (["--energy", "0.9", "--ranks", "conv1=2"], "exactly one of --energy, --ranks and --max-logit-change"),
            (["--max-logit-change", "0"], "--max-logit-change must be positive"),
            (["--energy", "1.5"], "--energy must be in (0, 1]"),
            (["--ranks", "conv1:2"], "is not NAME=RANK"),
            (["--max-logit-change", "1", "--data-aware"], "--data-aware works with --energy or --ranks"),
            (
                ["--energy", "0.9", "--data-aware", "--data-aware-images", "0"],
                "--data-aware-images must be at least 1"
            ),
        ] {
            let r = try CLI.run(
                ["compress", "--device", "host", "--checkpoint", "missing.safetensors", "--out", out.path] + arguments)
            XCTAssertEqual(r.status, 64, r.output)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }
}

extension CompressCommandTests {
    /// `--finetune`: TinyConvNet with conv2 at rank 4 trains one short epoch
    /// from the factors into --out/finetune at a tenth of the recipe's
    /// learning rate; the rank stays fixed (the factors keep their shapes)
    /// and the fine-tuned network is measured on the same test images.
    func testFinetuneTrainsTheFactorsWithTheRankFixed() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trained = dir.appendingPathComponent("tiny")
        let t = try CLI.run([
            "train", "--device", "host", "--data", try mnist, "--epochs", "1", "--train-limit", "640",
            "--test-limit", "200", "--out", trained.path,
        ])
        XCTAssertEqual(t.status, 0, t.output)
        let out = dir.appendingPathComponent("tinyc")
        let c = try CLI.run([
            "compress", "--device", "host", "--data", try mnist, "--checkpoint",
            trained.appendingPathComponent("checkpoint.safetensors").path, "--ranks", "conv2=4", "--finetune", "1",
            "--train-limit", "640", "--test-limit", "200", "--repeats", "1", "--out", out.path,
        ])
        XCTAssertEqual(c.status, 0, c.output)
        XCTAssertTrue(c.stderr.contains("lr 0.0001"), c.stderr)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("compress.json")))
                as? [String: Any])
        let finetuned = try XCTUnwrap(report["finetuned"] as? [String: Any])
        XCTAssertEqual(finetuned["parameters"] as? Int, 5234 - 16 * 72 + 4 * (72 + 16))
        let before = try SafetensorsFile.read(from: out.appendingPathComponent("checkpoint.safetensors"))
        let after = try SafetensorsFile.read(from: out.appendingPathComponent("finetune/checkpoint.safetensors"))
        for name in ["conv2.0.weight", "conv2.1.weight"] {
            XCTAssertEqual(try after.tensor(name).shape, try before.tensor(name).shape, name)
            XCTAssertNotEqual(try after.tensor(name).floats(), try before.tensor(name).floats(), "\(name) trained")
        }

        // --max-logit-change on the 200 test images it searches: the measured bound's mean stays
        // within ε (the real factors' bound never exceeds the search's), some work is saved, and it holds.
        let chosen = dir.appendingPathComponent("chosen")
        let m = try CLI.run([
            "compress", "--device", "host", "--data", try mnist, "--checkpoint",
            trained.appendingPathComponent("checkpoint.safetensors").path, "--max-logit-change", "40",
            "--test-limit", "200", "--repeats", "1", "--out", chosen.path,
        ])
        XCTAssertEqual(m.status, 0, m.output)
        let chosenReport = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: chosen.appendingPathComponent("compress.json")))
                as? [String: Any])
        let chosenBound = try XCTUnwrap(chosenReport["bound"] as? [String: Any])
        XCTAssertLessThanOrEqual(try XCTUnwrap(chosenBound["meanBound"] as? Double), 40 * (1 + 1e-6))
        XCTAssertEqual(chosenBound["violations"] as? Int, 0)
        let chosenLayers = try XCTUnwrap(chosenReport["layers"] as? [[String: Any]])
        XCTAssertTrue(chosenLayers.contains { $0["rank"] as? Int != nil }, m.stdout)

        // Requests the model cannot take: usage errors (64) naming the layer, nothing written.
        let never = dir.appendingPathComponent("never")
        for (model, checkpoint, ranks, fragment) in [
            (
                out.appendingPathComponent("model.json").path, out.appendingPathComponent("checkpoint.safetensors"),
                "conv2.0=2", "conv2.0 is already a factor of the compressed layer conv2"
            ),
            ("tiny", trained.appendingPathComponent("checkpoint.safetensors"), "conv9=2", "not a conv layer of tiny"),
            ("tiny", trained.appendingPathComponent("checkpoint.safetensors"), "conv2=0", "outside 1…16"),
            ("tiny", trained.appendingPathComponent("checkpoint.safetensors"), "fc=2", "not a conv layer of tiny"),
        ] {
            let r = try CLI.run([
                "compress", "--model", model, "--device", "host", "--data", try mnist, "--checkpoint", checkpoint.path,
                "--ranks", ranks, "--test-limit", "10", "--out", never.path,
            ])
            XCTAssertEqual(r.status, 64, r.output)
            XCTAssertTrue(r.stderr.contains(fragment), "\(ranks): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: never.path), ranks)
        }
    }
}

extension CompressCommandTests {
    /// A grid (`--energy 0.9,0.99 --compare-data-aware`) is the single
    /// compressions side by side: each setting's folder holds the checkpoint a
    /// run of that setting alone writes (byte for byte), grid.json lists the
    /// four settings in order with their own compress.json figures, the table
    /// has a row each and the figure is a PNG; bad lists are usage errors.
    func testGridIsTheSingleCompressionsSideBySide() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trained = dir.appendingPathComponent("tiny")
        let t = try CLI.run([
            "train", "--device", "host", "--data", try mnist, "--epochs", "1", "--train-limit", "640",
            "--test-limit", "100", "--out", trained.path,
        ])
        XCTAssertEqual(t.status, 0, t.output)
        let checkpoint = trained.appendingPathComponent("checkpoint.safetensors").path
        let common = [
            "compress", "--device", "host", "--data", try mnist, "--checkpoint", checkpoint, "--test-limit", "200",
            "--repeats", "1", "--data-aware-images", "200",
        ]
        let grid = dir.appendingPathComponent("grid")
        let g = try CLI.run(common + ["--energy", "0.9,0.99", "--compare-data-aware", "--out", grid.path])
        XCTAssertEqual(g.status, 0, g.output)
        let folders = ["energy-0.9", "energy-0.9-data-aware", "energy-0.99", "energy-0.99-data-aware"]
        for folder in folders { XCTAssertTrue(g.stdout.contains(folder + " "), g.stdout) }
        let single = dir.appendingPathComponent("single")
        let s = try CLI.run(common + ["--energy", "0.9", "--data-aware", "--out", single.path])
        XCTAssertEqual(s.status, 0, s.output)
        XCTAssertEqual(
            try Data(contentsOf: single.appendingPathComponent("checkpoint.safetensors")),
            try Data(contentsOf: grid.appendingPathComponent("energy-0.9-data-aware/checkpoint.safetensors")))

        let json = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: grid.appendingPathComponent("grid.json")))
                as? [String: Any])
        let entries = try XCTUnwrap(json["settings"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["folder"] as? String }, folders)
        for (entry, folder) in zip(entries, folders) {
            let result = try XCTUnwrap(entry["result"] as? [String: Any])
            let own = try XCTUnwrap(
                JSONSerialization.jsonObject(
                    with: Data(contentsOf: grid.appendingPathComponent(folder).appendingPathComponent("compress.json")))
                    as? [String: Any])
            XCTAssertEqual(NSDictionary(dictionary: result), NSDictionary(dictionary: own), folder)
            XCTAssertEqual(result["dataAware"] as? Bool, folder.hasSuffix("data-aware"), folder)
            XCTAssertEqual(result["stepBatch"] as? Int, 64, "\(folder): TinyConvNet's recipe batch")
            for network in ["dense", "compressed"] {
                let measured = try XCTUnwrap(result[network] as? [String: Any])
                XCTAssertGreaterThan(try XCTUnwrap(measured["stepSeconds"] as? Double), 0, "\(folder) \(network)")
            }
        }
        // Every setting evaluates the one dense network after the earlier settings' timed training steps:
        // its loss stays the same only if those steps' changes are put back.
        let denseLosses = try entries.map { entry -> Double in
            let result = try XCTUnwrap(entry["result"] as? [String: Any])
            return try XCTUnwrap((result["dense"] as? [String: Any])?["meanLoss"] as? Double)
        }
        XCTAssertEqual(Set(denseLosses).count, 1, "dense losses \(denseLosses)")
        let png = try Data(contentsOf: grid.appendingPathComponent("figures/compression_grid.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])

        let never = dir.appendingPathComponent("never")
        for (arguments, fragment) in [
            (["--energy", "0.9,0.9"], "--energy names 0.9 twice"),
            (["--energy", "0.9,1.5"], "--energy must be in (0, 1]"),
            (["--energy", "0.9", "--data-aware", "--compare-data-aware"], "not both"),
            (["--max-logit-change", "1", "--compare-data-aware"], "--data-aware works with --energy or --ranks"),
        ] {
            let r = try CLI.run(common + arguments + ["--out", never.path])
            XCTAssertEqual(r.status, 64, r.output)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: never.path))
        }
    }
}
