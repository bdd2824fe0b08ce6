// Command-line options shared by both bench programs. BenchmarkDotNet reads the parameter lists from
// here ([ParamsSource]), so one run can be narrowed to a shape or a metric without recompiling.
namespace PrunerZero.Bench;

public sealed class BenchOptions
{
    /// <summary>The options of the running process; set once by the program before any benchmark runs.</summary>
    public static BenchOptions Current { get; set; } = new();

    public List<LayerShape> Shapes { get; set; } = [.. LayerShape.Llama7B];
    public List<string> Metrics { get; set; } = [.. BenchMetrics.All.Keys];
    public double Sparsity { get; set; } = 0.5;
    public int WarmupCount { get; set; } = 1;
    public int IterationCount { get; set; } = 5;
    /// <summary>Measured iterations of the reference (torch) suite, whose cases take seconds each.</summary>
    public int TorchIterationCount { get; set; } = 3;
    /// <summary>Markdown results file; null = don't write one.</summary>
    public string? ResultsPath { get; set; }
    /// <summary>BenchmarkDotNet artifacts (CSV, JSON, logs).</summary>
    public string ArtifactsPath { get; set; } = Path.Combine("bench", "BenchmarkDotNet.Artifacts");
    /// <summary>cpu, gpu, or both (the reference program adds "torch").</summary>
    public HashSet<string> Suites { get; set; } = new(StringComparer.OrdinalIgnoreCase) { "cpu", "gpu" };
    /// <summary>Run the GPU suite on ILGPU's CPU emulator (smoke test of the code path on small shapes only).</summary>
    public bool GpuEmulate { get; set; }
    public bool Help { get; set; }

    public const string Usage = """
        Options:
          --shapes 4096x4096,11008x4096,4096x11008   layer shapes RxK (out x in); default LLaMA-7B's three
          --metrics magnitude,wanda,pruner-zero,depth5  metrics (names as in the table); default all four
          --sparsity 0.5                             unstructured sparsity per row
          --warmup 1 --iterations 5                  BenchmarkDotNet warmup and measured iterations per case
          --torch-iterations 3                       measured iterations of the reference (torch) suite
          --suites cpu,gpu[,torch]                   which suites run (torch only in PrunerZero.Bench.Reference)
          --out PATH                                 write the markdown results table to PATH
          --artifacts DIR                            BenchmarkDotNet artifacts (default bench/BenchmarkDotNet.Artifacts)
          --gpu-emulate                              run the GPU suite on ILGPU's CPU emulator (tiny shapes only)
        """;

    public static BenchOptions Parse(string[] args, IEnumerable<string> defaultSuites)
    {
        var o = new BenchOptions { Suites = new(defaultSuites, StringComparer.OrdinalIgnoreCase) };
        for (int i = 0; i < args.Length; i++)
        {
            string Value()
            {
                if (i + 1 >= args.Length) throw new ArgumentException($"option {args[i]} needs a value");
                return args[++i];
            }
            static List<string> List(string v) => [.. v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
            switch (args[i])
            {
                case "--shapes": o.Shapes = [.. List(Value()).Select(LayerShape.Parse)]; break;
                case "--metrics":
                    o.Metrics = List(Value());
                    foreach (var m in o.Metrics) BenchMetrics.Get(m); // fail early on a typo
                    break;
                case "--sparsity":
                    o.Sparsity = double.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture);
                    if (!(o.Sparsity >= 0 && o.Sparsity <= 1)) throw new ArgumentException($"--sparsity must be in [0, 1], got {o.Sparsity}");
                    break;
                case "--warmup": o.WarmupCount = PositiveInt(args[i], Value(), allowZero: true); break;
                case "--iterations": o.IterationCount = PositiveInt(args[i], Value(), allowZero: false); break;
                case "--torch-iterations": o.TorchIterationCount = PositiveInt(args[i], Value(), allowZero: false); break;
                case "--suites": o.Suites = new(List(Value()), StringComparer.OrdinalIgnoreCase); break;
                case "--out": o.ResultsPath = Value(); break;
                case "--artifacts": o.ArtifactsPath = Value(); break;
                case "--gpu-emulate": o.GpuEmulate = true; break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown option '{args[i]}'\n{Usage}");
            }
        }
        if (o.Shapes.Count == 0 || o.Metrics.Count == 0) throw new ArgumentException("--shapes and --metrics need at least one entry");
        return o;
    }

    static int PositiveInt(string name, string v, bool allowZero)
    {
        if (!int.TryParse(v, out int n) || n < 0 || (n == 0 && !allowZero))
            throw new ArgumentException($"{name} needs a {(allowZero ? "non-negative" : "positive")} integer, got '{v}'");
        return n;
    }

    // [ParamsSource] targets: strings, so BenchmarkDotNet prints them as they are typed.
    public static IEnumerable<string> ShapeParams => Current.Shapes.Select(s => s.ToString());
    public static IEnumerable<string> MetricParams => Current.Metrics;
    /// <summary>Floor variants needed by the selected metrics (W only, W+G).</summary>
    public static IEnumerable<string> FloorParams =>
        Current.Metrics.Select(m => BenchMetrics.FloorInputs(BenchMetrics.Get(m))).Distinct().Order(StringComparer.Ordinal);
}
