// Turns BenchmarkDotNet summaries into the table the issue asks for: per shape × metric, the time and GB/s
// of (a) compiled path, (b) reference path, (c) bandwidth floor, and the ratios a/b and a/c.
using System.Globalization;
using System.Text;
using BenchmarkDotNet.Reports;

namespace PrunerZero.Bench;

/// <summary>One benchmark case's result. Key is the Metric parameter, or the floor's Inputs ("W", "W+G").</summary>
public sealed record Measurement(string Method, string Shape, string Key, double MeanNs, double StdDevNs, int N);

public sealed class ResultsTable
{
    // Method names, as the benchmark classes declare them.
    public const string A = nameof(CpuKernelBench.ScoreAndMask);
    public const string AScore = nameof(CpuKernelBench.Score);
    public const string AMask = nameof(CpuKernelBench.Mask);
    public const string C = nameof(FloorBench.Floor);
    /// <summary>The reference suite's method name (declared in PrunerZero.Bench.Reference).</summary>
    public const string B = "TorchReference";
    public const string GpuApi = nameof(GpuBench.ApiScoreAndMask);
    public const string GpuMask = nameof(GpuBench.DeviceMask);
    public const string GpuFloor = nameof(GpuBench.DeviceFloor);
    public const string GpuH2D = nameof(GpuBench.HostToDevice);

    readonly Dictionary<(string Method, string Shape, string Key), Measurement> _m = new();
    public List<string> Notes { get; } = [];
    public List<string> Sections { get; } = [];

    public IReadOnlyCollection<Measurement> Measurements => _m.Values;

    public void Add(Summary summary)
    {
        foreach (var report in summary.Reports)
        {
            var bc = report.BenchmarkCase;
            string method = bc.Descriptor.WorkloadMethod.Name;
            string shape = bc.Parameters["Shape"]?.ToString() ?? "";
            string key = (bc.Parameters.Items.Any(p => p.Name == "Metric") ? bc.Parameters["Metric"]
                        : bc.Parameters.Items.Any(p => p.Name == "Inputs") ? bc.Parameters["Inputs"] : "")?.ToString() ?? "";
            var st = report.ResultStatistics;
            if (st is null) { Notes.Add($"{method} {shape} {key}: no result (failed; see the BenchmarkDotNet log)"); continue; }
            _m[(method, shape, key)] = new Measurement(method, shape, key, st.Mean, st.StandardDeviation, st.N);
        }
    }

    Measurement? Get(string method, string shape, string key) => _m.GetValueOrDefault((method, shape, key));

    static string Ms(Measurement? m) => m is null ? "–" : (m.MeanNs / 1e6).ToString(m.MeanNs >= 1e8 ? "F0" : m.MeanNs >= 1e7 ? "F1" : "F2", CultureInfo.InvariantCulture);
    static string MsSd(Measurement? m) => m is null ? "–" : $"{Ms(m)} ± {(m.StdDevNs / 1e6).ToString(m.MeanNs >= 1e8 ? "F0" : m.MeanNs >= 1e7 ? "F1" : "F2", CultureInfo.InvariantCulture)}";
    static string Gbs(long bytes, Measurement? m) => m is null ? "–" : (bytes / m.MeanNs).ToString("F1", CultureInfo.InvariantCulture); // B/ns = GB/s
    static string Ratio(Measurement? x, Measurement? y) => x is null || y is null ? "–" : (x.MeanNs / y.MeanNs).ToString(x.MeanNs / y.MeanNs >= 10 ? "F1" : "F3", CultureInfo.InvariantCulture);

    public string Render(BenchOptions o, string command, IEnumerable<string> environment)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Benchmark results: compiled metric kernels vs the Python reference path");
        sb.AppendLine();
        sb.AppendLine("Produced by (from the repository root):");
        sb.AppendLine();
        sb.AppendLine("```bash");
        sb.AppendLine(command);
        sb.AppendLine("```");
        sb.AppendLine();
        foreach (var line in environment) sb.AppendLine($"- {line}");
        sb.AppendLine($"- BenchmarkDotNet job: in-process, {o.WarmupCount} warmup + {o.IterationCount} measured iterations ({o.TorchIterationCount} for the reference (b)) of 1 invocation per case; times are the mean ± standard deviation of the measured iterations.");
        sb.AppendLine($"- Sparsity {o.Sparsity.ToString(CultureInfo.InvariantCulture)} unstructured, per row; fp32; shapes R×K = out × in; synthetic W ~ N(0, 0.02²), G = |N(0, 1)|, X = exp(N(0, 1)).");
        sb.AppendLine("- Bytes moved per layer (the GB/s columns): R·K·(4 B W + 4 B G if the metric reads G + 1 B mask) + 4 B·K of X if it reads X. " +
                      "Scores are not counted (a fused path needs none in memory), so (b)'s GB/s is an *effective* rate on the same bytes.");
        sb.AppendLine("- (a) = CpuFusedKernel.Score + Masks.Unstructured (kernel compiled once, buffers preallocated); (b) = the reference's PyTorch ops through TorchSharp " +
                      "(node-by-node metric, `torch.sort(dim=-1, stable=True)`, `scatter_` of the lowest k); (c) = read W (and G) once, write one mask byte per weight. " +
                      "(c) reads exactly the inputs of the metric: W for magnitude and wanda, W+G for pruner-zero and depth5.");
        sb.AppendLine("- a/b and a/c are time ratios (smaller is better for (a)); targets: a/b ≤ 0.1 (10× faster than the reference), a/c ≤ 3.");
        sb.AppendLine();

        bool haveCpu = _m.Keys.Any(k => k.Method is A or B or C);
        if (haveCpu)
        {
            sb.AppendLine("## CPU: (a) compiled, (b) reference path, (c) bandwidth floor");
            sb.AppendLine();
            sb.AppendLine("| shape R×K | metric | (a) score+mask ms | (a) GB/s | score ms | mask ms | (b) reference ms | (b) GB/s | (c) floor ms | (c) GB/s | a/b | a/c |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            int met10 = 0, met3 = 0, cells = 0, cellsB = 0, cellsC = 0;
            foreach (var shape in o.Shapes)
            foreach (var metric in o.Metrics)
            {
                string s = shape.ToString();
                var e = BenchMetrics.Get(metric);
                long bytes = BenchMetrics.BytesMoved(e, shape);
                Measurement? a = Get(A, s, metric), b = Get(B, s, metric), c = Get(C, s, BenchMetrics.FloorInputs(e));
                cells++;
                if (a is not null && b is not null) { cellsB++; if (a.MeanNs / b.MeanNs <= 0.1) met10++; }
                if (a is not null && c is not null) { cellsC++; if (a.MeanNs / c.MeanNs <= 3) met3++; }
                sb.AppendLine($"| {shape.Rows}×{shape.Cols} | {metric} | {MsSd(a)} | {Gbs(bytes, a)} | {Ms(Get(AScore, s, metric))} | {Ms(Get(AMask, s, metric))} | " +
                              $"{MsSd(b)} | {Gbs(bytes, b)} | {Ms(c)} | {Gbs(bytes, c)} | {Ratio(a, b)} | {Ratio(a, c)} |");
            }
            sb.AppendLine();
            if (cellsB > 0) sb.AppendLine($"Target a/b ≤ 0.1 (≥ 10× faster than the reference path): met in {met10} of {cellsB} cases.");
            if (cellsC > 0) sb.AppendLine($"Target a/c ≤ 3 (within 3× of the bandwidth floor): met in {met3} of {cellsC} cases.");
            sb.AppendLine();
        }

        if (_m.Keys.Any(k => k.Method is GpuApi or GpuMask or GpuFloor))
        {
            sb.AppendLine("## GPU (ILGPU)");
            sb.AppendLine();
            sb.AppendLine("\"api\" is IlgpuBackend.Score + MaskUnstructured on host arrays: device allocations and all host↔device copies are INCLUDED " +
                          "(the backend has no device-resident API). \"device mask\" is the IlgpuKernels.MaskRows kernel on device-resident scores; " +
                          "\"device floor\" reads W (and G) and writes the mask on the device; \"h2d\" uploads W (and G) once.");
            sb.AppendLine();
            sb.AppendLine("| shape R×K | metric | api score+mask ms | device mask ms | device floor ms | floor GB/s | h2d ms | api/floor | device mask/floor |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var shape in o.Shapes)
            foreach (var metric in o.Metrics)
            {
                string s = shape.ToString();
                long bytes = BenchMetrics.BytesMoved(BenchMetrics.Get(metric), shape);
                Measurement? api = Get(GpuApi, s, metric), mask = Get(GpuMask, s, metric), floor = Get(GpuFloor, s, metric), h2d = Get(GpuH2D, s, metric);
                sb.AppendLine($"| {shape.Rows}×{shape.Cols} | {metric} | {MsSd(api)} | {MsSd(mask)} | {Ms(floor)} | {Gbs(bytes, floor)} | {Ms(h2d)} | {Ratio(api, floor)} | {Ratio(mask, floor)} |");
            }
            sb.AppendLine();
        }

        foreach (var section in Sections) { sb.AppendLine(section.TrimEnd()); sb.AppendLine(); }
        if (Notes.Count > 0)
        {
            sb.AppendLine("## Notes");
            sb.AppendLine();
            foreach (var n in Notes) sb.AppendLine($"- {n}");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
