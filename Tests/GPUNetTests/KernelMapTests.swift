import Foundation
import GPUNet
import TestSupport
import XCTest

/// The kernel map of Sources/Kernels/README.md cannot rot: every kernel it
/// names exists, every kernel of the sources is named in a row, and every
/// host function, float64 reference and test class it names exists.
final class KernelMapTests: XCTestCase {
    struct Row {
        var operation: String
        var kernels: Set<String>
        var hostFile: String
        var hostFunction: String
        /// `Type.function`: the readable float64 reference(s) of the operation.
        var references: [String]
        var tests: [String]
    }

    /// The rows of the "## Kernel map" table: cells split at `|`, the
    /// backquoted names in each; `name_{1,4,8,16}` stands for one kernel per
    /// width.
    func mapRows() throws -> [Row] {
        let url = TestEnvironment.packageRoot.appendingPathComponent("Sources/Kernels/README.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        let section = try XCTUnwrap(text.range(of: "## Kernel map"), "README.md has no '## Kernel map' section")
        let lines = text[section.upperBound...].split(separator: "\n").map(String.init)
        return try lines.filter { $0.hasPrefix("| `") }.map { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map(
                String.init)
            guard cells.count == 6 else { throw MalformedRow(line: line) }
            let host = names(in: cells[3])
            XCTAssertEqual(host.count, 2, "host cell of \(line)")
            return Row(
                operation: names(in: cells[0]).first ?? "",
                kernels: Set((names(in: cells[1]) + names(in: cells[2])).flatMap(expanded)),
                hostFile: host.first ?? "", hostFunction: host.last ?? "", references: names(in: cells[4]),
                tests: names(in: cells[5]))
        }
    }

    struct MalformedRow: Error { var line: String }

    func names(in cell: String) -> [String] {
        cell.split(separator: "`", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    func expanded(_ name: String) -> [String] {
        guard let open = name.firstIndex(of: "{"), let close = name.firstIndex(of: "}") else { return [name] }
        let stem = name[..<open]
        let tail = name[name.index(after: close)...]
        return name[name.index(after: open)..<close].split(separator: ",").map { String(stem + $0 + tail) }
    }

    func testEveryKernelIsMappedAndEveryMappedKernelExists() throws {
        let rows = try mapRows()
        XCTAssertGreaterThanOrEqual(rows.count, 18, "one row per Device compute operation")
        let mapped = rows.reduce(into: Set<String>()) { $0.formUnion($1.kernels) }
        let sources = Set(OpenCLDevice.kernelNames)
        XCTAssertGreaterThan(sources.count, 60)
        XCTAssertEqual(mapped.subtracting(sources).sorted(), [], "kernels named in the map but not in Sources/Kernels")
        XCTAssertEqual(sources.subtracting(mapped).sorted(), [], "kernels of Sources/Kernels in no row of the map")
    }

    func testHostFunctionsAndTestClassesOfTheMapExist() throws {
        let root = TestEnvironment.packageRoot
        let testSources = try FileManager.default.subpathsOfDirectory(atPath: root.appendingPathComponent("Tests").path)
            .filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOf: root.appendingPathComponent("Tests/\($0)"), encoding: .utf8) }
            .joined(separator: "\n")
        for row in try mapRows() {
            // A file of Sources/GPUNet/Host, or a path under Sources/GPUNet (a model's own pass).
            let folder = row.hostFile.contains("/") ? "Sources/GPUNet" : "Sources/GPUNet/Host"
            let file = root.appendingPathComponent("\(folder)/\(row.hostFile)")
            let host = try String(contentsOf: file, encoding: .utf8)
            XCTAssertTrue(
                host.contains("func \(row.hostFunction)("),
                "\(row.operation): no \(row.hostFunction) in \(row.hostFile)")
            XCTAssertFalse(row.tests.isEmpty, "\(row.operation): no tests named")
            for test in row.tests {
                XCTAssertTrue(
                    testSources.contains("class \(test): XCTestCase"), "\(row.operation): no test class \(test)")
            }
        }
    }

    /// Every row names its float64 reference as `Type.function`, and the
    /// function is declared in a file that declares or extends `Type`, in
    /// Tests/TestSupport or under Sources.
    func testEveryRowNamesAReferenceThatExists() throws {
        let root = TestEnvironment.packageRoot
        let files = try ["Tests/TestSupport", "Sources"].flatMap { folder in
            try FileManager.default.subpathsOfDirectory(atPath: root.appendingPathComponent(folder).path)
                .filter { $0.hasSuffix(".swift") }
                .map { try String(contentsOf: root.appendingPathComponent("\(folder)/\($0)"), encoding: .utf8) }
        }
        for row in try mapRows() {
            XCTAssertFalse(row.references.isEmpty, "\(row.operation): no float64 reference named")
            for reference in row.references {
                let parts = reference.split(separator: ".").map(String.init)
                guard parts.count == 2 else {
                    XCTFail("\(row.operation): reference \(reference) is not Type.function")
                    continue
                }
                let (type, function) = (parts[0], parts[1])
                let declared = files.contains { file in
                    ["enum", "struct", "class", "extension"].contains {
                        file.contains("\($0) \(type) {") || file.contains("\($0) \(type):")
                    } && (file.contains("func \(function)(") || file.contains("func \(function)<"))
                }
                XCTAssertTrue(declared, "\(row.operation): no \(function) declared with \(type)")
            }
        }
    }
}
