import ArgumentParser

@main
struct ConvSVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convsvd",
        abstract: "Train TinyConvNet on MNIST with OpenCL kernels, then take it apart with the SVD.",
        discussion: """
            Devices: --device auto (an OpenCL GPU if there is one, else the first OpenCL \
            device such as PoCL, else the host), opencl, opencl:P:D, host.

            Exit codes: 0 success; 1 a verification check failed; 2 bad input data \
            (IDX, checkpoint); 3 device or OpenCL error; 4 training diverged; 5 an output \
            cannot be written or --out is in use by another process; 64 bad command line or setting \
            (e.g. CONVSVD_KERNELS); 130 interrupted.
            """,
        subcommands: [
            RunCommand.self, TrainCommand.self, EvaluateCommand.self, AnalyzeCommand.self, StudyCommand.self,
            DevicesCommand.self, BenchCommand.self, SelfTestCommand.self, ExportCommand.self, DescribeCommand.self,
            CompressCommand.self, ReportCommand.self,
        ]
    )
}
