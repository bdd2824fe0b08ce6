// pz-bench-reference: (a) compiled CPU path, (b) the Python reference path on TorchSharp, (c) bandwidth floor,
// side by side in one process, then the table with a/b and a/c. See bench/README.md.
using PrunerZero.Bench;
using PrunerZero.Bench.Reference;
using TorchSharp;

torch.set_num_threads(Environment.ProcessorCount); // both paths use every core
if (args.Length > 0 && args[0] == "sparsegpt") return SparseGptBench.Run(args[1..]);   // SparseGPT per layer (its own table)
// The mask check runs just before the torch suite, so the CPU suite starts in a process that has not run libtorch yet.
var torchSuite = new Suite("torch", [typeof(TorchReferenceBench)], (o, table) => { MaskAgreement.Check(o, table); return null; },
    IterationCount: o => o.TorchIterationCount);
return BenchRunner.Run(args, "dotnet run -c Release --project bench/PrunerZero.Bench.Reference --",
    [BenchRunner.CpuSuite, torchSuite, BenchRunner.GpuSuite], ["cpu", "torch", "gpu"],
    environment: () =>
    [
        $"TorchSharp: {typeof(torch).Assembly.GetName().Version} (libtorch CPU), {torch.get_num_threads()} intra-op threads",
    ]);
