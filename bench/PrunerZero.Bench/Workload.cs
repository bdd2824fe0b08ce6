// What is measured: LLaMA-7B linear-layer shapes and the four metrics, plus the deterministic inputs
// (W, G, X) every benchmark of one shape shares. Dimension letters: R rows = outputs, K cols = inputs;
// W and G are (R, K) row-major, X is (K).
using PrunerZero.Kernels;

namespace PrunerZero.Bench;

/// <summary>A linear layer's weight shape, written "RxK" (out x in), e.g. "11008x4096" is LLaMA-7B's up_proj.</summary>
public readonly record struct LayerShape(int Rows, int Cols)
{
    public long Count => (long)Rows * Cols;
    public override string ToString() => $"{Rows}x{Cols}";

    public static LayerShape Parse(string text)
    {
        var parts = text.Trim().ToLowerInvariant().Split('x');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int r) || !int.TryParse(parts[1], out int k) || r <= 0 || k <= 0)
            throw new ArgumentException($"shape '{text}' is not of the form RxK with positive integers, e.g. 4096x11008");
        return new LayerShape(r, k);
    }

    /// <summary>LLaMA-7B: q/k/v/o_proj (4096x4096), gate/up_proj (11008x4096), down_proj (4096x11008).</summary>
    public static readonly IReadOnlyList<LayerShape> Llama7B = [new(4096, 4096), new(11008, 4096), new(4096, 11008)];
}

/// <summary>The benchmarked metrics, by the name that appears in the tables.</summary>
public static class BenchMetrics
{
    /// <summary>Depth 5 (nodes on the longest path, as Expr.Depth counts): add → zsn → mul → sqrt → X.</summary>
    public const string Depth5Text = "add(mul(sqr(W), mms(G)), zsn(mul(W, sqrt(X))))";

    public static readonly IReadOnlyDictionary<string, Expr> All = Build();

    static Dictionary<string, Expr> Build()
    {
        var depth5 = MetricParser.Parse(Depth5Text);
        if (depth5.Depth != 5)
            throw new InvalidOperationException($"the depth-5 benchmark metric {depth5} has depth {depth5.Depth}; fix Depth5Text");
        return new Dictionary<string, Expr>(StringComparer.OrdinalIgnoreCase)
        {
            ["magnitude"] = Metrics.Magnitude,
            ["wanda"] = Metrics.Wanda,
            ["pruner-zero"] = Metrics.PrunerZero,
            ["depth5"] = depth5,
        };
    }

    public static Expr Get(string name) =>
        All.TryGetValue(name, out var e) ? e
        : throw new ArgumentException($"unknown benchmark metric '{name}'; expected one of {string.Join(", ", All.Keys)}");

    /// <summary>
    /// Compulsory bytes per layer: 4 B of W per weight, 4 B of G per weight if the metric reads G, 4 B per column
    /// of X if it reads X, and 1 B of mask written per weight. Scores are NOT counted: a fused path never needs
    /// them in memory, so this is the traffic any implementation must move at least.
    /// </summary>
    public static long BytesMoved(Expr e, LayerShape s) =>
        s.Count * (4 + (e.UsesG ? 4 : 0) + 1) + (e.UsesX ? 4L * s.Cols : 0);

    /// <summary>Which floor variant matches the metric's inputs: "W" (W only) or "W+G".</summary>
    public static string FloorInputs(Expr e) => e.UsesG ? FloorBench.WG : FloorBench.WOnly;
}

/// <summary>
/// Deterministic synthetic inputs, generated once per shape and shared by every benchmark in the process.
/// W ~ N(0, 0.02²) like LLaMA weights; G = |N(0, 1)| (gradient magnitudes); X = exp(N(0, 1)) (positive column
/// statistics). Values are continuous, so ties in a row are rare, as with real weights.
/// </summary>
public sealed class LayerData
{
    public LayerShape Shape { get; }
    public float[] W { get; }
    public float[] G { get; }
    public float[] X { get; }

    LayerData(LayerShape shape, int seed)
    {
        if (shape.Count > Array.MaxLength)
            throw new ArgumentException($"shape {shape} has more elements than a .NET array holds");
        Shape = shape;
        int n = (int)shape.Count;
        W = new float[n];
        G = new float[n];
        X = new float[shape.Cols];
        // Rows filled in parallel, each row from its own seeded generator: same data on any thread count.
        Parallel.For(0, shape.Rows, r =>
        {
            var rng = new Random(StableRowSeed(seed, r));
            int off = r * shape.Cols;
            for (int c = 0; c < shape.Cols; c++)
            {
                W[off + c] = 0.02f * Normal(rng);
                G[off + c] = MathF.Abs(Normal(rng));
            }
        });
        var xr = new Random(seed ^ 0x5eed);
        for (int c = 0; c < X.Length; c++) X[c] = MathF.Exp(Normal(xr));
    }

    /// <summary>SplitMix64 of (seed, row): the same in every process (HashCode.Combine is randomized per process).</summary>
    static int StableRowSeed(int seed, int row)
    {
        static ulong Mix(ulong z)
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
        return (int)(Mix(Mix((ulong)(uint)seed) ^ ((ulong)(uint)row * 0xC2B2AE3D27D4EB4FUL)) & 0x7FFF_FFFF);
    }

    /// <summary>Box–Muller; one of the pair is dropped (speed is irrelevant next to the benchmarks).</summary>
    static float Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    static readonly Dictionary<LayerShape, LayerData> Cache = new();

    /// <summary>The inputs for a shape (seed fixed at 1), generated on first use and kept for the process.</summary>
    public static LayerData For(LayerShape shape)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(shape, out var d))
                Cache[shape] = d = new LayerData(shape, seed: 1);
            return d;
        }
    }
}
