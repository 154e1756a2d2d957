import Foundation

/// Reads the binary version of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html).
///
/// Six files, `data_batch_1.bin` … `data_batch_5.bin` (training, in that
/// order) and `test_batch.bin`, each a sequence of 3,073-byte records: one
/// label byte (0…9), then 3,072 pixel bytes, the 32×32 red plane, then green,
/// then blue, each row-major. A record's pixels are therefore already one
/// image in ``Dataset``'s layout (channel planes), and the loader copies them
/// unchanged. The published files hold 10,000 records each; the reader
/// accepts any positive whole number of records.
public enum CIFAR10Loader {
    /// One image's shape: 3×32×32.
    public static let imageShape = DatasetKind.cifar10.inputShape
    /// Bytes per record: 1 label + 3·32·32 pixels = 3,073.
    public static let recordSize = 1 + 3 * 32 * 32
    /// The training files, in the order their records are concatenated.
    public static let trainingFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFile = "test_batch.bin"
    public static let fileNames = trainingFiles + [testFile]
    /// The archive as published, its MD5 (from the data set's page), and the
    /// folder it unpacks to.
    public static let archiveName = "cifar-10-binary.tar.gz"
    public static let archiveMD5 = "c32a1d4ab5d03f1284b67883e8d87530"
    public static let archiveFolder = "cifar-10-batches-bin"

    /// The labels and pixels of one file's records, in file order:
    /// pixels[k·3072 + p] = data[k·3073 + 1 + p], labels[k] = data[k·3073].
    /// Throws ``DatasetError/badRecordLength(file:length:)`` unless the
    /// length is a positive multiple of 3,073 and
    /// ``DatasetError/badLabel(file:record:offset:label:)`` for the first
    /// label above 9.
    public static func records(_ data: Data, fileName: String) throws -> (pixels: [UInt8], labels: [UInt8]) {
        let length = data.count
        guard length > 0, length % recordSize == 0 else {
            throw DatasetError.badRecordLength(file: fileName, length: length)
        }
        let count = length / recordSize
        let imageBytes = recordSize - 1
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let source = raw.bindMemory(to: UInt8.self)
            var labels = [UInt8](repeating: 0, count: count)
            for k in 0..<count {
                let label = source[k * recordSize]
                guard label < 10 else {
                    throw DatasetError.badLabel(file: fileName, record: k, offset: k * recordSize, label: Int(label))
                }
                labels[k] = label
            }
            let pixels = [UInt8](unsafeUninitializedCapacity: count * imageBytes) { buffer, initialized in
                for k in 0..<count {
                    let from = source.baseAddress! + k * recordSize + 1
                    (buffer.baseAddress! + k * imageBytes).initialize(from: from, count: imageBytes)
                }
                initialized = count * imageBytes
            }
            return (pixels, labels)
        }
    }

    /// One set from `files`, their records concatenated in the given order.
    public static func dataset(name: String, files: [URL]) throws -> Dataset {
        var pixels = [UInt8]()
        var labels = [UInt8]()
        for url in files {
            let part = try records(readWholeFile(at: url), fileName: url.path)
            pixels += part.pixels
            labels += part.labels
        }
        return Dataset(
            name: name, count: labels.count, channels: imageShape.channels, rows: imageShape.height,
            columns: imageShape.width, pixels: pixels, labels: labels, normalization: .cifar10)
    }

    /// The folder that holds all six files: `directory` itself, else its
    /// `cifar-10-batches-bin` (where the archive unpacks); nil when neither does.
    public static func filesDirectory(in directory: URL) -> URL? {
        for candidate in [directory, directory.appendingPathComponent(archiveFolder, isDirectory: true)] {
            let all = fileNames.allSatisfy {
                FileManager.default.fileExists(atPath: candidate.appendingPathComponent($0).path)
            }
            if all { return candidate }
        }
        return nil
    }

    /// Loads the training set (50,000 images from the published files) and
    /// the test set (10,000) from `directory` (``filesDirectory(in:)``).
    ///
    /// When the files are not there: an archive `directory/cifar-10-binary.tar.gz`
    /// is checked against `archiveMD5` and unpacked; else, with `download`,
    /// the archive is fetched from its mirrors, checked, written atomically
    /// there and unpacked. A missing file after that is
    /// ``DatasetError/missingCIFAR10Files(directory:missing:failures:)``,
    /// listing the files expected and where.
    public static func load(
        directory: URL, download: DatasetDownload? = nil, archiveMD5: String = archiveMD5
    ) throws -> (train: Dataset, test: Dataset) {
        var failures = [String]()
        if filesDirectory(in: directory) == nil {
            let archive = directory.appendingPathComponent(archiveName)
            if FileManager.default.fileExists(atPath: archive.path) {
                try unpackArchive(archive, into: directory, expectedMD5: archiveMD5)
            } else if let download {
                failures = fetchArchive(to: archive, using: download, expectedMD5: archiveMD5)
                if failures.isEmpty { try unpackArchive(archive, into: directory, expectedMD5: archiveMD5) }
            }
        }
        guard let folder = filesDirectory(in: directory) else {
            let inner = directory.appendingPathComponent(archiveFolder)
            let missing = fileNames.filter { name in
                ![directory, inner].contains {
                    FileManager.default.fileExists(atPath: $0.appendingPathComponent(name).path)
                }
            }
            throw DatasetError.missingCIFAR10Files(
                directory: directory.path, missing: missing.isEmpty ? fileNames : missing, failures: failures)
        }
        let train = try dataset(name: "cifar10/train", files: trainingFiles.map { folder.appendingPathComponent($0) })
        let test = try dataset(name: "cifar10/test", files: [folder.appendingPathComponent(testFile)])
        return (train, test)
    }

    /// Checks `archive`'s MD5, unpacks it with tar(1) into a temporary folder
    /// inside `directory`, and moves each of the six files that
    /// `directory/cifar-10-batches-bin` lacks into it (a rename, so a file is
    /// either absent or whole). Throws ``DatasetError/checksumMismatch(file:expected:actual:)``
    /// or ``DatasetError/unpackFailed(archive:reason:)``.
    public static func unpackArchive(_ archive: URL, into directory: URL, expectedMD5: String = archiveMD5) throws {
        let actual = MD5.hex(try readWholeFile(at: archive))
        guard actual == expectedMD5 else {
            throw DatasetError.checksumMismatch(file: archive.path, expected: expectedMD5, actual: actual)
        }
        let fm = FileManager.default
        let scratch = directory.appendingPathComponent(".cifar10-unpack-\(getpid())", isDirectory: true)
        try? fm.removeItem(at: scratch)
        defer { try? fm.removeItem(at: scratch) }
        do { try fm.createDirectory(at: scratch, withIntermediateDirectories: true) } catch {
            throw DatasetError.unpackFailed(archive: archive.path, reason: "cannot create \(scratch.path): \(error)")
        }
        let tar = ["/usr/bin/tar", "/bin/tar", "/usr/local/bin/tar"].first { fm.isExecutableFile(atPath: $0) }
        guard let tar else { throw DatasetError.unpackFailed(archive: archive.path, reason: "tar is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tar)
        process.arguments = ["-x", "-z", "--no-same-owner", "-f", archive.path, "-C", scratch.path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw DatasetError.unpackFailed(archive: archive.path, reason: "cannot start tar: \(error)")
        }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = message.trimmingCharacters(in: .whitespacesAndNewlines)
            throw DatasetError.unpackFailed(
                archive: archive.path, reason: reason.isEmpty ? "tar exit status \(process.terminationStatus)" : reason)
        }
        let unpacked = scratch.appendingPathComponent(archiveFolder, isDirectory: true)
        let target = directory.appendingPathComponent(archiveFolder, isDirectory: true)
        let absent = fileNames.filter { !fm.fileExists(atPath: unpacked.appendingPathComponent($0).path) }
        guard absent.isEmpty else {
            throw DatasetError.unpackFailed(
                archive: archive.path,
                reason: "it has no \(absent.map { "\(archiveFolder)/\($0)" }.joined(separator: ", "))")
        }
        do {
            try fm.createDirectory(at: target, withIntermediateDirectories: true)
            for name in fileNames where !fm.fileExists(atPath: target.appendingPathComponent(name).path) {
                try fm.moveItem(at: unpacked.appendingPathComponent(name), to: target.appendingPathComponent(name))
            }
        } catch {
            throw DatasetError.unpackFailed(
                archive: archive.path, reason: "cannot move the files into \(target.path): \(error)")
        }
    }

    /// Fetches the archive from the first mirror that serves content with
    /// `expectedMD5` and writes it atomically to `archive`; returns one line
    /// per failed attempt (empty on success).
    static func fetchArchive(to archive: URL, using download: DatasetDownload, expectedMD5: String) -> [String] {
        var failures = [String]()
        for mirror in download.mirrors {
            let url = mirror.appendingPathComponent(archiveName)
            do {
                let bytes = try download.fetch(url)
                let actual = MD5.hex(bytes)
                guard actual == expectedMD5 else {
                    throw DatasetError.checksumMismatch(file: url.absoluteString, expected: expectedMD5, actual: actual)
                }
                try FileManager.default.createDirectory(
                    at: archive.deletingLastPathComponent(), withIntermediateDirectories: true)
                try writeAtomically(bytes, to: archive)
                return []
            } catch let failure as DownloadFailure {
                failures.append(failure.message)
            } catch let error as DatasetError {
                failures.append(error.description)
            } catch {
                failures.append("\(url.absoluteString): \(error)")
            }
        }
        return failures
    }
}
