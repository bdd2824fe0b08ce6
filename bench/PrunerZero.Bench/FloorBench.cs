// (c) The memory-bandwidth floor, measured in the same run as (a): read W (and G) once, write one mask byte
// per weight, with the same row chunking and Parallel.For as the scorer. Whatever (a) does beyond this is
// compute or extra passes; no implementation of "score + per-row mask" can move fewer bytes.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;

namespace PrunerZero.Bench;

public static class BandwidthFloor
{
    /// <summary>
    /// mask[i] = (|W[i]| + G[i]) &lt; threshold, or |W[i]| &lt; threshold when g is null. W, G and mask are (R, K).
    /// One streaming pass: 32 weights per step, four Vector256 compares narrowed to 32 bytes.
    /// </summary>
    public static unsafe void Run(float[] w, float[]? g, float threshold, byte[] mask, int rows, int cols)
    {
        long n = (long)rows * cols;
        if (w.Length != n || mask.Length != n || (g is not null && g.Length != n))
            throw new ArgumentException($"floor: W ({w.Length}), G ({g?.Length}) and mask ({mask.Length}) must all have rows*cols = {n} elements");
        int rpc = Math.Max(1, (1 << 15) / cols); // the scorer's chunking (CpuPass.RowsPerChunk)
        int chunks = (rows + rpc - 1) / rpc;
        fixed (float* pw = w, pg = g)
        fixed (byte* pm = mask)
        {
            nint W = (nint)pw, G = (nint)pg, M = (nint)pm;
            Parallel.For(0, chunks, ci =>
            {
                long start = (long)ci * rpc * cols;
                long end = Math.Min(n, start + (long)rpc * cols);
                if (G == 0) RowsW((float*)W + start, (byte*)M + start, end - start, threshold);
                else RowsWG((float*)W + start, (float*)G + start, (byte*)M + start, end - start, threshold);
            });
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void RowsWG(float* w, float* g, byte* m, long n, float threshold)
    {
        var t = Vector256.Create(threshold);
        long i = 0;
        for (; i <= n - 32; i += 32)
        {
            var m0 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i)) + Vector256.Load(g + i), t).AsInt32();
            var m1 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 8)) + Vector256.Load(g + i + 8), t).AsInt32();
            var m2 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 16)) + Vector256.Load(g + i + 16), t).AsInt32();
            var m3 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 24)) + Vector256.Load(g + i + 24), t).AsInt32();
            Store(m0, m1, m2, m3, m + i);
        }
        for (; i < n; i++) m[i] = MathF.Abs(w[i]) + g[i] < threshold ? (byte)1 : (byte)0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void RowsW(float* w, byte* m, long n, float threshold)
    {
        var t = Vector256.Create(threshold);
        long i = 0;
        for (; i <= n - 32; i += 32)
        {
            var m0 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i)), t).AsInt32();
            var m1 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 8)), t).AsInt32();
            var m2 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 16)), t).AsInt32();
            var m3 = Vector256.LessThan(Vector256.Abs(Vector256.Load(w + i + 24)), t).AsInt32();
            Store(m0, m1, m2, m3, m + i);
        }
        for (; i < n; i++) m[i] = MathF.Abs(w[i]) < threshold ? (byte)1 : (byte)0;
    }

    /// <summary>Four all-ones/zero int lanes vectors → 32 bytes of 0/1, in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Store(Vector256<int> m0, Vector256<int> m1, Vector256<int> m2, Vector256<int> m3, byte* dst)
    {
        var lo = Vector256.Narrow(m0, m1);
        var hi = Vector256.Narrow(m2, m3);
        var bytes = Vector256.Narrow(lo, hi).AsByte() & Vector256<byte>.One;
        bytes.Store(dst);
    }
}

public class FloorBench
{
    public const string WOnly = "W";
    public const string WG = "W+G";

    public static IEnumerable<string> Shapes => BenchOptions.ShapeParams;
    public static IEnumerable<string> InputSets => BenchOptions.FloorParams;

    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "";
    /// <summary>"W": 4 B read + 1 B written per weight (magnitude, wanda); "W+G": 8 B read + 1 B written.</summary>
    [ParamsSource(nameof(InputSets))] public string Inputs { get; set; } = "";

    LayerData _data = null!;
    byte[] _mask = null!;
    float[]? _g;

    [GlobalSetup]
    public void Setup()
    {
        _data = LayerData.For(LayerShape.Parse(Shape));
        _mask = new byte[_data.Shape.Count];
        _g = Inputs == WG ? _data.G : Inputs == WOnly ? null
            : throw new ArgumentException($"floor inputs must be '{WOnly}' or '{WG}', got '{Inputs}'");
    }

    [Benchmark(Description = "c: floor")]
    public void Floor() => BandwidthFloor.Run(_data.W, _g, 0.7f, _mask, _data.Shape.Rows, _data.Shape.Cols);
}
