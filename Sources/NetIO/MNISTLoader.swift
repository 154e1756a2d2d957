import Foundation

/// The IDX side of ``DatasetKind``: MNIST and Fashion-MNIST use the same
/// four file names and the same format (28×28 unsigned-byte images, labels 0…9).
extension DatasetKind {
    /// The standard base names; on disk each may also carry ".gz".
    public static let trainImagesFile = "train-images-idx3-ubyte"
    public static let trainLabelsFile = "train-labels-idx1-ubyte"
    public static let testImagesFile = "t10k-images-idx3-ubyte"
    public static let testLabelsFile = "t10k-labels-idx1-ubyte"
    public static let fileBaseNames = [trainImagesFile, trainLabelsFile, testImagesFile, testLabelsFile]

    /// MD5 of each file's decompressed content, by base name. MNIST's from
    /// shared/data/mnist/README.md; Fashion-MNIST's from Debian's
    /// dataset-fashion-mnist 0.0~git20200523 (the upstream release).
    public var decompressedMD5: [String: String] {
        switch self {
        case .mnist:
            return [
                Self.trainImagesFile: "6bbc9ace898e44ae57da46a324031adb",
                Self.trainLabelsFile: "a25bea736e30d166cdddb491f175f624",
                Self.testImagesFile: "2646ac647ad5339dbf082846283269ea",
                Self.testLabelsFile: "27ae3e4e09519cfbb04c329615203637",
            ]
        case .fashionMNIST:
            return [
                Self.trainImagesFile: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                Self.trainLabelsFile: "9018921c3c673c538a1fc5bad174d6f9",
                Self.testImagesFile: "8181f5470baa50b63fa0f6fddb340f0a",
                Self.testLabelsFile: "15d484375f8d13e6eb1aabb0c3f46965",
            ]
        case .cifar10:
            return [:]
        }
    }

    /// Where the files are published: for the IDX sets each file is
    /// `mirror/<name>.gz`; for CIFAR-10 the archive is
    /// `mirror/cifar-10-binary.tar.gz` (``CIFAR10Loader/archiveName``).
    public var mirrors: [URL] {
        switch self {
        case .mnist: return [URL(string: "https://ossci-datasets.s3.amazonaws.com/mnist/")!]
        case .fashionMNIST: return [URL(string: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")!]
        case .cifar10: return [URL(string: "https://www.cs.toronto.edu/~kriz/")!]
        }
    }
}

/// Finds a data set's folder.
public enum DatasetLocator {
    /// Debian's dataset-fashion-mnist installs the four .gz files here.
    public static let debianFashionMNISTDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// The folder to read `kind` from, first match wins:
    /// 1. `explicit` (the command line's `--data`);
    /// 2. the environment variable (``DatasetKind/environmentVariable``:
    ///    `MNIST_DIR`, `FASHION_MNIST_DIR`, `CIFAR10_DIR`) when set and not empty;
    /// 3. Fashion-MNIST: /usr/share/datasets/fashion-mnist (Debian's package);
    ///    the others: `$XDG_DATA_HOME/convsvd/<kind>`, else
    ///    `~/.local/share/convsvd/<kind>` (`<kind>` the raw value: mnist, cifar10).
    public static func directory(
        for kind: DatasetKind, explicit: URL? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> URL {
        if let explicit { return explicit }
        if let value = environment[kind.environmentVariable], !value.isEmpty {
            return URL(fileURLWithPath: value, isDirectory: true)
        }
        switch kind {
        case .mnist, .cifar10:
            let dataHome: URL
            if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty {
                dataHome = URL(fileURLWithPath: xdg, isDirectory: true)
            } else {
                let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
                dataHome = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".local/share")
            }
            return dataHome.appendingPathComponent("convsvd/\(kind.rawValue)", isDirectory: true)
        case .fashionMNIST:
            return debianFashionMNISTDirectory
        }
    }
}

/// Why a data set could not be loaded (file-level problems are ``IDXError``s).
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// Files absent from `directory`, by base name (``DatasetKind/fileBaseNames``:
    /// neither the file nor its .gz is there); `downloadFailures` says why
    /// fetching them failed (empty when downloading was off).
    case missingFiles(kind: DatasetKind, directory: String, missing: [String], downloadFailures: [String])
    /// A file's decompressed content is not the published one (for
    /// CIFAR-10: the archive's MD5).
    case checksumMismatch(file: String, expected: String, actual: String)
    /// CIFAR-10 files (``CIFAR10Loader/fileNames``) found neither in
    /// `directory` nor in its `cifar-10-batches-bin` folder, nor obtainable
    /// from an archive; `failures` says why unpacking or downloading failed.
    case missingCIFAR10Files(directory: String, missing: [String], failures: [String])
    /// A CIFAR-10 file whose length is not a positive multiple of 3,073 bytes.
    case badRecordLength(file: String, length: Int)
    /// A CIFAR-10 record whose label byte is not a class (0…9); `record`
    /// counts from 0, `offset` is the label byte's position in the file.
    case badLabel(file: String, record: Int, offset: Int, label: Int)
    /// The CIFAR-10 archive could not be unpacked.
    case unpackFailed(archive: String, reason: String)

    public var description: String {
        switch self {
        case .missingFiles(let kind, let directory, let missing, let failures):
            var text =
                "\(kind.displayName) files missing in \(directory): \(missing.map { $0 + ".gz" }.joined(separator: ", ")).\n"
            if !failures.isEmpty {
                text += "Downloading them failed:\n" + failures.map { "  \($0)\n" }.joined()
            }
            text += "Put these files (gzip'd as published, or uncompressed) into \(directory):\n"
            text += missing.map { name in
                "  \(directory)/\(name).gz   (from \(kind.mirrors[0].absoluteString)\(name).gz)\n"
            }.joined()
            text += "or name another folder with --data DIR or \(kind.environmentVariable)=DIR."
            if kind == .fashionMNIST {
                text +=
                    " Debian's package dataset-fashion-mnist installs them in \(DatasetLocator.debianFashionMNISTDirectory.path) (apt-get install dataset-fashion-mnist)."
            }
            return text
        case .checksumMismatch(let file, let expected, let actual):
            if file.hasSuffix(".tar.gz") {
                return "\(file): MD5 \(actual), expected \(expected) (a damaged or different archive)"
            }
            return "\(file): decompressed content has MD5 \(actual), expected \(expected) (a damaged or different file)"
        case .missingCIFAR10Files(let directory, let missing, let failures):
            let inner = directory + "/" + CIFAR10Loader.archiveFolder
            var text = "CIFAR-10 files missing in \(directory) and in \(inner): \(missing.joined(separator: ", ")).\n"
            if !failures.isEmpty {
                text += "Getting them failed:\n" + failures.map { "  \($0)\n" }.joined()
            }
            text += "Expected the binary version's six files, \(CIFAR10Loader.fileNames.joined(separator: ", ")), "
            text += "in \(directory) or in \(inner); "
            text += "or the archive \(directory)/\(CIFAR10Loader.archiveName) "
            text += "(from \(DatasetKind.cifar10.mirrors[0].absoluteString)\(CIFAR10Loader.archiveName), "
            text += "MD5 \(CIFAR10Loader.archiveMD5)), which is unpacked there. "
            text += "Name another folder with --data DIR or \(DatasetKind.cifar10.environmentVariable)=DIR."
            return text
        case .badRecordLength(let file, let length):
            let size = CIFAR10Loader.recordSize
            if length == 0 { return "\(file): empty; a CIFAR-10 file holds records of \(size) bytes" }
            return "\(file): \(length) bytes is not a whole number of CIFAR-10 records "
                + "(1 label byte + 3,072 pixel bytes = \(size) bytes each): "
                + "\(length / size) records and \(length % size) bytes over"
        case .badLabel(let file, let record, let offset, let label):
            return "\(file): record \(record) (byte \(offset)) has label \(label); CIFAR-10 labels are 0…9"
        case .unpackFailed(let archive, let reason):
            return "cannot unpack \(archive): \(reason)"
        }
    }
}

/// How missing files are fetched.
public struct DatasetDownload: Sendable {
    /// Base URLs tried in order; a file is `base/<name>.gz`.
    public var mirrors: [URL]
    /// Seconds allowed to connect (kept short so that an offline machine fails fast).
    public var connectTimeout: Int
    /// Seconds allowed for one whole file.
    public var totalTimeout: Int

    public init(mirrors: [URL], connectTimeout: Int = 5, totalTimeout: Int = 120) {
        self.mirrors = mirrors
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
    }

    /// The published mirrors of `kind`; CIFAR-10's one 163 MB archive gets
    /// 30 minutes where an IDX file (at most 26 MB) gets 2.
    public static func standard(for kind: DatasetKind) -> DatasetDownload {
        DatasetDownload(mirrors: kind.mirrors, totalTimeout: kind == .cifar10 ? 1800 : 120)
    }

    /// Fetches `url` with curl (`--fail`, so an HTTP error is a failure), or
    /// says why not.
    func fetch(_ url: URL) throws -> Data {
        let curl = ["/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let curl else { throw DownloadFailure(message: "\(url.absoluteString): curl is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: curl)
        process.arguments = [
            "--fail", "--silent", "--show-error", "--location",
            "--connect-timeout", String(connectTimeout), "--max-time", String(totalTimeout),
            url.absoluteString,
        ]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw DownloadFailure(message: "\(url.absoluteString): cannot start curl: \(error)")
        }
        // curl writes at most a line to stderr, so reading stdout first cannot deadlock.
        let body = output.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = message.trimmingCharacters(in: .whitespacesAndNewlines)
            throw DownloadFailure(
                message:
                    "\(url.absoluteString): \(reason.isEmpty ? "curl exit status \(process.terminationStatus)" : reason)"
            )
        }
        return body
    }
}

struct DownloadFailure: Error { var message: String }

/// Loads MNIST or Fashion-MNIST from a folder of IDX files.
public enum MNISTLoader {
    /// The path of `baseName` in `directory`: the uncompressed file when
    /// present, else the .gz one, else nil.
    public static func existingFile(_ baseName: String, in directory: URL) -> URL? {
        for name in [baseName, baseName + ".gz"] {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Loads the training and test sets of `kind` from `directory`.
    ///
    /// Missing files are fetched from `download`'s mirrors (when not nil),
    /// checked against the MD5 table and written atomically into `directory`
    /// as `<name>.gz`; if that fails the error lists the files to put where.
    /// With `verifyChecksums` every file's decompressed content must match
    /// ``DatasetKind/decompressedMD5`` (costs about one MD5 pass over 55 MB).
    /// Then every structural check of ``IDXReader`` applies. `kind` is an
    /// IDX set (``DatasetKind/mnist`` or ``DatasetKind/fashionMNIST``);
    /// ``DatasetLoader`` takes any kind.
    public static func load(
        kind: DatasetKind, directory: URL,
        download: DatasetDownload? = nil,
        verifyChecksums: Bool = true
    ) throws -> (train: Dataset, test: Dataset) {
        precondition(kind.format == .idx, "MNISTLoader.load: \(kind.displayName) is not an IDX set (use DatasetLoader)")
        let missing = DatasetKind.fileBaseNames.filter { existingFile($0, in: directory) == nil }
        if !missing.isEmpty {
            var failures = [String]()
            if let download {
                failures = fetchMissing(missing, kind: kind, into: directory, using: download)
            }
            let stillMissing = DatasetKind.fileBaseNames.filter { existingFile($0, in: directory) == nil }
            if !stillMissing.isEmpty {
                throw DatasetError.missingFiles(
                    kind: kind, directory: directory.path,
                    missing: stillMissing, downloadFailures: failures)
            }
        }
        func raw(_ baseName: String) throws -> Data {
            let url = existingFile(baseName, in: directory)!
            let bytes = try IDXReader.idxBytes(IDXReader.readFile(url), fileName: url.lastPathComponent)
            if verifyChecksums, let expected = kind.decompressedMD5[baseName] {
                let actual = MD5.hex(bytes)
                if actual != expected {
                    throw DatasetError.checksumMismatch(file: url.path, expected: expected, actual: actual)
                }
            }
            return bytes
        }
        func split(_ name: String, _ imagesBase: String, _ labelsBase: String) throws -> Dataset {
            let imagesName = existingFile(imagesBase, in: directory)!.lastPathComponent
            let labelsName = existingFile(labelsBase, in: directory)!.lastPathComponent
            let images = try IDXReader.images(raw(imagesBase), fileName: imagesName)
            let labels = try IDXReader.labels(raw(labelsBase), fileName: labelsName)
            guard images.count == labels.count else {
                throw IDXError.countMismatch(
                    imagesFile: imagesName, images: images.count, labelsFile: labelsName, labels: labels.count)
            }
            return Dataset(
                name: "\(kind.rawValue)/\(name)", count: images.count, rows: images.rows,
                columns: images.columns, pixels: images.pixels, labels: labels, normalization: kind.normalization)
        }
        let train = try split("train", DatasetKind.trainImagesFile, DatasetKind.trainLabelsFile)
        let test = try split("test", DatasetKind.testImagesFile, DatasetKind.testLabelsFile)
        return (train, test)
    }

    /// What the command line does: the folder from ``DatasetLocator`` (`--data`,
    /// the environment, the default), downloading missing files from the
    /// published mirrors, checksums verified. Any kind: CIFAR-10 goes to
    /// ``CIFAR10Loader`` (``DatasetLoader/locateAndLoad(kind:explicitDirectory:)``).
    public static func locateAndLoad(kind: DatasetKind, explicitDirectory: URL? = nil) throws -> (
        train: Dataset, test: Dataset
    ) {
        try DatasetLoader.locateAndLoad(kind: kind, explicitDirectory: explicitDirectory)
    }

    /// Downloads each missing file from the first mirror that serves content
    /// with the expected MD5; returns one line per failed attempt.
    static func fetchMissing(
        _ missing: [String], kind: DatasetKind, into directory: URL,
        using download: DatasetDownload
    ) -> [String] {
        var failures = [String]()
        for name in missing {
            for mirror in download.mirrors {
                let url = mirror.appendingPathComponent(name + ".gz")
                do {
                    let gz = try download.fetch(url)
                    let content = try IDXReader.idxBytes(gz, fileName: url.absoluteString)
                    if let expected = kind.decompressedMD5[name] {
                        let actual = MD5.hex(content)
                        guard actual == expected else {
                            throw DatasetError.checksumMismatch(
                                file: url.absoluteString, expected: expected, actual: actual)
                        }
                    }
                    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                    try writeAtomically(gz, to: directory.appendingPathComponent(name + ".gz"))
                    break
                } catch let failure as DownloadFailure {
                    failures.append(failure.message)
                } catch {
                    failures.append("\(url.absoluteString): \(error)")
                }
            }
            // Offline: every further file would fail the same way; stop early.
            if failures.count >= download.mirrors.count, existingFile(name, in: directory) == nil { break }
        }
        return failures
    }
}
