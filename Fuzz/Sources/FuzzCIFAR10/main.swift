import Foundation

// SwiftPM links an executable with `main = FuzzCIFAR10_main` (this file's
// top-level code), so libFuzzer's own main is not used: hand control to
// libFuzzer's driver (LLVMFuzzerRunDriver, LLVM ≥ 12) with the callback.

// swift-format-ignore: AlwaysUseLowerCamelCase
// The C symbol's own name.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argumentCount = CommandLine.argc
var arguments = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argumentCount, &arguments, { fuzzCIFAR10($0, $1) }))
