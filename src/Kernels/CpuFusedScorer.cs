// The CPU production path: a metric compiled to one fused Vector256 pass over (W, G, X), preceded by
// one streaming reduction pass per mms / div and two per zsn. Reductions compute scalars only; no
// full-size temporary is ever materialised. Shapes: W, G and scores are (R, K) row-major; X is (K).
//
// Determinism: work is split into fixed row chunks that depend only on (R, K), never on the thread
// count; per-chunk partials (double sums) are combined in chunk order, so results are bit-identical
// from run to run and machine to machine with the same SIMD width.
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using PrunerZero.Kernels.Nodes;

namespace PrunerZero.Kernels;

/// <summary>Raw pointers to pinned inputs. G and X point at W when the metric does not use them (never read then).</summary>
internal readonly unsafe struct Planes(float* w, float* g, float* x, int rows, int cols)
{
    public readonly float* W = w, G = g, X = x;
    public readonly int Rows = rows, Cols = cols;
}

/// <summary>A metric compiled for the CPU. Thread-safe; obtain through CpuFusedScorer.Compile (cached).</summary>
public sealed class CpuFusedKernel
{
    public Expr Expr { get; }
    internal NodePlan Plan { get; }
    readonly CpuPass _pass;

    internal CpuFusedKernel(Expr e)
    {
        Expr = e;
        Plan = NodePlan.For(e);
        _pass = CpuPass.For(Plan.Type);
    }

    /// <summary>scores[r, c] = f(W[r, c], G[r, c], X[c]). g may be empty when !Expr.UsesG, x when !Expr.UsesX.</summary>
    public unsafe void Score(ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x,
                             int rows, int cols, Span<float> scores)
    {
        ScoreArgs.Check(Expr, weight.Length, g.Length, x.Length, rows, cols, scores.Length);
        fixed (float* pw = weight, pg = g, px = x, ps = scores)
        {
            var planes = new Planes(pw, Expr.UsesG ? pg : pw, Expr.UsesX ? px : pw, rows, cols);
            var node = Plan.Build(new CpuReducer(planes));
            _pass.Score(node, planes, ps);
        }
    }

    sealed class CpuReducer(Planes planes) : IReducer
    {
        public Stats Reduce(NodePlan plan, object value, double center) => CpuPass.For(plan.Type).Reduce(value, planes, center);
    }
}

public static class CpuFusedScorer
{
    static readonly ConcurrentDictionary<string, CpuFusedKernel> Cache = new();

    /// <summary>Compiles (or fetches from the cache, keyed by the canonical expression string) the fused kernel.</summary>
    public static CpuFusedKernel Compile(Expr e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return Cache.GetOrAdd(e.ToString(), _ => new CpuFusedKernel(e));
    }

    public static void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x,
                             int rows, int cols, Span<float> scores)
        => Compile(e).Score(weight, g, x, rows, cols, scores);
}

internal static class ScoreArgs
{
    public static void Check(Expr e, int wLen, int gLen, int xLen, int rows, int cols, int scoresLen)
    {
        if (rows <= 0 || cols <= 0)
            throw new ArgumentException($"matrix shape must be positive, got ({rows}, {cols})");
        long n = (long)rows * cols;
        if (n > int.MaxValue)
            throw new ArgumentException($"matrix ({rows}, {cols}) has more than int.MaxValue elements");
        if (wLen != n)
            throw new ArgumentException($"weight has {wLen} elements, expected rows*cols = {rows}*{cols} = {n}");
        if (scoresLen != n)
            throw new ArgumentException($"scores has {scoresLen} elements, expected rows*cols = {n}");
        if (e.UsesG && gLen != n)
            throw new ArgumentException($"metric {e} uses G but g has {gLen} elements, expected rows*cols = {n}");
        if (e.UsesX && xLen != cols)
            throw new ArgumentException($"metric {e} uses X but x has {xLen} elements, expected cols = {cols}");
    }
}

/// <summary>The type-erased face of CpuPass&lt;T&gt;, one instance per node type.</summary>
internal abstract class CpuPass
{
    static readonly ConcurrentDictionary<Type, CpuPass> Cache = new();

    public static CpuPass For(Type nodeType) =>
        Cache.GetOrAdd(nodeType, t => (CpuPass)Activator.CreateInstance(typeof(CpuPass<>).MakeGenericType(t))!);

    public abstract Stats Reduce(object node, in Planes p, double center);
    public abstract unsafe void Score(object node, in Planes p, float* scores);

    /// <summary>Fixed chunking: ~32K elements per chunk, at least one row. Depends only on the shape.</summary>
    internal static int RowsPerChunk(int cols) => Math.Max(1, (1 << 15) / cols);
}

internal sealed unsafe class CpuPass<T> : CpuPass where T : struct, INode
{
    public override void Score(object boxed, in Planes p, float* scores)
    {
        var node = (T)boxed;
        var pl = p;
        nint outp = (nint)scores;
        int rpc = RowsPerChunk(pl.Cols);
        int chunks = (pl.Rows + rpc - 1) / rpc;
        Parallel.For(0, chunks, ci =>
        {
            int r1 = Math.Min(pl.Rows, (ci + 1) * rpc);
            for (int r = ci * rpc; r < r1; r++)
            {
                long off = (long)r * pl.Cols;
                ScoreRow(node, pl.W + off, pl.G + off, pl.X, pl.Cols, (float*)outp + off);
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ScoreRow(T node, float* w, float* g, float* x, int cols, float* o)
    {
        int c = 0;
        for (; c <= cols - 8; c += 8)
            Vector256.Store(node.Eval(Vector256.Load(w + c), Vector256.Load(g + c), Vector256.Load(x + c)), o + c);
        if (c < cols)
        {
            // Tail: pad to one vector so the tail uses the same vector math as the body.
            int n = cols - c;
            float* tw = stackalloc float[8], tg = stackalloc float[8], tx = stackalloc float[8], to = stackalloc float[8];
            for (int i = 0; i < 8; i++) { tw[i] = i < n ? w[c + i] : 0; tg[i] = i < n ? g[c + i] : 0; tx[i] = i < n ? x[c + i] : 0; }
            Vector256.Store(node.Eval(Vector256.Load(tw), Vector256.Load(tg), Vector256.Load(tx)), to);
            for (int i = 0; i < n; i++) o[c + i] = to[i];
        }
    }

    public override Stats Reduce(object boxed, in Planes p, double center)
    {
        var node = (T)boxed;
        var pl = p;
        int rpc = RowsPerChunk(pl.Cols);
        int chunks = (pl.Rows + rpc - 1) / rpc;
        var partial = new Stats[chunks];
        Parallel.For(0, chunks, ci =>
        {
            var acc = new Acc(center);
            int r1 = Math.Min(pl.Rows, (ci + 1) * rpc);
            for (int r = ci * rpc; r < r1; r++)
            {
                long off = (long)r * pl.Cols;
                ReduceRow(node, pl.W + off, pl.G + off, pl.X, pl.Cols, ref acc);
            }
            partial[ci] = acc.ToStats((long)(r1 - ci * rpc) * pl.Cols);
        });
        // Combine in chunk order: deterministic whatever the thread scheduling.
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        double sum = 0, sq = 0;
        long count = 0;
        foreach (var s in partial)
        {
            min = MathF.Min(min, s.Min);
            max = MathF.Max(max, s.Max);
            sum += s.Sum;
            sq += s.SumSq;
            count += s.Count;
        }
        return new Stats(min, max, sum, sq, count);
    }

    struct Acc(double center)
    {
        public Vector256<float> Min = Vector256.Create(float.PositiveInfinity), Max = Vector256.Create(float.NegativeInfinity);
        public Vector256<double> Sum = default, Sq = default;
        public readonly Vector256<double> Center = Vector256.Create(center);
        public float TMin = float.PositiveInfinity, TMax = float.NegativeInfinity;
        public double TSum = 0, TSq = 0;

        public readonly Stats ToStats(long count)
        {
            float min = TMin, max = TMax;
            for (int i = 0; i < 8; i++) { min = MathF.Min(min, Min[i]); max = MathF.Max(max, Max[i]); }
            return new Stats(min, max, Vector256.Sum(Sum) + TSum, Vector256.Sum(Sq) + TSq, count);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ReduceRow(T node, float* w, float* g, float* x, int cols, ref Acc acc)
    {
        int c = 0;
        var min = acc.Min; var max = acc.Max; var sum = acc.Sum; var sq = acc.Sq; var center = acc.Center;
        for (; c <= cols - 8; c += 8)
        {
            var v = node.Eval(Vector256.Load(w + c), Vector256.Load(g + c), Vector256.Load(x + c));
            min = Vector256.Min(min, v);
            max = Vector256.Max(max, v);
            var (lo, hi) = Vector256.Widen(v); // double accumulation: float sums of 16M terms lose digits
            sum += lo + hi;
            var dl = lo - center; var dh = hi - center;
            sq += dl * dl + dh * dh;
        }
        acc.Min = min; acc.Max = max; acc.Sum = sum; acc.Sq = sq;
        if (c < cols)
        {
            int n = cols - c;
            float* tw = stackalloc float[8], tg = stackalloc float[8], tx = stackalloc float[8], to = stackalloc float[8];
            for (int i = 0; i < 8; i++) { tw[i] = i < n ? w[c + i] : 0; tg[i] = i < n ? g[c + i] : 0; tx[i] = i < n ? x[c + i] : 0; }
            Vector256.Store(node.Eval(Vector256.Load(tw), Vector256.Load(tg), Vector256.Load(tx)), to);
            double cen = center[0];
            for (int i = 0; i < n; i++)
            {
                float v = to[i];
                acc.TMin = MathF.Min(acc.TMin, v);
                acc.TMax = MathF.Max(acc.TMax, v);
                acc.TSum += v;
                double d = v - cen;
                acc.TSq += d * d;
            }
        }
    }
}
