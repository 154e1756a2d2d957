import ArgumentParser
import Foundation
import GPUNet

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List every OpenCL platform and device, and the host device; mark the one `auto` picks.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let devices = Devices.available()
            let chosen = Devices.autoChoice(from: devices)
            if json {
                struct Listing: Encodable {
                    var devices: [DeviceInfo]
                    var auto: String
                }
                let data = try JSONEncoder.sorted.encode(Listing(devices: devices, auto: chosen.selector))
                print(String(decoding: data, as: UTF8.self))
                return
            }
            for d in devices {
                let mark = d.selector == chosen.selector ? "  ← auto" : ""
                print("\(d.selector)\(mark)")
                print("  name:           \(d.name)")
                print("  vendor:         \(d.vendor)")
                print("  platform:       \(d.platformName)")
                print("  type:           \(d.type)")
                print("  compute units:  \(d.computeUnits)")
                print("  global memory:  \(String(format: "%.1f", Double(d.globalMemoryBytes) / 1_073_741_824)) GiB")
                print("  language:       \(d.languageVersion)")
                print("  driver:         \(d.driverVersion)")
                if let family = d.kernelFamily {
                    print(
                        "  kernels (auto): \(family.rawValue) (by device type; --kernels or $\(KernelFamily.environmentVariable) override)"
                    )
                }
            }
            if !devices.contains(where: { $0.kind != .host }) {
                print("(no OpenCL platform found: install an ICD such as pocl-opencl-icd, or check OCL_ICD_VENDORS)")
            }
        }
    }
}
