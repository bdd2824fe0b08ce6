// pz-bench: kernel benchmarks without TorchSharp, (a) the compiled CPU path and (c) the bandwidth floor, plus
// the ILGPU CUDA path where a GPU exists. Self-contained publishable; see bench/README.md.
using PrunerZero.Bench;

string prefix = Path.GetFileNameWithoutExtension(Environment.ProcessPath) is "dotnet" or null
    ? "dotnet run -c Release --project bench/PrunerZero.Bench --"
    : Path.GetRelativePath(Environment.CurrentDirectory, Environment.ProcessPath!);
return BenchRunner.Run(args, prefix, [BenchRunner.CpuSuite, BenchRunner.GpuSuite], ["cpu", "gpu"]);
